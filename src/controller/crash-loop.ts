/** The operator's own back-off for a server Docker stopped restarting (a crash loop). Pure. */
import type { ObservedServer } from '../backends/types.js';
import type { Policy } from '../config/types.js';

/** When the operator starts again a server that Docker stopped restarting. */
export interface BackOff {
  /** 1 for the first restart after a crash loop, 2 for the next… */
  attempt: number;
  delayMs: number;
  /** RFC 3339 time of the restart. */
  at: string;
}

/**
 * Back-off of a server Docker gave up on (observed 'failed'): its failure time plus initialSeconds
 * doubled per restart the operator already forced (capped at maxSeconds), or the initial delay
 * again when it had run resetAfterSeconds since it was last written.
 */
export function crashLoopBackOff(
  observed: Pick<ObservedServer, 'failedAt' | 'updatedAt' | 'forcedRestarts'>,
  policy: Pick<Policy, 'crashLoopBackOff'>,
  now: string,
): BackOff {
  const p = policy.crashLoopBackOff;
  const failedAt = Date.parse(observed.failedAt ?? '') || Date.parse(now);
  const since = Date.parse(observed.updatedAt ?? '') || failedAt;
  const forced = failedAt - since >= p.resetAfterSeconds * 1000 ? 0 : (observed.forcedRestarts ?? 0);
  const delayMs = Math.round(Math.min(p.initialSeconds * 1000 * 2 ** Math.min(forced, 30), p.maxSeconds * 1000));
  return { attempt: forced + 1, delayMs, at: new Date(failedAt + delayMs).toISOString() };
}
