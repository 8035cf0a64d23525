/**
 * nbswarm benchmarks: each scenario (bench/scenarios/) side by side with a raw-Docker baseline in the
 * same run — same image, same daemon, same concurrency — repeated, with min/median/max, the ratio,
 * the target and whether it was met. `node dist/bench/run.js --help` lists the options (bench/args.ts).
 *
 * JSON on stdout and in bench/results/<timestamp>.json; a short table on stderr.
 * Never run as a test: timings are reported, not asserted.
 *
 * However a run ends (done, a failure, Ctrl-C or SIGTERM), what it started is stopped (bench/lib/
 * teardown.ts), this run's Docker objects are removed by label, and no process of it is left.
 */
import Docker from 'dockerode';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg, tmpdir } from 'node:os';
import { LABELS } from '../src/api/types.js';
import type { BackendKind } from '../src/backends/types.js';
import { loadCrd } from '../src/controller/crd.js';
import { repoPath } from '../src/paths.js';
import { parseBenchArgs } from './args.js';
import { BenchContext, log } from './lib/context.js';
import { Kube } from './lib/kube.js';
import { startProxyProcess } from './lib/proxy-child.js';
import * as raw from './lib/raw-docker.js';
import { resultTable, type ScenarioResult } from './lib/result.js';
import { round } from './lib/stats.js';
import { untilQuiet } from './lib/proc.js';
import { startApiChild } from './lib/stack.js';
import { endDescendants, killDescendants } from './lib/teardown.js';
import { convergedFixture, removeFixture, type Fixture } from './scenarios/fixture.js';
import { spawnLatency } from './scenarios/p1-spawn.js';
import { burst } from './scenarios/p2-burst.js';
import { idleCost } from './scenarios/p3-idle.js';
import { scale } from './scenarios/p4-scale.js';
import { operatorRestart } from './scenarios/p5-restart.js';
import { apiServerWrites } from './scenarios/p6-apiserver.js';
import { hubScenario } from './scenarios/p7-hub.js';
import { multinodeScenario } from './scenarios/p8-multinode.js';

/** Runs the scenarios asked for; resolves with the exit code. */
async function main(): Promise<number> {
  const args = parseBenchArgs(process.argv.slice(2));
  const ctx = new BenchContext(args);
  const started = new Date();
  const results: ScenarioResult[] = [];
  const info: any = await ctx.docker.info();
  ctx.swarm = info?.Swarm?.LocalNodeState === 'active' && info?.Swarm?.ControlAvailable === true;
  if (!ctx.swarm && args.backends.includes('service')) {
    log('Swarm is not active: skipping the service backend');
    args.backends = args.backends.filter((b) => b !== 'service');
  }
  ctx.imageId = await raw.resolveImageId(ctx.docker, ctx.imageRef);
  // P6 needs no Docker; P7 brings its own stack (nbswarm up + JupyterHub), P8 its own cluster.
  const needsDocker = args.scenarios.some((s) => s !== 'P6' && s !== 'P7' && s !== 'P8');
  log(`run ${ctx.runId}: scenarios ${args.scenarios.join(',')}, backends ${args.backends.join(',')}${args.quick ? ', quick' : ''}`);

  const dir = repoPath('bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = args.out ?? join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = () => ({
    tool: 'nbswarm bench',
    runId: ctx.runId,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: cpus().length, node: process.version, docker: info?.ServerVersion, swarm: ctx.swarm, loadavg: loadavg().map((x) => round(x, 2)) },
    args,
    results,
    summary: results.flatMap((r) => r.targets.map((t) => ({ scenario: r.id, backend: r.backend, ...t }))),
  });
  // Partial results survive a crash or a timeout of a later scenario.
  const save = () => writeFileSync(file, JSON.stringify(report(), null, 2) + '\n');

  const run = async (id: string, backend: BackendKind | undefined, fn: () => Promise<ScenarioResult>) => {
    if (ctx.teardown.tearingDown) return;
    const t = performance.now();
    log(`${id}${backend ? ` (${backend})` : ''}: start`);
    try {
      const res = await fn();
      res.seconds = round((performance.now() - t) / 1000, 1);
      results.push(res);
      for (const tg of res.targets) log(`${id}${backend ? ` (${backend})` : ''}: ${tg.metric} = ${tg.actual} (target ${tg.want}) ${tg.met ? 'met' : 'MISSED'}`);
    } catch (err) {
      log(`${id} failed: ${(err as Error).stack ?? err}`);
      results.push({
        id,
        title: '',
        backend,
        params: {},
        targets: [],
        notes: [],
        error: String((err as Error).message ?? err),
        seconds: round((performance.now() - t) / 1000, 1),
      });
    }
    save();
  };

  let cleaning: Promise<void> | undefined;
  /** Stops what the run started (operators before what they use), removes its Docker objects, ends any process left. Once. */
  const cleanUp = () =>
    (cleaning ??= (async () => {
      log('cleanup');
      await ctx.teardown.all();
      await raw.cleanupByLabel(ctx.docker, raw.BENCH_RUN_LABEL, ctx.runId).catch((e) => log(`removing this run's Docker objects: ${e}`));
      for (const ns of ctx.namespaces)
        await raw.cleanupByLabel(ctx.docker, LABELS.namespace, ns).catch((e) => log(`removing namespace ${ns}'s Docker objects: ${e}`));
      const left = await endDescendants(5000);
      if (left.length) log(`ended ${left.length} process(es) still running: ${left.map((p) => p.pid).join(', ')}`);
    })());

  // Interrupted (Ctrl-C, SIGTERM) or a stray error: clean up as at the end, keep the partial results.
  let abortedWith: number | undefined;
  const abort = (why: string, code: number) => {
    if (abortedWith !== undefined) {
      killDescendants();
      process.exit(code);
    }
    abortedWith = code;
    log(`${why}: stopping what this run started and removing its Docker objects, then exiting (again to skip)`);
    void cleanUp()
      .catch((e) => log(`cleanup: ${(e as Error).stack ?? e}`))
      .finally(() => {
        save();
        process.exit(code);
      });
  };
  process.on('SIGINT', () => abort('SIGINT', 130));
  process.on('SIGTERM', () => abort('SIGTERM', 143));
  process.on('uncaughtException', (err) => abort(`uncaught: ${err.stack ?? err}`, 1));
  process.on('unhandledRejection', (err) => abort(`unhandled rejection: ${(err as Error)?.stack ?? err}`, 1));

  try {
    // P6 first: a fresh API server and etcd, before Docker work loads the machine.
    if (args.scenarios.includes('P6')) await run('P6', undefined, () => apiServerWrites(ctx));
    // What P6 leaves (its children's exit, the fsyncs' writeback) must not weigh on P1's first runs.
    if (args.scenarios.includes('P6') && needsDocker) {
      const q = await untilQuiet(90_000);
      log(`waited ${Math.round(q.waitedMs / 1000)} s after P6 for the machine to settle (1-min load ${q.load})`);
    }
    if (needsDocker) {
      const opProxy = (ctx.opProxy = await startProxyProcess(join(tmpdir(), `nbswarm-bench-${ctx.runId}-op.sock`)));
      ctx.teardown.add("the operator's Docker proxy", () => opProxy.close());
      const rawProxy = (ctx.rawProxy = await startProxyProcess(join(tmpdir(), `nbswarm-bench-${ctx.runId}-raw.sock`)));
      ctx.teardown.add("the raw baseline's Docker proxy", () => rawProxy.close());
      ctx.rawDocker = new Docker({ socketPath: ctx.rawProxy.socketPath });
      const api = (ctx.api = await startApiChild());
      ctx.teardown.add('the API server', () => api.stop());
      const kube = (ctx.kube = await Kube.fromKubeconfig(ctx.api.kubeconfigPath, { maxSockets: 32 }));
      ctx.teardown.add('the API clients', async () => kube.close());
      await ctx.kube.ensureCrd(loadCrd());
      for (const kind of args.backends) {
        if (args.scenarios.includes('P1')) await run('P1', kind, () => spawnLatency(ctx, kind));
        if (args.scenarios.includes('P2')) await run('P2', kind, () => burst(ctx, kind));
        if (args.scenarios.includes('P3') || args.scenarios.includes('P5')) {
          const n = args.scenarios.includes('P3') ? args.idleN : args.restartN;
          let fx: Fixture | undefined;
          try {
            fx = await convergedFixture(ctx, kind, n, 'p3');
            if (args.scenarios.includes('P3')) await run('P3', kind, () => idleCost(ctx, fx!));
            if (args.scenarios.includes('P5')) {
              // P5 wants restartN servers; top the fixture up (or reuse it) rather than rebuilding.
              if (args.restartN !== n) log(`P5 reuses the P3 fixture of ${n} servers (--restart-n ${args.restartN} ignored when P3 runs too)`);
              await run('P5', kind, () => operatorRestart(ctx, fx!));
            }
          } catch (err) {
            results.push({ id: 'P3/P5', title: 'fixture', backend: kind, params: { n }, targets: [], notes: [], error: String((err as Error).message) });
            log(`P3/P5 fixture failed: ${(err as Error).stack}`);
          } finally {
            if (fx) await removeFixture(ctx, fx).catch((e) => log(`fixture cleanup: ${e}`));
          }
        }
      }
      if (args.scenarios.includes('P4')) {
        const kind = args.backends[0]!;
        await run('P4', kind, () => scale(ctx, kind));
      }
    }
    if (args.scenarios.includes('P7')) {
      if (ctx.swarm) await run('P7', 'service', () => hubScenario(ctx));
      else log('P7 needs Docker Swarm: skipped');
    }
    if (args.scenarios.includes('P8')) await run('P8', 'service', () => multinodeScenario(ctx));
  } finally {
    await cleanUp();
  }
  if (abortedWith !== undefined) {
    save();
    return abortedWith;
  }

  const json = JSON.stringify(report(), null, 2);
  process.stdout.write(json + '\n');
  writeFileSync(file, json + '\n');
  process.stderr.write('\n' + resultTable(results) + '\n');
  log(`written ${file}`);
  return 0;
}

main()
  .then((code) => process.exit(code))
  .catch((err) => {
    log(`fatal: ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
