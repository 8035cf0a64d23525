/**
 * status as a pure function of what a reconcile found: the object (its previous status, spec and
 * annotations), the desired server, and what Docker shows (observed object, image, whether the
 * server answers). Every phase, condition, message and Event of a NotebookServer is derived here,
 * so each transition is unit-tested without Docker or an API server; the reconciler gathers the
 * facts and writes the result.
 */
import { ANNOTATIONS } from '../api/names.js';
import type { Condition, NotebookServer, NotebookServerStatus, Phase } from '../api/types.js';
import type { BackendKind, DesiredServer, ObservedServer, ResolvedImage } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { jsonEqual, mergePatchBetween, withoutUndefined } from '../util/json.js';
import { getCondition, setCondition } from './conditions.js';
import { endpointFor } from './desired.js';
import type { EventType } from './events.js';
import { loopbackUrl } from './netutil.js';

export interface EventSpec {
  type: EventType;
  reason: string;
  message: string;
}

export interface StatusOutcome {
  status: NotebookServerStatus;
  /** Recorded only together with a visible change of status (no Event spam on resync). */
  event?: EventSpec;
  requeueAfterMs?: number;
  /**
   * The server is on its way through this stage (a task being scheduled, a container starting, a
   * server not answering yet): poll it. The queue's progress clock picks the delay per stage.
   */
  progress?: string;
}

/** Requeue while a server is stopping (Docker events usually arrive first). */
export const CONVERGING_REQUEUE_MS = 1000;
/** Look again at a failed task (Swarm may retry it; a container may be restarted). */
export const FAILED_REQUEUE_MS = 5000;

type Conds = Record<string, Omit<Condition, 'type'>>;

/**
 * The status a reconcile starts from: the stored one. status.observedGeneration moves only when
 * a status for the new generation is written, i.e. once the operator has acted on it.
 */
export function startingStatus(obj: NotebookServer): NotebookServerStatus {
  return withoutUndefined(obj.status ?? {});
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
  if (phase === 'Failed') return { Reconciling: { status: 'False', reason: 'Stalled', message: '' }, Stalled: { status: 'True', reason: reason ?? 'Failed', message } };
  return { Reconciling: { status: 'False', reason: 'Converged', message: '' }, Stalled: notStalled };
}

/** `status` in `phase`, with `conds` set and Reconciling/Stalled derived from the phase unless `conds` sets them. */
export function withPhase(status: NotebookServerStatus, phase: Phase, message: string, conds: Conds, now: string): NotebookServerStatus {
  const s = { ...status, phase, message };
  const all = { ...health(phase, conds.Ready?.reason, message), ...conds };
  for (const [type, c] of Object.entries(all)) s.conditions = setCondition(s.conditions, { type, ...c }, now);
  return s;
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
  return withPhase(status, hasObject ? (status.phase ?? 'Pending') : 'Pending', message, {
    Ready: { status: 'False', reason, message },
    Reconciling: { status: 'True', reason, message },
    Stalled: { status: 'False', reason: 'AsExpected', message: '' },
  }, now);
}

export function imageResolved(status: NotebookServerStatus, image: string, resolved: ResolvedImage, now: string): NotebookServerStatus {
  return { ...status, conditions: setCondition(status.conditions, { type: 'ImageReady', status: 'True', reason: 'Resolved', message: `${image} → ${resolved.pinned}` }, now) };
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
export function stoppedStatus(obj: NotebookServer, base: NotebookServerStatus, done: boolean, kind: BackendKind, now: string, name?: string): NotebookServerStatus {
  const status = { ...base };
  delete status.endpoint;
  if (!name) delete status.backend;
  const annotated = obj.spec.stopped !== true;
  const why = annotated ? ` by annotation ${ANNOTATIONS.stopped} (${obj.metadata.annotations?.[ANNOTATIONS.stoppedReason] ?? 'manual'}); remove it or change spec to start again` : '';
  const conds: Conds = {
    Ready: { status: 'False', reason: done ? 'Stopped' : 'Stopping', message: done ? 'server is stopped; volumes kept' : 'stopping' },
    Scheduled: { status: 'False', reason: 'Stopped', message: 'server is stopped' },
    Degraded: { status: 'False', reason: 'AsExpected', message: '' },
  };
  if (!name) return withPhase(status, 'Stopped', `stopped${why}; no ${kind} exists until it starts`, conds, now);
  return withPhase(status, done ? 'Stopped' : 'Stopping', done ? `${name} is stopped${why}` : `stopping ${name}`, conds, now);
}

/** The URL to probe for "the server answers", when its object runs and it is reachable on loopback. */
export function probeUrlFor(desired: DesiredServer, observed: ObservedServer, policy: Pick<Policy, 'publishHostIp'>, stopped: boolean): string | undefined {
  if (stopped || observed.state !== 'running') return undefined;
  return loopbackUrl(endpointFor(desired, observed, policy).hostUrl);
}

export interface Observation {
  obj: NotebookServer;
  /** Status so far (generation, image, build). */
  base: NotebookServerStatus;
  desired: DesiredServer;
  observed: ObservedServer;
  image: ResolvedImage;
  kind: BackendKind;
  policy: Pick<Policy, 'publishHostIp'>;
  stopped: boolean;
  /** Whether the server answered on its probe URL (true when there was nothing to probe). */
  answering: boolean;
  now: string;
}

/** Status of a server whose Docker object was just converged and observed. */
export function observedStatus(o: Observation): StatusOutcome {
  const { obj, desired, observed, now } = o;
  const name = observed.name;
  let status: NotebookServerStatus = { ...o.base };
  status.backend = withoutUndefined({ kind: o.kind, id: observed.id, name, node: observed.node, image: desired.image, imageId: o.image.id });
  if (o.stopped) {
    const done = observed.state === 'stopped' || observed.state === 'missing' || (observed.replicas === 0 && observed.state !== 'running');
    return { status: stoppedStatus(obj, status, done, o.kind, now, name), requeueAfterMs: done ? undefined : CONVERGING_REQUEUE_MS };
  }
  const dockerMsg = observed.message ? `: ${observed.message}` : '';
  const prevReady = getCondition(obj.status?.conditions, 'Ready');
  const progress = (reason: string, eventReason: string, message: string, scheduled: Condition['status']): StatusOutcome => {
    const s = withPhase(status, 'Creating', message, {
      Ready: { status: 'False', reason, message },
      Scheduled: { status: scheduled, reason: scheduled === 'True' ? 'Scheduled' : 'Pending', message },
      Degraded: { status: 'False', reason: 'AsExpected', message: '' },
    }, now);
    const event = prevReady?.reason !== reason ? { type: 'Normal' as const, reason: eventReason, message } : undefined;
    return { status: s, event, progress: `${reason}: ${message}` };
  };
  switch (observed.state) {
    case 'running': {
      const ep = endpointFor(desired, observed, o.policy);
      status.conditions = setCondition(status.conditions, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `running on ${observed.node ?? 'this host'}` }, now);
      status.conditions = setCondition(status.conditions, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }, now);
      status.endpoint = withoutUndefined(ep);
      if (!o.answering) {
        status = withPhase(status, 'Creating', `${name} is starting; waiting for it to answer on ${ep.hostUrl}`, {
          Ready: { status: 'False', reason: 'Starting', message: `container is running; waiting for the server to answer on ${ep.hostUrl}` },
        }, now);
        return { status, progress: 'answering' };
      }
      status = withPhase(status, 'Running', `${name} is running${ep.hostUrl ? ` at ${ep.hostUrl}` : ''}`, {
        Ready: { status: 'True', reason: 'Running', message: `answering on ${ep.hostUrl ?? ep.url ?? name}` },
      }, now);
      const event = prevReady?.status !== 'True' ? { type: 'Normal' as const, reason: 'Ready', message: `server answers at ${ep.hostUrl ?? ep.url}` } : undefined;
      return { status, event };
    }
    case 'preparing':
      return progress('Preparing', 'ImagePulling', `Swarm is preparing the task (pulling/checking image ${desired.image})${dockerMsg}`, 'True');
    case 'starting':
      return progress('Starting', 'Starting', `${name} is starting${dockerMsg}`, 'True');
    case 'pending':
      return progress('Pending', 'Pending', `${name} is waiting to be scheduled${dockerMsg}`, 'False');
    case 'missing':
      return progress('Pending', 'Pending', `${name} has no task/container yet${dockerMsg}`, 'False');
    case 'stopped':
      return progress('Starting', 'Starting', `${name} is not running yet${dockerMsg}`, 'True');
    case 'rejected':
    case 'failed':
    default: {
      const reason = observed.state === 'rejected' ? 'TaskRejected' : 'TaskFailed';
      const msg = `${name} ${observed.state}${dockerMsg}`;
      // A failed task's published port is gone (a retry gets a new one): no stale URL in status.
      delete status.endpoint;
      status = withPhase(status, 'Failed', msg, { Ready: { status: 'False', reason, message: msg }, Degraded: { status: 'True', reason, message: msg } }, now);
      const event = prevReady?.reason !== reason || prevReady?.message !== msg ? { type: 'Warning' as const, reason, message: msg } : undefined;
      return { status, event, requeueAfterMs: FAILED_REQUEUE_MS };
    }
  }
}

export interface StatusWrite {
  /** The merge patch of `status`; undefined when nothing changed (a converged reconcile writes nothing). */
  patch?: Record<string, unknown>;
  /** The Event to record once the patch is written, if any. */
  event?: EventSpec;
}

/** What to write for `next` over `old`: a merge patch, and the Event only when phase, message or Ready changed. */
export function planStatusWrite(old: NotebookServerStatus, next: NotebookServerStatus, event?: EventSpec): StatusWrite {
  const target = withoutUndefined(next);
  for (const c of target.conditions ?? []) if (c.message === '') delete c.message;
  const patch = mergePatchBetween(withoutUndefined(old), target);
  if (!patch) return {};
  const changedVisible = old.phase !== target.phase || old.message !== target.message;
  const readyChanged = !jsonEqual(getCondition(old.conditions, 'Ready'), getCondition(target.conditions, 'Ready'));
  return { patch, event: event && (changedVisible || readyChanged) ? event : undefined };
}
