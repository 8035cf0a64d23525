/**
 * The fixture P3 (idle cost) and P5 (operator restart) share: n servers created and converged once,
 * measured by both, then deleted through the API.
 */
import type { BackendKind } from '../../src/backends/types.js';
import { BenchContext, deleteAll, log } from '../lib/context.js';
import { ReadyTracker, benchServer } from '../lib/kube.js';
import { mapLimit, sleep } from '../lib/stats.js';
import { queueStats } from '../lib/stack.js';

export interface Fixture {
  ns: string;
  names: string[];
  kind: BackendKind;
}

export async function convergedFixture(ctx: BenchContext, kind: BackendKind, n: number, tag: string): Promise<Fixture> {
  await ctx.ensureOperator(kind);
  const ns = ctx.ns(`${tag}${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
  const t0 = performance.now();
  try {
    await mapLimit(names, 32, (name, i) => ctx.kube.create(ns, benchServer(name, { user: `${tag}u${i}` })));
    await tracker.until(`${n} servers Ready`, () => names.every((nm) => tracker.readyAt.has(nm)), 120_000 + n * 2000);
  } finally {
    tracker.stop();
  }
  log(`${tag} ${kind}: ${n} servers Ready in ${Math.round(performance.now() - t0)} ms`);
  return { ns, names, kind };
}

/** Wait until the operator's queue is empty and nothing runs, twice in a row. */
export async function quiesce(ctx: BenchContext, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  while (Date.now() < deadline) {
    const q = queueStats(ctx.operator!.op.stats());
    calm = q.depth === 0 && q.inFlight === 0 ? calm + 1 : 0;
    if (calm >= 4) return;
    await sleep(250);
  }
}

export async function removeFixture(ctx: BenchContext, fx: Fixture): Promise<void> {
  await deleteAll(ctx, fx.ns, fx.names);
}
