/**
 * P2 burst: many NotebookServers created at once until every one is Ready and answering, against raw
 * Docker creating as many with the operator's concurrency. Raw goes first; both start from a daemon
 * holding none of this scenario's objects.
 */
import type { BackendKind } from '../../src/backends/types.js';
import { BenchContext, deleteAll, log, loopback } from '../lib/context.js';
import { diffCounts } from '../lib/docker-proxy.js';
import { ReadyTracker, benchServer } from '../lib/kube.js';
import * as raw from '../lib/raw-docker.js';
import type { ScenarioResult } from '../lib/result.js';
import { mapLimit, median, ratio, round, roundSummary, summarize } from '../lib/stats.js';
import { queueStats, type RunningOperator } from '../lib/stack.js';

export async function burst(ctx: BenchContext, kind: BackendKind): Promise<ScenarioResult> {
  const n = ctx.args.burst;
  const conc = await ctx.concurrency();
  const r: ScenarioResult = {
    id: 'P2',
    title: `burst: ${n} resources created at once → all Ready and answering, vs raw with the same concurrency`,
    backend: kind,
    params: { n, operatorConcurrency: conc, rawCreateConcurrency: conc, apiCreateConcurrency: 32 },
    targets: [],
    notes: [],
  };
  const running = await ctx.ensureOperator(kind);
  const ns = ctx.ns(`p2${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `p2-${i}`);
  const sentAt = new Map<string, number>();
  const answeredAt = new Map<string, number>();

  // Raw first, then nbswarm: both start from a daemon with none of this scenario's objects.
  log(`P2 ${kind}: raw burst of ${n}`);
  const rawBefore = await ctx.rawProxy.counts();
  const rb = await raw.rawBurst(kind, ctx.rawDocker, ctx.imageRef, ctx.imageId, n, conc, `${ctx.prefix}-raw-p2-${kind[0]}`, {
    ...ctx.runLabels,
    'nbswarm.bench/item': `p2${kind}`,
  });
  const rawCalls = diffCounts(await ctx.rawProxy.counts(), rawBefore);
  await raw.cleanupByLabel(ctx.docker, 'nbswarm.bench/item', `p2${kind}`);
  await ctx.containersGone('nbswarm.bench/item', `p2${kind}`);

  log(`P2 ${kind}: nbswarm burst of ${n}`);
  const q0 = queueStats(running.op.stats());
  const opBefore = await ctx.opProxy.counts();
  const sampler = sampleQueue(running);
  const t0 = performance.now();
  try {
    await mapLimit(names, 32, async (name, i) => {
      sentAt.set(name, performance.now());
      await ctx.kube.create(ns, benchServer(name, { user: `p2u${i}` }));
    });
    await Promise.all(
      names.map(async (name) => {
        await tracker.until(`${name} Ready`, () => tracker.readyAt.has(name) || tracker.failed.has(name), 600_000);
        if (tracker.failed.has(name)) throw new Error(`${name} Failed: ${tracker.failed.get(name)}`);
        await raw.waitHttp(loopback(tracker.readyAt.get(name)!.hostUrl), 60_000, 100);
        answeredAt.set(name, performance.now());
      }),
    );
  } finally {
    tracker.stop();
  }
  const wallMs = performance.now() - t0;
  const qs = sampler.stop();
  const q1 = queueStats(running.op.stats());
  const opCalls = diffCounts(await ctx.opProxy.counts(), opBefore);
  const reconciles = q1.reconciles - q0.reconciles;
  const per = names.map((nm) => answeredAt.get(nm)! - sentAt.get(nm)!);

  await deleteAll(ctx, ns, names);

  r.nbswarm = {
    wallMs: round(wallMs, 0),
    perResourceMs: roundSummary(summarize(per), 0),
    queueDepthMax: qs.depthMax,
    inFlightMax: qs.inFlightMax,
    reconciles,
    reconcilesPerSec: round(reconciles / (wallMs / 1000), 1),
    reconcileErrors: q1.errors - q0.errors,
    dockerCalls: opCalls,
  };
  r.raw = { wallMs: round(rb.wallMs, 0), perResourceMs: roundSummary(summarize(rb.perMs), 0), dockerCalls: rawCalls };
  const wr = ratio(wallMs, rb.wallMs);
  r.ratio = { wall: round(wr, 3), perResourceMedian: round(ratio(median(per), median(rb.perMs)), 3) };
  r.targets.push({ metric: 'wall-time ratio nbswarm/raw', want: '≤ 1.2', actual: round(wr, 3), met: wr <= 1.2 });
  return r;
}

/** The operator's stats() sampled while something runs: queue depth max, in-flight max. */
function sampleQueue(op: RunningOperator, everyMs = 250): { stop(): { depthMax: number; inFlightMax: number; samples: number } } {
  let depthMax = 0;
  let inFlightMax = 0;
  let samples = 0;
  const t = setInterval(() => {
    const q = queueStats(op.op.stats());
    depthMax = Math.max(depthMax, q.depth);
    inFlightMax = Math.max(inFlightMax, q.inFlight);
    samples++;
  }, everyMs);
  return {
    stop: () => {
      clearInterval(t);
      return { depthMax, inFlightMax, samples };
    },
  };
}
