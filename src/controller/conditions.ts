/**
 * Conditions whose lastTransitionTime moves only when their status does (apimachinery's
 * meta.SetStatusCondition), so a converged reconcile computes the same conditions and writes nothing.
 */
import type { Condition } from '../api/types.js';
import { nowIso } from '../util/time.js';

/** Set `c` in `conds` (returns a new array); keeps lastTransitionTime when the status did not change. */
export function setCondition(conds: Condition[] | undefined, c: Condition, now = nowIso()): Condition[] {
  const out = conds ? conds.slice() : [];
  setConditionIn(out, c, now);
  return out;
}

/** setCondition on `conds` itself: for a caller that sets several conditions on one copy. */
export function setConditionIn(conds: Condition[], c: Condition, now: string): void {
  const i = conds.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? conds[i] : undefined;
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastTransitionTime: prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
  };
  if (c.observedGeneration !== undefined) next.observedGeneration = c.observedGeneration;
  if (next.reason === undefined) delete next.reason;
  if (next.message === undefined) delete next.message;
  if (i >= 0) conds[i] = next;
  else conds.push(next);
}

export function getCondition(conds: Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}
