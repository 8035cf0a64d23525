/**
 * The phases and conditions a status moves through outside a converged observation: starting a
 * generation, waiting, failing (stalled or retried), stopping, terminating, and the image
 * condition. Reconciling and Stalled always follow the phase, as kstatus reads them. Pure.
 */
import { ANNOTATIONS } from '../api/names.js';
import type { Condition, NotebookServer, NotebookServerStatus, Phase } from '../api/types.js';
import type { BackendKind, ResolvedImage } from '../backends/types.js';
import { withoutUndefined } from '../util/json.js';
import { setCondition, setConditionIn } from './conditions.js';

export type Conds = Record<string, Omit<Condition, 'type'>>;

/**
 * The status a reconcile starts from: the stored one. status.observedGeneration moves only when
 * a status for the new generation is written, i.e. once the operator has acted on it. A Failed
 * verdict on an earlier generation says nothing about this one (a new start must never be
 * answered with the failure of the last), so it becomes Pending until this generation is judged.
 */
export function startingStatus(obj: NotebookServer, now = new Date().toISOString()): NotebookServerStatus {
  const status: NotebookServerStatus = withoutUndefined(obj.status ?? {});
  if (status.phase !== 'Failed' || obj.status?.observedGeneration === obj.metadata.generation) return status;
  const message = `converging generation ${obj.metadata.generation}`;
  delete status.endpoint;
  return withPhase(status, 'Pending', message, { Ready: { status: 'False', reason: 'Progressing', message } }, now);
}

/** Phases in which the operator is still converging the server to its spec. */
const CONVERGING: ReadonlySet<Phase> = new Set(['Pending', 'Creating', 'Stopping', 'Terminating']);

/**
 * Reconciling and Stalled for a phase, as kstatus (kubernetes-sigs/cli-utils) reads them:
 * Reconciling=True while converging (or retrying a failure that may pass), Stalled=True when the
 * server cannot converge without a change of its spec or of the policy (a Failed phase, unless the
 * caller says the failure is retried).
 */
function health(phase: Phase, reason: string | undefined, message: string): Conds {
  const notStalled = { status: 'False' as const, reason: 'AsExpected', message: '' };
  if (CONVERGING.has(phase)) return { Reconciling: { status: 'True', reason: reason ?? phase, message }, Stalled: notStalled };
  if (phase === 'Failed')
    return { Reconciling: { status: 'False', reason: 'Stalled', message: '' }, Stalled: { status: 'True', reason: reason ?? 'Failed', message } };
  return { Reconciling: { status: 'False', reason: 'Converged', message: '' }, Stalled: notStalled };
}

/** `status` in `phase`, with `conds` set and Reconciling/Stalled derived from the phase unless `conds` sets them. */
export function withPhase(status: NotebookServerStatus, phase: Phase, message: string, conds: Conds, now: string): NotebookServerStatus {
  const conditions = status.conditions ? status.conditions.slice() : [];
  const all = { ...health(phase, conds.Ready?.reason, message), ...conds };
  for (const type in all) setConditionIn(conditions, { type, ...all[type]! }, now);
  return { ...status, phase, message, conditions };
}

/** A failure the operator keeps retrying (Docker unreachable, a pull that may pass): Reconciling, not Stalled. */
const RETRYING = (message: string): Conds => ({
  Reconciling: { status: 'True', reason: 'Retrying', message },
  Stalled: { status: 'False', reason: 'Retrying', message: '' },
});

/** Failed with Ready=False for `reason`; Stalled unless `retrying`. */
export function failedStatus(status: NotebookServerStatus, reason: string, message: string, now: string, retrying = false): NotebookServerStatus {
  return withPhase(status, 'Failed', message, { Ready: { status: 'False', reason, message }, ...(retrying ? RETRYING(message) : {}) }, now);
}

/**
 * The status as written for `generation`: status.observedGeneration and every condition's
 * observedGeneration say which spec the operator acted on.
 */
export function forGeneration(status: NotebookServerStatus, generation: number | undefined): NotebookServerStatus {
  if (generation === undefined) return status;
  return { ...status, observedGeneration: generation, conditions: status.conditions?.map((c) => ({ ...c, observedGeneration: generation })) };
}

/** Terminating while the finalizer removes the Docker object; undefined when it already says so. */
export function terminatingStatus(old: NotebookServerStatus, now: string): NotebookServerStatus | undefined {
  if (old.phase === 'Terminating') return undefined;
  const msg = 'removing the server; volumes are kept';
  return withPhase(withoutUndefined({ ...old }), 'Terminating', msg, { Ready: { status: 'False', reason: 'Terminating', message: msg } }, now);
}

/** Pending (or the phase it had, while its object exists) while something it needs is not there yet. */
export function waitingStatus(status: NotebookServerStatus, hasObject: boolean, reason: string, message: string, now: string): NotebookServerStatus {
  return withPhase(
    status,
    hasObject ? (status.phase ?? 'Pending') : 'Pending',
    message,
    {
      Ready: { status: 'False', reason, message },
      Reconciling: { status: 'True', reason, message },
      Stalled: { status: 'False', reason: 'AsExpected', message: '' },
    },
    now,
  );
}

export function imageResolved(status: NotebookServerStatus, image: string, resolved: ResolvedImage, now: string): NotebookServerStatus {
  return {
    ...status,
    conditions: setCondition(status.conditions, { type: 'ImageReady', status: 'True', reason: 'Resolved', message: `${image} → ${resolved.pinned}` }, now),
  };
}

export function imageFailedStatus(status: NotebookServerStatus, reason: string, message: string, now: string): NotebookServerStatus {
  const s = { ...status, conditions: setCondition(status.conditions, { type: 'ImageReady', status: 'False', reason, message }, now) };
  // A missing image needs a spec change (or an image built); a failed pull is retried.
  return failedStatus(s, reason, message, now, reason !== 'ImageNotFound');
}
/** A Docker call failed while converging. */
export function dockerFailedStatus(status: NotebookServerStatus, reason: string, message: string, now: string): NotebookServerStatus {
  const s = failedStatus(status, reason, message, now, true);
  return { ...s, conditions: setCondition(s.conditions, { type: 'Degraded', status: 'True', reason, message }, now) };
}

/** Stopped (done) or Stopping; `name` is the server's Docker object, if it has one. */
export function stoppedStatus(
  obj: NotebookServer,
  base: NotebookServerStatus,
  done: boolean,
  kind: BackendKind,
  now: string,
  name?: string,
): NotebookServerStatus {
  const status = { ...base };
  delete status.endpoint;
  if (!name) delete status.backend;
  const annotated = obj.spec.stopped !== true;
  const why = annotated
    ? ` by annotation ${ANNOTATIONS.stopped} (${obj.metadata.annotations?.[ANNOTATIONS.stoppedReason] ?? 'manual'}); remove it or change spec to start again`
    : '';
  const conds: Conds = {
    Ready: { status: 'False', reason: done ? 'Stopped' : 'Stopping', message: done ? 'server is stopped; volumes kept' : 'stopping' },
    Scheduled: { status: 'False', reason: 'Stopped', message: 'server is stopped' },
    Degraded: { status: 'False', reason: 'AsExpected', message: '' },
  };
  if (!name) return withPhase(status, 'Stopped', `stopped${why}; no ${kind} exists until it starts`, conds, now);
  return withPhase(status, done ? 'Stopped' : 'Stopping', done ? `${name} is stopped${why}` : `stopping ${name}`, conds, now);
}
