/**
 * P6 API server writes against etcd 3.4 (the store under a real kube-apiserver): the same ~1 KB objects
 * at concurrency 32, the API server with SQLite synchronous NORMAL and FULL (bench/apiserver in a child
 * process), beside a Node server that only parses and echoes the creates: the most any Node server
 * answers on this machine. Each store first takes the same 1,000 untimed writes. etcd is also run with
 * its client URL on TLS, for context: the API server always serves TLS, the anchor is plain HTTP.
 *
 * The targets are medians over rounds (3; 1 with --quick), each an etcd run paired with NORMAL and
 * FULL HTTP/2 create runs beside it, in alternating order. A shared machine's speed drifts by more than
 * the targets' margin within a minute (the echo server's rate went 3,986 → 7,363/s in two runs 30 s
 * apart), so one etcd run set against creates measured a minute later says more about that drift
 * than about the two stores.
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchEtcd } from '../etcd.js';
import { BenchContext, log } from '../lib/context.js';
import type { ScenarioResult } from '../lib/result.js';
import { median, ratio, round } from '../lib/stats.js';
import { runCapture } from '../lib/exec.js';

export async function apiServerWrites(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.args.quick ? 3000 : 10_000;
  // Untimed writes before each store's clock starts, the same number on both sides.
  const warmup = 1000;
  const rounds = ctx.args.quick ? 1 : 3;
  const r: ScenarioResult = {
    id: 'P6',
    title: 'API server durable creates vs etcd 3.4 puts (same ~1 KB objects, concurrency 32)',
    params: { n, concurrency: 32, objectBytes: 1024, warmup, rounds },
    targets: [],
    notes: [],
  };
  // Context: where each side's CPU goes, HTTP/1.1, the echo server's roof, etcd over TLS.
  log(`P6: etcd puts (${n})`);
  const etcd = await benchEtcd({ n, concurrency: 32, warmup });
  log(`P6: etcd ${etcd.putsPerSec} puts/s`);
  // Context, not the target: etcd reached over TLS, as a kube-apiserver reaches it (the API server
  // always serves TLS; the anchor above is plain HTTP).
  const etcdTls = await benchEtcd({ n, concurrency: 32, warmup, tls: true });
  log(`P6: etcd over TLS ${etcdTls.putsPerSec} puts/s`);
  const normal = await apiserverBench(ctx, ['--warmup', String(warmup)]);
  log(
    `P6: API server (synchronous NORMAL) ${normal.create.opsPerSec} creates/s over HTTP/2, ${normal.createHttp1.opsPerSec} over HTTP/1.1; a Node server that only echoes: ${normal.nodeCeiling.opsPerSec}/s`,
  );
  const full = await apiserverBench(ctx, ['--warmup', String(warmup), '--synchronous', 'FULL', '--stop-after', 'creates']);
  log(`P6: API server (synchronous FULL) ${full.create.opsPerSec} creates/s over HTTP/2, ${full.createHttp1.opsPerSec} over HTTP/1.1`);

  // The targets: rounds of etcd beside NORMAL and FULL creates over HTTP/2.
  const paired = await pairedRounds(ctx, rounds, n, warmup);
  const normalVsEtcd = round(median(paired.map((p) => p.normalVsEtcd)), 2);
  const fullVsEtcd = round(median(paired.map((p) => p.fullVsEtcd)), 2);
  r.raw = { etcd, etcdTls, pairedRounds: paired };
  r.nbswarm = { synchronousNormal: normal, synchronousFull: full };
  const vs = (x: number) => round(ratio(x, etcd.putsPerSec), 2);
  r.ratio = {
    createsVsEtcdPuts: normalVsEtcd,
    createsFullVsEtcdPuts: fullVsEtcd,
    // The context runs' ratios (one etcd run for all of them, minutes apart).
    createsHttp1VsEtcdPuts: vs(normal.createHttp1.opsPerSec),
    createsFullHttp1VsEtcdPuts: vs(full.createHttp1.opsPerSec),
    nodeCeilingVsEtcdPuts: vs(normal.nodeCeiling.opsPerSec),
    createsFullVsEtcdTlsPuts: round(ratio(full.create.opsPerSec, etcdTls.putsPerSec), 2),
  };
  const over = `median of ${rounds} round${rounds > 1 ? 's' : ''}, each beside its own etcd run`;
  r.targets.push({
    metric: `API creates/s ÷ etcd puts/s (NORMAL: durable across a crash of the server; ${over})`,
    want: '≥ 2',
    actual: normalVsEtcd,
    met: normalVsEtcd >= 2,
  });
  r.targets.push({
    metric: `API creates/s ÷ etcd puts/s (FULL: fsync per commit, as etcd; ${over})`,
    want: '≥ 1',
    actual: fullVsEtcd,
    met: fullVsEtcd >= 1,
  });
  r.notes.push(
    `Rounds (etcd puts/s, NORMAL and FULL creates/s over HTTP/2): ` +
      paired.map((p) => `${p.etcdPutsPerSec} / ${p.normalCreatesPerSec} / ${p.fullCreatesPerSec} (${p.normalVsEtcd}×, ${p.fullVsEtcd}×)`).join('; ') +
      '.',
  );
  // What the target asks of the machine: client and server CPU per create within the cores' time.
  const cores = cpus().length;
  const budgetMs = (cores * 1000) / (2 * etcd.putsPerSec);
  const c = normal.create;
  const ceil = normal.nodeCeiling;
  r.notes.push(
    `2× etcd is ${Math.round(2 * etcd.putsPerSec)} creates/s: on ${cores} cores that is ${round(budgetMs, 3)} ms of CPU per create for client and server together. ` +
      `Measured per create: API server ${c.serverCpuMsPerOp} ms + client ${c.clientCpuMsPerOp} ms (etcd: ${etcd.serverCpuMsPerOp} + ${etcd.clientCpuMsPerOp}); ` +
      `a Node HTTPS server that only parses and echoes: ${ceil.serverCpuMsPerOp} + ${ceil.clientCpuMsPerOp} ms, ${ceil.opsPerSec}/s = ${r.ratio.nodeCeilingVsEtcdPuts}× etcd.`,
  );
  r.notes.push(
    `etcd over TLS (its client URL on HTTPS, as under a kube-apiserver): ${etcdTls.putsPerSec} puts/s, ${etcdTls.serverCpuMsPerOp} + ${etcdTls.clientCpuMsPerOp} ms of CPU per put; ` +
      `the API server's FULL creates are ${r.ratio.createsFullVsEtcdTlsPuts}× that. The targets are against plain etcd.`,
  );
  return r;
}

interface PairedRound {
  etcdPutsPerSec: number;
  normalCreatesPerSec: number;
  fullCreatesPerSec: number;
  normalVsEtcd: number;
  fullVsEtcd: number;
}

/**
 * `rounds` times: etcd puts, then NORMAL and FULL creates over HTTP/2 (a fresh server each), in
 * reverse order every other round, so that a machine slowing down or speeding up through the
 * scenario weighs on both stores alike.
 */
async function pairedRounds(ctx: BenchContext, rounds: number, n: number, warmup: number): Promise<PairedRound[]> {
  const out: PairedRound[] = [];
  for (let k = 1; k <= rounds; k++) {
    let etcdPuts = 0;
    let normal = 0;
    let full = 0;
    const steps = [
      async () => void (etcdPuts = (await benchEtcd({ n, concurrency: 32, warmup })).putsPerSec),
      async () => void (normal = (await apiserverBench(ctx, ['--warmup', String(warmup), '--stop-after', 'http2-creates'])).create.opsPerSec),
      async () =>
        void (full = (await apiserverBench(ctx, ['--warmup', String(warmup), '--synchronous', 'FULL', '--stop-after', 'http2-creates'])).create.opsPerSec),
    ];
    for (const step of k % 2 ? steps : steps.reverse()) await step();
    const vsEtcd = (x: number) => round(ratio(x, etcdPuts), 2);
    out.push({ etcdPutsPerSec: etcdPuts, normalCreatesPerSec: normal, fullCreatesPerSec: full, normalVsEtcd: vsEtcd(normal), fullVsEtcd: vsEtcd(full) });
    log(`P6: round ${k}/${rounds}: etcd ${etcdPuts} puts/s, NORMAL ${normal} creates/s (${vsEtcd(normal)}×), FULL ${full} creates/s (${vsEtcd(full)}×)`);
  }
  return out;
}

interface CreatePhase {
  opsPerSec: number;
  serverCpuMsPerOp: number;
  clientCpuMsPerOp: number;
}

/** bench/apiserver (a fresh server in a child process, ~1 KB NotebookServer creates at concurrency 32) with `extra` arguments (with `--stop-after http2-creates` only `create` is there). */
async function apiserverBench(
  ctx: BenchContext,
  extra: string[],
): Promise<{ create: CreatePhase; createHttp1: CreatePhase; nodeCeiling: CreatePhase } & Record<string, unknown>> {
  const script = fileURLToPath(new URL('../apiserver/run.js', import.meta.url));
  const argv = [script, ...(ctx.args.quick ? ['--quick'] : []), ...extra];
  log(`P6: node ${argv.map((a) => a.replace(/.*\/dist\//, 'dist/')).join(' ')}`);
  // Not spawnSync: a Ctrl-C or SIGTERM meanwhile must reach the bench, which ends this child and its servers.
  const res = await runCapture(process.execPath, argv, { timeoutMs: 600_000 });
  if (res.code !== 0) throw new Error(`bench/apiserver ${extra.join(' ')} failed (status ${res.code}): ${res.stderr.slice(-800)}`);
  return JSON.parse(res.stdout);
}
