/**
 * status as a pure function of what a reconcile found: the object (its previous status, spec and
 * annotations), the desired server, and what Docker shows (observed object, image, whether the
 * server answers). Every phase, condition, message and Event of a NotebookServer is derived here,
 * so each transition is unit-tested without Docker or an API server; the reconciler gathers the
 * facts and writes the result. This file judges an observed server and plans the write; the
 * transitions around it are in ./status-phases.ts, the crash-loop back-off in ./crash-loop.ts.
 */
import { ANNOTATIONS } from '../api/names.js';
import type { Condition, NotebookServer, NotebookServerStatus } from '../api/types.js';
import type { BackendKind, ClusterView, DesiredServer, NodeView, ObservedServer, ResolvedImage } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { jsonEqual, mergePatchBetween, withoutUndefined } from '../util/json.js';
import { getCondition, setCondition } from './conditions.js';
import type { BackOff } from './crash-loop.js';
import { endpointFor } from './endpoint.js';
import type { EventType } from './events.js';
import { probeUrl } from './netutil.js';
import { ANSWERING_STAGE, STOPPING_STAGE } from './progress.js';
import { stoppedStatus, withPhase } from './status-phases.js';

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

/** Look again at a failed task (Swarm may retry it; a container may be restarted). */
export const FAILED_REQUEUE_MS = 5000;
/** Look again at a server whose volumes' node is unavailable (node events usually come first). */
export const VOLUME_UNAVAILABLE_REQUEUE_MS = 15_000;

/** Remove condition `type`, if present. */
function dropCondition(conds: Condition[] | undefined, type: string): Condition[] | undefined {
  if (!conds?.some((c) => c.type === type)) return conds;
  const out = conds.filter((c) => c.type !== type);
  return out.length ? out : undefined;
}

/** The URL to probe for "the server answers", when its object runs and its address is one the policy lets the operator probe. */
export function probeUrlFor(
  desired: DesiredServer,
  observed: ObservedServer,
  policy: Pick<Policy, 'publishHostIp' | 'probeNetworks'>,
  stopped: boolean,
): string | undefined {
  if (stopped || observed.state !== 'running') return undefined;
  return probeUrl(endpointFor(desired, observed, policy).hostUrl, policy.probeNetworks ?? ['127.0.0.0/8', '::1/128']);
}

/** Why a server pinned to node `hostname` cannot run there now, or undefined when it can. */
export function volumeNodeProblem(hostname: string, nodes: readonly NodeView[]): { reason: string; message: string } | undefined {
  const n = nodes.find((x) => x.hostname === hostname);
  if (!n) return { reason: 'NodeGone', message: `node ${hostname} is not part of the Swarm any more` };
  if (n.state !== 'ready') return { reason: 'NodeDown', message: `node ${hostname} is ${n.state}` };
  if (n.availability === 'drain') return { reason: 'NodeDrained', message: `node ${hostname} is drained` };
  if (n.availability !== 'active') return { reason: 'NodePaused', message: `node ${hostname} is ${n.availability} (it takes no new tasks)` };
  return undefined;
}

export interface Observation {
  obj: NotebookServer;
  /** Status so far (generation, image, build). */
  base: NotebookServerStatus;
  desired: DesiredServer;
  observed: ObservedServer;
  image: ResolvedImage;
  kind: BackendKind;
  policy: Pick<Policy, 'publishHostIp' | 'probeNetworks'>;
  stopped: boolean;
  /** Whether the server answered on its probe URL (true when there was nothing to probe). */
  answering: boolean;
  /** The Swarm's nodes, for a server pinned to one (desired.pinNode). */
  cluster?: ClusterView;
  now: string;
  /** Observed 'failed': when the operator starts it again. */
  backOff?: BackOff;
}

/** The Restarted condition: how often Docker (and the operator, after Docker gave up) restarted the server. */
function restartedCondition(status: NotebookServerStatus, observed: ObservedServer, now: string): NotebookServerStatus {
  const docker = observed.restarts ?? 0;
  const forced = observed.forcedRestarts ?? 0;
  if (!docker && !forced) {
    const out = { ...status, conditions: dropCondition(status.conditions, 'Restarted') };
    delete out.restartCount;
    return out;
  }
  const parts = [];
  if (docker) parts.push(`Docker restarted it ${docker} time${docker === 1 ? '' : 's'} after a failure`);
  if (forced) parts.push(`the operator started it again ${forced} time${forced === 1 ? '' : 's'} after Docker stopped restarting it`);
  const message = `${parts.join('; ')}${observed.lastFailure ? `; last failure: ${observed.lastFailure}` : ''}`;
  const conditions = setCondition(status.conditions, { type: 'Restarted', status: 'True', reason: forced ? 'CrashLoopBackOff' : 'Restarted', message }, now);
  return { ...status, conditions, restartCount: docker + forced };
}

/** Status of a server whose Docker object was just converged and observed. */
export function observedStatus(o: Observation): StatusOutcome {
  const { obj, desired, observed, now } = o;
  const name = observed.name;
  let status: NotebookServerStatus = { ...o.base };
  status.backend = withoutUndefined({ kind: o.kind, id: observed.id, name, node: observed.node, image: desired.image, imageId: o.image.id });
  // A pinned server is recorded on its volumes' node even while it cannot run there.
  const node = desired.pinNode ?? observed.node ?? status.node;
  if (node) status.node = node;
  const pinProblem = desired.pinNode && !o.stopped ? volumeNodeProblem(desired.pinNode, o.cluster?.nodes ?? []) : undefined;
  if (desired.pinNode) {
    status.conditions = setCondition(
      status.conditions,
      pinProblem
        ? { type: 'VolumeUnavailable', status: 'True', reason: pinProblem.reason, message: `${pinProblem.message}; it holds this server's volumes` }
        : { type: 'VolumeUnavailable', status: 'False', reason: 'NodeAvailable', message: `volumes on node ${desired.pinNode}` },
      now,
    );
  }
  if (pinProblem && observed.state !== 'running') {
    // Starting elsewhere would start with an empty home: wait for the node instead.
    const msg = `${name} waits for node ${desired.pinNode}, which holds its volumes: ${pinProblem.message}. It starts again when the node is back (an admin who moved the volumes sets annotation ${ANNOTATIONS.node})`;
    delete status.endpoint;
    status = withPhase(
      status,
      'Pending',
      msg,
      {
        Ready: { status: 'False', reason: 'VolumeUnavailable', message: msg },
        Scheduled: { status: 'False', reason: pinProblem.reason, message: pinProblem.message },
        Degraded: { status: 'True', reason: 'VolumeUnavailable', message: pinProblem.message },
      },
      now,
    );
    const event = prevReadyReason(obj) !== 'VolumeUnavailable' ? { type: 'Warning' as const, reason: 'VolumeUnavailable', message: msg } : undefined;
    return { status, event, requeueAfterMs: VOLUME_UNAVAILABLE_REQUEUE_MS };
  }
  if (o.stopped) {
    const done = observed.state === 'stopped' || observed.state === 'missing' || (observed.replicas === 0 && observed.state !== 'running');
    const stopping = stoppedStatus(obj, status, done, o.kind, now, name);
    return done ? { status: stopping } : { status: stopping, progress: STOPPING_STAGE };
  }
  const dockerMsg = observed.message ? `: ${observed.message}` : '';
  const prevReady = getCondition(obj.status?.conditions, 'Ready');
  status = restartedCondition(status, observed, now);
  const progress = (reason: string, eventReason: string, message: string, scheduled: Condition['status']): StatusOutcome => {
    const s = withPhase(
      status,
      'Creating',
      message,
      {
        Ready: { status: 'False', reason, message },
        Scheduled: { status: scheduled, reason: scheduled === 'True' ? 'Scheduled' : 'Pending', message },
        Degraded: { status: 'False', reason: 'AsExpected', message: '' },
      },
      now,
    );
    const event = prevReady?.reason !== reason ? { type: 'Normal' as const, reason: eventReason, message } : undefined;
    return { status: s, event, progress: `${reason}: ${message}` };
  };
  // Docker is restarting it after a crash (Swarm's restart policy, or a container's): on its way
  // back, not Failed, so a client polling now does not drop a server that comes back by itself.
  if (observed.restarts && ['pending', 'preparing', 'starting', 'stopped', 'missing'].includes(observed.state)) {
    const message = `${name} is restarting after a failure (restart ${observed.restarts})${observed.lastFailure ? `: ${observed.lastFailure}` : ''}`;
    delete status.endpoint;
    const out = progress('Restarting', 'Restarting', message, 'True');
    // Each crash is news: one Warning per restart (the message carries the count).
    return { ...out, event: prevReady?.message !== message ? { type: 'Warning', reason: 'Restarting', message } : undefined, progress: 'Restarting' };
  }
  switch (observed.state) {
    case 'running': {
      const ep = endpointFor(desired, observed, o.policy);
      status.conditions = setCondition(
        status.conditions,
        { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `running on ${observed.node ?? 'this host'}` },
        now,
      );
      status.conditions = setCondition(status.conditions, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }, now);
      status.endpoint = withoutUndefined(ep);
      if (!o.answering) {
        status = withPhase(
          status,
          'Creating',
          `${name} is starting; waiting for it to answer on ${ep.hostUrl}`,
          {
            Ready: { status: 'False', reason: 'Starting', message: `container is running; waiting for the server to answer on ${ep.hostUrl}` },
          },
          now,
        );
        return { status, progress: ANSWERING_STAGE };
      }
      status = withPhase(
        status,
        'Running',
        `${name} is running${ep.hostUrl ? ` at ${ep.hostUrl}` : ''}`,
        {
          Ready: { status: 'True', reason: 'Running', message: `answering on ${ep.hostUrl ?? ep.url ?? name}` },
        },
        now,
      );
      const event =
        prevReady?.status !== 'True' ? { type: 'Normal' as const, reason: 'Ready', message: `server answers at ${ep.hostUrl ?? ep.url}` } : undefined;
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
      const b = o.backOff;
      const gaveUp = o.kind === 'service' ? 'Swarm stopped restarting it' : 'Docker does not restart it';
      const retry = b ? `; ${gaveUp}, the operator starts it again at ${b.at} (back-off ${Math.round(b.delayMs / 1000)} s, attempt ${b.attempt})` : '';
      const msg = `${name} ${observed.state}${dockerMsg}${retry}`;
      // A failed task's published port is gone (a retry gets a new one): no stale URL in status.
      delete status.endpoint;
      status = withPhase(status, 'Failed', msg, { Ready: { status: 'False', reason, message: msg }, Degraded: { status: 'True', reason, message: msg } }, now);
      const event = prevReady?.reason !== reason || prevReady?.message !== msg ? { type: 'Warning' as const, reason, message: msg } : undefined;
      const due = b ? Math.max(0, Date.parse(b.at) - Date.parse(now)) : FAILED_REQUEUE_MS;
      return { status, event, requeueAfterMs: due };
    }
  }
}

function prevReadyReason(obj: NotebookServer): string | undefined {
  return getCondition(obj.status?.conditions, 'Ready')?.reason;
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
  // `old` is the stored status (parsed JSON, nothing to normalise); mergePatchBetween skips undefined members.
  const patch = mergePatchBetween(old, target);
  if (!patch) return {};
  const changedVisible = old.phase !== target.phase || old.message !== target.message;
  const readyChanged = !jsonEqual(getCondition(old.conditions, 'Ready'), getCondition(target.conditions, 'Ready'));
  return { patch, event: event && (changedVisible || readyChanged) ? event : undefined };
}
