/**
 * P5 operator restart: with the fixture's servers running, the operator is stopped and started again;
 * measured until it is converged (first list done, every resource reconciled, queue empty) and how
 * many Docker writes and status patches that cost (0 writes wanted). Raw: one list of the state.
 */
import { LABELS } from '../../src/api/types.js';
import { BenchContext } from '../lib/context.js';
import { diffCounts } from '../lib/docker-proxy.js';
import { ReadyTracker } from '../lib/kube.js';
import type { ScenarioResult } from '../lib/result.js';
import { ratio, round, sleep } from '../lib/stats.js';
import { informerSynced, queueStats, reconcilerStats } from '../lib/stack.js';
import { quiesce, type Fixture } from './fixture.js';
import { profileWindow } from '../lib/cpu-profile.js';

export async function operatorRestart(ctx: BenchContext, fx: Fixture): Promise<ScenarioResult> {
  const n = fx.names.length;
  const r: ScenarioResult = {
    id: 'P5',
    title: `restart: operator restarted with ${n} running servers → converged`,
    backend: fx.kind,
    params: { n },
    targets: [],
    notes: [],
  };
  await quiesce(ctx);
  await ctx.stopOperator();
  const tracker = new ReadyTracker(ctx.kube, fx.ns);
  await tracker.start();
  const c0 = await ctx.opProxy.counts();
  const prof = await profileWindow('p5-restart');
  const t0 = performance.now();
  const op = await ctx.ensureOperator(fx.kind);
  const tStarted = performance.now();
  // Converged: first list done, every resource reconciled once, queue empty, nothing running.
  let convergedAt = NaN;
  const deadline = Date.now() + 120_000 + n * 200;
  while (Date.now() < deadline) {
    const s = op.op.stats();
    const q = queueStats(s);
    if (informerSynced(s) && q.reconciles >= n && q.depth === 0 && q.inFlight === 0) {
      convergedAt = performance.now();
      break;
    }
    await sleep(20);
  }
  const profFile = await prof.stop();
  if (profFile) r.notes.push(`CPU profile of the restart window (bench process, operator in it): ${profFile}`);
  await sleep(1000);
  const calls = diffCounts(await ctx.opProxy.counts(), c0);
  const rs = reconcilerStats(op.op.stats());
  tracker.stop();
  const convergeMs = convergedAt - t0;

  const tl = performance.now();
  const filters = JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] });
  if (fx.kind === 'service') {
    await ctx.rawDocker.listServices({ filters } as any);
    await ctx.rawDocker.listTasks({ filters } as any);
  } else await ctx.rawDocker.listContainers({ all: true, filters });
  const rawListMs = performance.now() - tl;

  r.nbswarm = {
    convergeMs: round(convergeMs, 0),
    startOperatorMs: round(tStarted - t0, 0),
    dockerCalls: calls,
    statusPatches: rs.statusPatches,
    apiModifiedEvents: tracker.modified,
    reconciles: queueStats(op.op.stats()).reconciles,
  };
  r.raw = { listStateMs: round(rawListMs, 1) };
  r.ratio = { convergeVsRawList: round(ratio(convergeMs, rawListMs), 1) };
  r.targets.push({ metric: 'time to converged', want: '< 3000 ms', actual: round(convergeMs, 0), met: convergeMs < 3000 });
  r.targets.push({ metric: 'Docker writes during restart', want: '0', actual: calls.writes, met: calls.writes === 0 });
  if (!Number.isFinite(convergeMs)) r.notes.push('did not converge within the timeout');
  return r;
}
