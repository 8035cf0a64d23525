/**
 * P4 scale: many resources in the embedded API server, a few running and the rest stopped, the operator
 * as users run it (the bundled CLI in its own process): time to converge, the operator's RSS at rest,
 * list latency for all of them, and the latency of a watch fan-out to many watchers.
 */
import type { BackendKind } from '../../src/backends/types.js';
import { BenchContext, log } from '../lib/context.js';
import { Kube, ReadyTracker, benchServer, type Obj } from '../lib/kube.js';
import { startOperatorCli, type CliOperator } from '../lib/operator-cli.js';
import type { ScenarioResult } from '../lib/result.js';
import { mapLimit, median, round, roundSummary, sleep, summarize, type Summary } from '../lib/stats.js';
import { benchPolicy, queueStats } from '../lib/stack.js';

export async function scale(ctx: BenchContext, kind: BackendKind): Promise<ScenarioResult> {
  const n = ctx.args.scaleN;
  const running = Math.min(ctx.args.scaleRunning, n);
  const r: ScenarioResult = {
    id: 'P4',
    title: `scale: ${n} resources in the embedded API, ${running} running, the rest stopped`,
    backend: kind,
    params: { n, running, watchers: ctx.args.fanoutWatchers, fanoutUpdates: ctx.args.fanoutUpdates },
    targets: [],
    notes: [],
  };
  // The operator runs as users run it (the bundled CLI) in its own process, so its RSS is its own.
  await ctx.stopOperator();
  const policy = await benchPolicy(kind, ctx.prefix, ctx.args.resyncSeconds);
  const op = await startOperatorCli({ kubeconfigPath: ctx.api.kubeconfigPath, policy, kind, dockerSocket: ctx.opProxy.socketPath });
  // However P4 or the run ends, the operator's process goes with it.
  const stopOperator = ctx.teardown.add(`the P4 operator (pid ${op.pid})`, () => op.stop());
  try {
    return await measure(ctx, kind, op, r, stopOperator);
  } finally {
    await stopOperator();
  }
}

/** P4 with its operator running; `stopOperator` once its figures are read. */
async function measure(ctx: BenchContext, kind: BackendKind, op: CliOperator, r: ScenarioResult, stopOperator: () => Promise<void>): Promise<ScenarioResult> {
  const n = ctx.args.scaleN;
  const running = Math.min(ctx.args.scaleRunning, n);
  const memIdle = (await op.stats()).memory as NodeJS.MemoryUsage;
  const ns = ctx.ns(`p4${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `p4-${i}`);
  const t0 = performance.now();
  await mapLimit(names, 32, (name, i) => ctx.kube.create(ns, benchServer(name, { user: `p4u${i}`, stopped: i >= running })));
  const createMs = performance.now() - t0;
  log(`P4: ${n} created in ${Math.round(createMs)} ms; waiting for the operator (pid ${op.pid}) to converge`);
  let converged = true;
  let depthMax = 0;
  let rssMax = 0;
  const progress = setInterval(() => {
    op.stats().then(
      (st) => {
        const q = queueStats(st);
        depthMax = Math.max(depthMax, q.depth);
        rssMax = Math.max(rssMax, op.rssBytes());
        const ph: Record<string, number> = {};
        for (const p of tracker.phase.values()) ph[p] = (ph[p] ?? 0) + 1;
        log(
          `P4: phases ${JSON.stringify(ph)}, ready ${tracker.readyAt.size}, queue ${JSON.stringify(q)}, operator RSS ${Math.round(op.rssBytes() / 2 ** 20)} MB`,
        );
      },
      // An operator that is gone (it failed, or the run is being torn down) ends in the wait below, not here.
      (err: Error) => log(`P4: the operator's /stats did not answer: ${err.message}`),
    );
  }, 5_000);
  try {
    await tracker.until(
      `${n} resources converged`,
      () => {
        for (let i = 0; i < n; i++) {
          const nm = names[i]!;
          if (i < running ? !tracker.readyAt.has(nm) : tracker.phase.get(nm) !== 'Stopped') return false;
        }
        return true;
      },
      ctx.args.quick ? 150_000 : 1_500_000,
    );
  } catch (err) {
    converged = false;
    r.notes.push((err as Error).message);
  }
  clearInterval(progress);
  const convergeMs = performance.now() - t0;
  const phases: Record<string, number> = {};
  for (const p of tracker.phase.values()) phases[p] = (phases[p] ?? 0) + 1;
  tracker.stop();
  log(`P4: converged=${converged} after ${Math.round(convergeMs)} ms (${JSON.stringify(phases)})`);
  // Let requeues drain before reading memory.
  for (let calm = 0, i = 0; calm < 4 && i < 120; i++) {
    const q = queueStats(await op.stats());
    calm = q.depth === 0 && q.inFlight === 0 ? calm + 1 : 0;
    await sleep(250);
  }
  // What the host pays to keep n resources: RSS with the process left alone (no forced GC) until
  // V8's memory reducer has run (it does ~30 s after a burst); the median of the last 10 s. The
  // peak during the burst is reported beside it.
  const restRss: number[] = [];
  for (let i = 0; i < ctx.args.restSeconds; i++) {
    await sleep(1000);
    restRss.push(op.rssBytes());
    rssMax = Math.max(rssMax, restRss[restRss.length - 1]!);
  }
  const opStats = await op.stats();
  const mem = { ...(opStats.memory as NodeJS.MemoryUsage), rss: median(restRss.slice(-10)) };
  const apiRss = ctx.api.rssBytes();

  // List latency for all n in one response: request sent → last byte received (the server's work
  // and the wire; Kubernetes' API call latency SLO is measured at the server), and beside it the
  // same plus this Node client's JSON.parse of the ~18 MB body.
  const listMs: number[] = [];
  const listParsedMs: number[] = [];
  const listChunkedMs: number[] = [];
  let listBytes = 0;
  for (let i = 0; i < 5; i++) {
    const got = await ctx.kube.listRaw(ns);
    listMs.push(got.lastByteMs);
    listBytes = got.bytes;
    const p0 = performance.now();
    const l = JSON.parse(got.text) as { items?: unknown[] };
    listParsedMs.push(got.lastByteMs + performance.now() - p0);
    if ((l.items ?? []).length !== n) r.notes.push(`list returned ${(l.items ?? []).length} items, expected ${n}`);
    // kubectl's default: pages of 500.
    const s2 = performance.now();
    let cont = '';
    let pages = 0;
    do {
      const page = await ctx.kube.list(ns, `limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      const next = page.metadata?.continue ?? '';
      if (next && next === cont) throw new Error('list paging: the server returned the same continue token twice');
      cont = next;
      if (++pages > n / 500 + 5) throw new Error(`list paging: more than ${pages} pages for ${n} objects`);
    } while (cont);
    listChunkedMs.push(performance.now() - s2);
  }

  log(
    `P4: list ${n}: median ${Math.round(median(listMs))} ms to the last byte, ${Math.round(median(listParsedMs))} ms parsed; watch fan-out to ${ctx.args.fanoutWatchers} watchers`,
  );
  const fan = await fanout(ctx, ns, names[running] ?? names[0]!, ctx.args.fanoutWatchers, ctx.args.fanoutUpdates);

  r.nbswarm = {
    createMs: round(createMs, 0),
    createsPerSec: round((n * 1000) / createMs, 0),
    converged,
    convergeMs: round(convergeMs, 0),
    phases,
    queueDepthMax: depthMax,
    reconciles: queueStats(opStats).reconciles,
    operatorRssMB: round(mem.rss / 2 ** 20, 1),
    operatorRssPeakMB: round(Math.max(rssMax, mem.rss) / 2 ** 20, 1),
    operatorRssIdleMB: round(memIdle.rss / 2 ** 20, 1),
    operatorRssAfterBurstMB: round((restRss[0] ?? 0) / 2 ** 20, 1),
    operatorRssRestSeconds: ctx.args.restSeconds,
    operatorHeapUsedMB: round(mem.heapUsed / 2 ** 20, 1),
    operatorHeapIdleMB: round(memIdle.heapUsed / 2 ** 20, 1),
    // The collection the operator runs itself once a burst is over (src/memory-after-burst.ts): how many, and the heap it left.
    operatorMemoryAfterBurst: opStats.memoryAfterBurst,
    apiServerRssMB: round(apiRss / 2 ** 20, 1),
    listAllMs: roundSummary(summarize(listMs), 1),
    listAllWithClientParseMs: roundSummary(summarize(listParsedMs), 1),
    listBytes,
    listPaged500Ms: roundSummary(summarize(listChunkedMs), 1),
    watchFanout: fan,
  };
  r.notes.push(
    `the operator runs as the bundled CLI (node dist/nbswarm.mjs operator, same policy, Docker through the counting proxy) in its own process; its RSS at rest is the median of the last 10 of ${ctx.args.restSeconds} s after the queue drained, read from /proc (no collection forced from outside; the operator runs its own after a burst, operatorMemoryAfterBurst), heap figures from its /stats. The API server RSS is read from /proc of its child process.`,
  );
  r.notes.push('fan-out watchers live in the bench process; the operator (another process) also receives each update and reconciles it.');
  await stopOperator();
  const opRssMB = mem.rss / 2 ** 20;
  r.targets.push({ metric: `operator RSS at rest (MB, ${n} resources)`, want: '< 150', actual: round(opRssMB, 1), met: opRssMB < 150 });
  r.targets.push({
    metric: `list latency for ${n} (median ms, request → last byte)`,
    want: '< 300',
    actual: round(median(listMs), 1),
    met: median(listMs) < 300,
  });
  r.targets.push({
    metric: `watch fan-out p99 to ${ctx.args.fanoutWatchers} watchers (ms, from write sent)`,
    want: '< 20',
    actual: fan.fromSentMs.p99,
    met: fan.fromSentMs.p99 < 20,
  });
  return r;
}

/**
 * `watchers` watches on the namespace; `updates` merge-patches of one object, each stamping its
 * index in an annotation; each delivery's latency = receive time − time the patch was sent (and −
 * time it was acknowledged). Same process, same clock.
 */
async function fanout(
  ctx: BenchContext,
  ns: string,
  target: string,
  watchers: number,
  updates: number,
): Promise<{ watchers: number; updates: number; deliveries: number; fromSentMs: Summary; fromAckMs: Summary; writeMs: Summary; apiServerRssMB: number }> {
  const sent: number[] = [];
  const acked: number[] = [];
  const fromSent: number[] = [];
  const fromAck: number[] = [];
  const clients: Kube[] = [];
  const stops: Array<() => void> = [];
  const pendingAck: Array<{ i: number; at: number }> = [];
  const list = await ctx.kube.list(ns, 'limit=1');
  const rv = list.metadata?.resourceVersion;
  for (let w = 0; w < watchers; w++) {
    const c = ctx.kube.clone(1);
    clients.push(c);
    stops.push(
      await c.watch(
        `${c.nsPath(ns)}?watch=1&resourceVersion=${rv}&fieldSelector=${encodeURIComponent(`metadata.name=${target}`)}`,
        (ev: { type: string; object: Obj }, at: number) => {
          const v = ev.object?.metadata?.annotations?.['bench.nbswarm.io/fanout'];
          if (ev.type !== 'MODIFIED' || v === undefined) return;
          const i = Number(v);
          if (sent[i] === undefined) return;
          fromSent.push(at - sent[i]!);
          if (acked[i] !== undefined) fromAck.push(at - acked[i]!);
          else pendingAck.push({ i, at });
        },
      ),
    );
  }
  await sleep(500);
  const writeMs: number[] = [];
  for (let i = 0; i < updates; i++) {
    sent[i] = performance.now();
    await ctx.kube.mergePatch(ns, target, { metadata: { annotations: { 'bench.nbswarm.io/fanout': String(i) } } });
    acked[i] = performance.now();
    writeMs.push(acked[i]! - sent[i]!);
    await sleep(10);
  }
  await sleep(1000);
  // Deliveries that beat the write's response: their latency from ack is ≤ 0.
  for (const p of pendingAck) fromAck.push(p.at - acked[p.i]!);
  const apiRss = ctx.api.rssBytes();
  for (const s of stops) s();
  for (const c of clients) c.close();
  return {
    watchers,
    updates,
    deliveries: fromSent.length,
    fromSentMs: roundSummary(summarize(fromSent), 2),
    fromAckMs: roundSummary(summarize(fromAck), 2),
    writeMs: roundSummary(summarize(writeMs), 2),
    apiServerRssMB: round(apiRss / 2 ** 20, 1),
  };
}
