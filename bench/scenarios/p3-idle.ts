/**
 * P3 idle cost: converged servers left alone for a window of several resyncs; the operator's Docker
 * calls are counted by its proxy (0 writes wanted, at most one list of each kind per resync) and its
 * CPU read. The raw side's floor: an idle spawner makes no calls; knowing the state is one list of each.
 */
import { LABELS } from '../../src/api/types.js';
import { BenchContext } from '../lib/context.js';
import { diffCounts, isList } from '../lib/docker-proxy.js';
import type { ScenarioResult } from '../lib/result.js';
import { round, sleep } from '../lib/stats.js';
import { queueStats } from '../lib/stack.js';
import { quiesce, type Fixture } from './fixture.js';

export async function idleCost(ctx: BenchContext, fx: Fixture): Promise<ScenarioResult> {
  const window = ctx.args.idleSeconds;
  const resync = ctx.args.resyncSeconds;
  const resyncs = Math.ceil(window / resync);
  const r: ScenarioResult = {
    id: 'P3',
    title: `idle cost: ${fx.names.length} converged resources, ${window} s of resyncs every ${resync} s`,
    backend: fx.kind,
    params: { n: fx.names.length, windowSeconds: window, resyncSeconds: resync, resyncsInWindow: resyncs },
    targets: [],
    notes: [],
  };
  await quiesce(ctx);
  await sleep(2000);
  const c0 = await ctx.opProxy.counts();
  const cpu0 = process.cpuUsage();
  const st0 = ctx.operator!.op.stats();
  const t0 = performance.now();
  await sleep(window * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const c1 = await ctx.opProxy.counts();
  const st1 = ctx.operator!.op.stats();
  const calls = diffCounts(c1, c0);
  const listKinds: Record<string, number> = {};
  const otherReads: Record<string, number> = {};
  for (const [k, v] of Object.entries(calls.byKind)) {
    const [m, p] = k.split(' ');
    if (isList(m!, p!)) listKinds[k] = v;
    else if (m === 'GET' || m === 'HEAD') otherReads[k] = v;
  }
  const maxListPerKind = Math.max(0, ...Object.values(listKinds));
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const rq0 = queueStats(st0);
  const rq1 = queueStats(st1);

  // Raw: an idle raw spawner makes no calls; the floor for "knowing the state" is one list of each kind.
  const tl = performance.now();
  await ctx.rawDocker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) });
  if (fx.kind === 'service') {
    await ctx.rawDocker.listServices({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) } as any);
    await ctx.rawDocker.listTasks({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) } as any);
  }
  const rawListMs = performance.now() - tl;

  r.nbswarm = {
    elapsedSeconds: round(elapsed, 1),
    dockerCalls: calls,
    listCallsByKind: listKinds,
    otherReadsByKind: otherReads,
    readsPerResourcePerResync: round((calls.total - calls.writes) / fx.names.length / resyncs, 2),
    reconciles: rq1.reconciles - rq0.reconciles,
    operatorCpuMs: round(cpuMs, 0),
    operatorCpuPercentOfOneCore: round((cpuMs / 1000 / elapsed) * 100, 2),
    apiServerCpuMsTotal: round(ctx.api.cpuMs(), 0),
  };
  r.raw = { idleCalls: 0, oneFullListMs: round(rawListMs, 1) };
  r.notes.push('operator CPU is this process (operator + an idle bench harness); the proxy and the API server run in their own processes.');
  r.notes.push('other helpers share this daemon: Docker events about their objects can wake the operator and add reads.');
  r.targets.push({ metric: 'Docker writes while idle', want: '0', actual: calls.writes, met: calls.writes === 0 });
  r.targets.push({
    metric: `max list calls of one kind (${resyncs} resyncs in window)`,
    want: `≤ ${resyncs} (1 per resync per kind)`,
    actual: maxListPerKind,
    met: maxListPerKind <= resyncs,
  });
  return r;
}
