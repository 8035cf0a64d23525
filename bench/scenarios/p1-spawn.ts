/**
 * P1 spawn latency: one NotebookServer created through the API → Ready → its endpoint answering HTTP,
 * against the raw baseline (create → running → answering with dockerode alone), alternating which
 * side goes first so drift in the machine's load hits both alike. The last run records a timeline of
 * Docker calls and status changes to explain the gap to raw.
 */
import { LABELS } from '../../src/api/types.js';
import type { BackendKind } from '../../src/backends/types.js';
import { BenchContext, log, loopback } from '../lib/context.js';
import { diffCounts, type CallCounts } from '../lib/docker-proxy.js';
import { ReadyTracker, benchServer } from '../lib/kube.js';
import * as raw from '../lib/raw-docker.js';
import type { ScenarioResult } from '../lib/result.js';
import { median, ratio, round, roundSummary, summarize } from '../lib/stats.js';

export async function spawnLatency(ctx: BenchContext, kind: BackendKind): Promise<ScenarioResult> {
  const runs = ctx.args.runs;
  const r: ScenarioResult = {
    id: 'P1',
    title: 'spawn latency: API create → Ready + endpoint answering, vs raw create → running → answering',
    backend: kind,
    params: { runs, image: ctx.imageRef, order: 'alternating raw/nbswarm' },
    targets: [],
    notes: [],
  };
  await ctx.ensureOperator(kind);
  const ns = ctx.ns(`p1${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const opMs: number[] = [];
  const opAckMs: number[] = [];
  const opReadyMs: number[] = [];
  const rawMs: number[] = [];
  const opCalls: CallCounts[] = [];
  const rawCalls: CallCounts[] = [];
  let timeline: Record<string, unknown> | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      const doOp = async () => {
        const name = `p1-${i}`;
        const before = await ctx.opProxy.counts();
        const traced = i === runs - 1;
        if (traced) {
          await ctx.opProxy.startTrace();
          tracker.timeline = [];
        }
        const wall0 = Date.now();
        const t0 = performance.now();
        await ctx.kube.create(ns, benchServer(name, { user: `p1u${i}` }));
        const tAck = performance.now();
        await tracker.until(`${ns}/${name} Ready`, () => tracker.readyAt.has(name) || tracker.failed.has(name), 120_000);
        if (tracker.failed.has(name)) throw new Error(`${name} Failed: ${tracker.failed.get(name)}`);
        const ready = tracker.readyAt.get(name)!;
        await raw.waitHttp(loopback(ready.hostUrl));
        const t1 = performance.now();
        opMs.push(t1 - t0);
        opAckMs.push(tAck - t0);
        opReadyMs.push(ready.at - t0);
        opCalls.push(diffCounts(await ctx.opProxy.counts(), before));
        if (traced) {
          // One spawn's timeline (ms from the create request): Docker calls and status changes, to explain the gap to raw.
          const docker = (await ctx.opProxy.stopTrace()).map(([t, k]) => `${t - wall0} ${k}`);
          const api = (tracker.timeline ?? []).map(([t, , type, phase, msg]) => `${t - wall0} ${type} ${phase} ${msg}`);
          tracker.timeline = undefined;
          timeline = { dockerCalls: docker, apiEvents: api, httpAnsweredMs: round(t1 - t0, 0) };
        }
        await ctx.kube.remove(ns, name);
        await tracker.until(`${name} deleted`, () => tracker.deletedAt.has(name), 120_000);
        await ctx.containersGone(LABELS.namespace, ns);
      };
      const doRaw = async () => {
        const name = `${ctx.prefix}-raw-p1-${kind[0]}-${i}`;
        const before = await ctx.rawProxy.counts();
        const res = await raw.rawSpawn(kind, ctx.rawDocker, ctx.imageRef, ctx.imageId, name, { ...ctx.runLabels, 'nbswarm.bench/item': name });
        rawMs.push(res.ms);
        rawCalls.push(diffCounts(await ctx.rawProxy.counts(), before));
        await raw.removeSpawned(kind, ctx.docker, [res.id]);
        await ctx.containersGone('nbswarm.bench/item', name);
      };
      // Alternate the order so drift in machine load hits both sides alike.
      if (i % 2 === 0) {
        await doRaw();
        await doOp();
      } else {
        await doOp();
        await doRaw();
      }
      log(`P1 ${kind} run ${i + 1}/${runs}: nbswarm ${Math.round(opMs[opMs.length - 1]!)} ms, raw ${Math.round(rawMs[rawMs.length - 1]!)} ms`);
    }
  } finally {
    tracker.stop();
  }
  const op = summarize(opMs);
  const rw = summarize(rawMs);
  const medianRatio = ratio(op.median, rw.median);
  r.nbswarm = {
    totalMs: roundSummary(op),
    createAckMs: roundSummary(summarize(opAckMs)),
    readyObservedMs: roundSummary(summarize(opReadyMs)),
    dockerCallsPerSpawn: medianCalls(opCalls),
    lastRunTimeline: timeline,
  };
  r.raw = { totalMs: roundSummary(rw), dockerCallsPerSpawn: medianCalls(rawCalls) };
  r.ratio = { median: round(medianRatio, 3), min: round(ratio(op.min, rw.min), 3), max: round(ratio(op.max, rw.max), 3) };
  r.targets.push({ metric: 'median ratio nbswarm/raw', want: '≤ 1.10', actual: round(medianRatio, 3), met: medianRatio <= 1.1 });
  return r;
}

/** Per-kind median of call counts over several runs (what one spawn costs in Docker calls). */
function medianCalls(list: CallCounts[]): Record<string, number> & { _total: number; _writes: number } {
  const kinds = new Set(list.flatMap((c) => Object.keys(c.byKind)));
  const out: Record<string, number> = {};
  for (const k of [...kinds].sort()) out[k] = median(list.map((c) => c.byKind[k] ?? 0));
  return Object.assign(out, { _total: median(list.map((c) => c.total)), _writes: median(list.map((c) => c.writes)) });
}
