/**
 * reconcile(key): level-triggered and idempotent, after controller-runtime's Reconciler and
 * Kubeflow's notebook-controller: desired objects come from pure functions (renderDesired), the
 * backend writes only the difference (spec-hash label), and status is patched only when it
 * changed, so a converged reconcile does no write at all — neither to Docker nor to the API.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { FINALIZER, GROUP, LABELS, PLURAL, VERSION, type Condition, type NotebookServer, type NotebookServerStatus, type Phase } from '../api/types.js';
import { BackendError, type ApplyAction, type Backend, type ObservedServer, type ResolvedImage } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { lookupSystemUser, SystemUserError } from '../config/system-users.js';
import { endpointFor, renderDesired } from './desired.js';
import type { EventRecorder, EventType } from './events.js';
import type { OrphanCollector } from './gc.js';
import { DELETE_WITH_SERVER_LABEL } from './desired.js';
import { splitKey, type NotebookServerInformer } from './informer.js';
import type { Logger } from '../log.js';
import { answersHttp, canBind, loopbackUrl } from './netutil.js';
import { clean, getCondition, jsonEqual, mergePatch, nowIso, setCondition } from './status.js';
import type { ReconcileOutcome } from './workqueue.js';
import { makeApiClient } from './kube.js';

/** Set by the culler (or a person) to stop a server without touching spec (Kubeflow's kubeflow-resource-stopped). */
export const STOPPED_ANNOTATION = 'nbswarm.io/stopped';
/** metadata.generation when STOPPED_ANNOTATION was set; a later spec change starts the server again. */
export const STOPPED_GENERATION_ANNOTATION = 'nbswarm.io/stopped-generation';
/** Why it was stopped (e.g. Culled). */
export const STOPPED_REASON_ANNOTATION = 'nbswarm.io/stopped-reason';
/** Change its value to rebuild a source-server image. */
export const REBUILD_ANNOTATION = 'nbswarm.io/rebuild';
export const SOURCE_UID_LABEL = 'nbswarm.io/source-uid';
export const BUILT_FOR_UID_LABEL = 'nbswarm.io/built-for-uid';

/** Requeue while a server is converging (Docker events usually arrive first). */
const CONVERGING_REQUEUE_MS = 1000;
/**
 * Polls while a server is on its way (per key, per stage): the task pending, being prepared or
 * started (Swarm task states raise no Docker event), then running but its server not answering yet.
 * Each stage usually lasts tens to a few hundred ms, so start short and double up to the cap; a
 * fixed 400 ms step cost up to that much on every spawn. Polls are cheap: the Swarm backend shares
 * one read among all servers polling within 40 ms of each other. Requeues rather than an inline
 * loop keep the queue slot free for other keys between polls.
 */
const PROBE_FIRST_MS = 25;
const PROBE_MAX_MS = 1000;
/**
 * A stage is polled at its first delay for this long before the delay doubles: Swarm's stages
 * (pending, assigned, preparing, starting) each last 50–300 ms, and doubling from 25 ms left gaps
 * of 100–200 ms by then, so a spawn saw its task running ~50 ms (median) after it was.
 */
const STAGE_FAST_MS = 1000;
/**
 * …but only while few servers are in progress: in a burst the Swarm backend reads every 40 ms
 * whatever the polls ask, and fast polls only added reconciles and Docker reads (a burst of 200
 * listed services 536 times instead of 458) on the cores dockerd needs.
 */
const STAGE_FAST_MAX_IN_PROGRESS = 4;
/** Own resourceVersions remembered per key (a reconcile writes at most a few). */
const OWN_RVS_PER_KEY = 8;

export interface ReconcilerStats {
  reconciles: number;
  statusPatches: number;
  metadataPatches: number;
  dockerWrites: number;
  actions: Record<string, number>;
  eventsEmitted: number;
}

export interface ReconcilerDeps {
  kubeconfig: KubeConfig;
  policy: Policy;
  backend: Backend;
  informer: NotebookServerInformer;
  events: EventRecorder;
  log: Logger;
  /** Removal of built images / deleteWithServer volumes that may have to wait (see gc.ts). */
  gc: Pick<OrphanCollector, 'removeImageSoon' | 'removeVolumeSoon'>;
}

/** A failure that has already been written to status; the queue should back off and retry. */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly resource: string,
    readonly dockerCall?: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function isStopped(obj: NotebookServer): boolean {
  return obj.spec?.stopped === true || obj.metadata.annotations?.[STOPPED_ANNOTATION] !== undefined;
}

export class Reconciler {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly reservedPorts = new Map<number, string>();
  /** Next ready-probe delay per key while running but not answering. */
  private readonly probeDelay = new Map<string, { stage: string; since: number; next: number }>();
  /** resourceVersions returned by our own writes, per key: their watch events are echoes. */
  private readonly ownRvs = new Map<string, string[]>();
  readonly s: ReconcilerStats = { reconciles: 0, statusPatches: 0, metadataPatches: 0, dockerWrites: 0, actions: {}, eventsEmitted: 0 };

  constructor(private readonly d: ReconcilerDeps) {
    this.custom = makeApiClient(d.kubeconfig, CustomObjectsApi);
    this.core = makeApiClient(d.kubeconfig, CoreV1Api);
  }

  stats(): ReconcilerStats {
    return { ...this.s, actions: { ...this.s.actions } };
  }

  /**
   * Whether the watch event of `key` at `rv` is the echo of a write this reconciler made (so it
   * needs no reconcile: the writing reconcile already acted on that state). Consumes the entry.
   */
  isOwnWrite(key: string, rv: string | undefined): boolean {
    if (!rv) return false;
    const rvs = this.ownRvs.get(key);
    const i = rvs?.indexOf(rv) ?? -1;
    if (!rvs || i < 0) return false;
    rvs.splice(i, 1);
    if (rvs.length === 0) this.ownRvs.delete(key);
    return true;
  }

  /** Drop per-key memory (the object is gone). */
  forgetKey(key: string): void {
    this.ownRvs.delete(key);
    this.probeDelay.delete(key);
  }

  private rememberOwnWrite(obj: NotebookServer): void {
    const rv = obj.metadata.resourceVersion;
    if (!rv) return;
    const key = `${obj.metadata.namespace ?? 'default'}/${obj.metadata.name ?? ''}`;
    const rvs = this.ownRvs.get(key) ?? [];
    rvs.push(rv);
    if (rvs.length > OWN_RVS_PER_KEY) rvs.shift();
    this.ownRvs.set(key, rvs);
  }

  private nextProbeDelay(obj: NotebookServer, stage: string): number {
    const key = `${obj.metadata.namespace ?? 'default'}/${obj.metadata.name ?? ''}`;
    // A new stage (pending → preparing → starting → answering) starts its own sequence from its
    // first delay: the next stage usually follows within tens of ms.
    const now = Date.now();
    const cur = this.probeDelay.get(key);
    const same = cur !== undefined && cur.stage === stage;
    const d = same ? cur.next : PROBE_FIRST_MS;
    const since = same ? cur.since : now;
    const fast = now - since < STAGE_FAST_MS && this.probeDelay.size <= STAGE_FAST_MAX_IN_PROGRESS;
    this.probeDelay.set(key, { stage, since, next: fast ? PROBE_FIRST_MS : Math.min(PROBE_MAX_MS, d * 2) });
    return d;
  }

  private resetProbeDelay(obj: NotebookServer): void {
    this.probeDelay.delete(`${obj.metadata.namespace ?? 'default'}/${obj.metadata.name ?? ''}`);
  }

  private countWrite(what: string): void {
    this.s.dockerWrites++;
    this.s.actions[what] = (this.s.actions[what] ?? 0) + 1;
  }

  /** `reasons`: why the key was queued (work-queue reasons); a Docker event restarts the short polling. */
  async reconcile(key: string, reasons: readonly string[] = []): Promise<ReconcileOutcome | void> {
    this.s.reconciles++;
    // The object just changed state in Docker (e.g. the task container started): the next step
    // (task running, server listening) usually follows within milliseconds, so poll from short again.
    if (reasons.includes('docker')) this.probeDelay.delete(key);
    let obj = this.d.informer.get(key);
    // Gone from the API: the finalizer already cleaned up, or orphan GC will.
    if (!obj) return;
    if (obj.metadata.deletionTimestamp) return this.finalize(obj);
    if (!obj.metadata.finalizers?.includes(FINALIZER)) {
      obj = await this.patchMeta(obj, { metadata: { finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] } });
    }
    obj = await this.clearStaleStop(obj);
    return this.converge(obj);
  }

  /** A person or GitOps tool changing spec after a cull means "run again" (Kubeflow clears its annotation on start). */
  private async clearStaleStop(obj: NotebookServer): Promise<NotebookServer> {
    const a = obj.metadata.annotations ?? {};
    if (a[STOPPED_ANNOTATION] === undefined) return obj;
    const at = Number(a[STOPPED_GENERATION_ANNOTATION]);
    if (!Number.isFinite(at) || (obj.metadata.generation ?? 0) <= at) return obj;
    const patched = await this.patchMeta(obj, {
      metadata: { annotations: { [STOPPED_ANNOTATION]: null, [STOPPED_GENERATION_ANNOTATION]: null, [STOPPED_REASON_ANNOTATION]: null } },
    });
    await this.event(patched, 'Normal', 'Resumed', `spec changed (generation ${obj.metadata.generation}) after the server was stopped by ${a[STOPPED_REASON_ANNOTATION] ?? 'annotation'}; starting it again`);
    return patched;
  }

  private async converge(obj: NotebookServer): Promise<ReconcileOutcome | void> {
    const { backend, policy } = this.d;
    const uid = obj.metadata.uid ?? '';
    const resource = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const old = obj.status ?? {};
    let status: NotebookServerStatus = clean({ ...old });
    status.observedGeneration = obj.metadata.generation;
    const stopped = isStopped(obj);

    // Actual state first: the port label of an existing object keeps a host-network port stable.
    let found = await backend.find(uid);
    found = await this.dropDuplicates(obj, found);
    let current = found[0];

    // A server that is stopped and has no Docker object (created stopped, or never started) needs
    // none: nothing to keep, so no image, port, secret or source build until it starts.
    if (stopped && !current) {
      delete status.backend;
      status = this.stoppedStatus(obj, status, true);
      await this.writeStatus(obj, old, status);
      return;
    }

    // Source-server image (dashboards built from another server's container).
    let sourceImage: string | undefined;
    let oldBuiltImage: string | undefined;
    if (obj.spec.source?.server) {
      const r = await this.ensureSourceImage(obj, status);
      status = r.status;
      if (r.wait) {
        status = this.withPhase(status, current ? (status.phase ?? 'Pending') : 'Pending', r.wait.message, {
          Ready: { status: 'False', reason: r.wait.reason, message: r.wait.message },
        });
        await this.writeStatus(obj, old, status, r.wait.event);
        return { requeueAfterMs: r.wait.requeueMs };
      }
      sourceImage = r.image;
      oldBuiltImage = r.previous;
    }

    // Secrets for env valueFrom.
    const secrets = await this.resolveSecrets(obj);
    if (!secrets.ok) {
      status = this.failed(status, 'Ready', secrets.reason, secrets.message);
      await this.writeStatus(obj, old, status, { type: 'Warning', reason: secrets.reason, message: secrets.message });
      // Secrets are not watched; poll for the missing one at a modest rate.
      return { requeueAfterMs: 5000 };
    }

    let hostPort: number | undefined;
    if (policy.networkMode === 'host') {
      const label = current ? Number(current.labels[LABELS.port]) : NaN;
      hostPort = Number.isInteger(label) && label > 0 ? label : await this.allocatePort(uid);
    }

    let systemUser: { uid: number; gid: number; home: string } | undefined;
    if (obj.spec.systemUser && policy.systemUsers.enabled) {
      try {
        systemUser = await lookupSystemUser(obj.spec.user, policy);
      } catch (err) {
        if (!(err instanceof SystemUserError)) throw err;
        const msg = `spec.systemUser: ${err.message}`;
        status = this.failed(status, 'Ready', err.reason, msg);
        await this.writeStatus(obj, old, status, { type: 'Warning', reason: err.reason, message: msg });
        return;
      }
    }

    const rendered = renderDesired(obj, policy, {
      secrets: (name, key) => secrets.values[`${name}/${key}`],
      hostPort,
      sourceImage,
      systemUser,
    });
    if (!rendered.ok) {
      const msg = rendered.message.startsWith(rendered.field) ? rendered.message : `${rendered.field}: ${rendered.message}`;
      status = this.failed(status, 'Ready', rendered.reason, msg);
      await this.writeStatus(obj, old, status, { type: 'Warning', reason: rendered.reason, message: msg });
      // A spec change brings a new event; nothing to retry until then (resync re-checks after policy changes).
      return;
    }
    // The stop annotation (culling) stops without a spec change; stopped is outside the spec hash.
    const desired = { ...rendered.desired, stopped };

    let image: ResolvedImage;
    try {
      image = await backend.resolveImage(desired.image, sourceImage ? 'never' : desired.pullPolicy);
      status.conditions = setCondition(status.conditions, { type: 'ImageReady', status: 'True', reason: 'Resolved', message: `${desired.image} → ${image.pinned}` });
    } catch (err) {
      if (err instanceof BackendError && (err.reason === 'ImageNotFound' || err.reason === 'ImagePullFailed')) {
        const msg = `${err.message.includes(desired.image) ? '' : `image ${desired.image}: `}${err.message}${err.hint && !err.message.includes(err.hint) ? `; ${err.hint}` : ''}`;
        status.conditions = setCondition(status.conditions, { type: 'ImageReady', status: 'False', reason: err.reason, message: msg });
        status = this.failed(status, 'Ready', err.reason, msg);
        await this.writeStatus(obj, old, status, { type: 'Warning', reason: err.reason, message: msg });
        throw new RetryLater(msg, resource, err.dockerCall, err.hint);
      }
      throw err;
    }

    // Apply: the backend writes nothing when the spec hash and run state already match.
    let action: ApplyAction;
    let observed: ObservedServer;
    try {
      const res = await backend.apply(desired, image, current);
      action = res.action;
      observed = res.observed;
    } catch (err) {
      const e = err as BackendError;
      const msg = `${e.dockerCall ? e.dockerCall + ': ' : ''}${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`;
      status = this.failed(status, 'Ready', e.reason ?? 'DockerError', msg);
      status.conditions = setCondition(status.conditions, { type: 'Degraded', status: 'True', reason: e.reason ?? 'DockerError', message: msg });
      await this.writeStatus(obj, old, status, { type: 'Warning', reason: 'Failed', message: msg });
      throw err;
    }
    if (hostPort !== undefined) this.reservedPorts.delete(hostPort);
    const verbs: Partial<Record<ApplyAction, [string, string]>> = {
      created: ['Created', `created ${backend.kind} ${observed.name}`],
      updated: ['Updated', `updated ${backend.kind} ${observed.name} for generation ${obj.metadata.generation}`],
      recreated: ['Updated', `recreated ${backend.kind} ${observed.name} for generation ${obj.metadata.generation}`],
      started: ['Started', `started ${backend.kind} ${observed.name}`],
      stopped: ['Stopped', `stopped ${backend.kind} ${observed.name}${obj.metadata.annotations?.[STOPPED_REASON_ANNOTATION] ? ` (${obj.metadata.annotations[STOPPED_REASON_ANNOTATION]})` : ''}; volumes kept`],
    };
    const verb = verbs[action];
    if (verb) {
      this.countWrite(action);
      await this.event(obj, 'Normal', verb[0], verb[1]);
    }
    current = observed;
    if (oldBuiltImage && oldBuiltImage !== sourceImage) await this.d.gc.removeImageSoon(oldBuiltImage);

    // Observe → status.
    status.backend = clean({ kind: backend.kind, id: observed.id, name: observed.name, node: observed.node, image: desired.image, imageId: image.id });
    const outcome = await this.observe(obj, status, desired, observed, stopped);
    if (!outcome.probing) this.resetProbeDelay(obj);
    status = outcome.status;
    await this.writeStatus(obj, old, status, outcome.event);
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
  }

  /** Status of a stopped (done) or stopping server; `name` is its Docker object, if it has one. */
  private stoppedStatus(obj: NotebookServer, status: NotebookServerStatus, done: boolean, name?: string): NotebookServerStatus {
    delete status.endpoint;
    const cond = (type: string, s: Condition['status'], reason: string, message: string) => {
      status.conditions = setCondition(status.conditions, { type, status: s, reason, message });
    };
    cond('Ready', 'False', done ? 'Stopped' : 'Stopping', done ? 'server is stopped; volumes kept' : 'stopping');
    cond('Scheduled', 'False', 'Stopped', 'server is stopped');
    cond('Degraded', 'False', 'AsExpected', '');
    const annotated = obj.spec.stopped !== true;
    const why = annotated ? ` by annotation ${STOPPED_ANNOTATION} (${obj.metadata.annotations?.[STOPPED_REASON_ANNOTATION] ?? 'manual'}); remove it or change spec to start again` : '';
    if (!name) return this.withPhase(status, 'Stopped', `stopped${why}; no ${this.d.backend.kind} exists until it starts`);
    return this.withPhase(status, done ? 'Stopped' : 'Stopping', done ? `${name} is stopped${why}` : `stopping ${name}`);
  }

  private async observe(
    obj: NotebookServer,
    base: NotebookServerStatus,
    desired: Parameters<typeof endpointFor>[0],
    observed: ObservedServer,
    stopped: boolean,
  ): Promise<{ status: NotebookServerStatus; event?: { type: EventType; reason: string; message: string }; requeueAfterMs?: number; probing?: boolean }> {
    let status = base;
    const name = observed.name;
    const dockerMsg = observed.message ? `: ${observed.message}` : '';
    const cond = (type: string, s: Condition['status'], reason: string, message: string) => {
      status.conditions = setCondition(status.conditions, { type, status: s, reason, message });
    };
    if (stopped) {
      const done = observed.state === 'stopped' || observed.state === 'missing' || observed.replicas === 0 && observed.state !== 'running';
      return { status: this.stoppedStatus(obj, status, done, name), requeueAfterMs: done ? undefined : CONVERGING_REQUEUE_MS };
    }
    switch (observed.state) {
      case 'running': {
        const ep = endpointFor(desired, observed, this.d.policy);
        const probeUrl = loopbackUrl(ep?.hostUrl);
        cond('Scheduled', 'True', 'Scheduled', `running on ${observed.node ?? 'this host'}`);
        cond('Degraded', 'False', 'AsExpected', '');
        if (ep) status.endpoint = clean(ep);
        if (probeUrl && !(await answersHttp(probeUrl))) {
          cond('Ready', 'False', 'Starting', `container is running; waiting for the server to answer on ${ep?.hostUrl}`);
          status = this.withPhase(status, 'Creating', `${name} is starting; waiting for it to answer on ${ep?.hostUrl}`);
          return { status, requeueAfterMs: this.nextProbeDelay(obj, 'answering'), probing: true };
        }
        cond('Ready', 'True', 'Running', `answering on ${ep?.hostUrl ?? ep?.url ?? name}`);
        status = this.withPhase(status, 'Running', `${name} is running${ep?.hostUrl ? ` at ${ep.hostUrl}` : ''}`);
        const prev = getCondition(obj.status?.conditions, 'Ready');
        const event = prev?.status !== 'True' ? { type: 'Normal' as const, reason: 'Ready', message: `server answers at ${ep?.hostUrl ?? ep?.url}` } : undefined;
        return { status, event };
      }
      case 'preparing':
        return this.progress(obj, status, 'Preparing', 'ImagePulling', `Swarm is preparing the task (pulling/checking image ${desired.image})${dockerMsg}`, 'True');
      case 'starting':
        return this.progress(obj, status, 'Starting', 'Starting', `${name} is starting${dockerMsg}`, 'True');
      case 'pending':
        return this.progress(obj, status, 'Pending', 'Pending', `${name} is waiting to be scheduled${dockerMsg}`, 'False');
      case 'missing':
        return this.progress(obj, status, 'Pending', 'Pending', `${name} has no task/container yet${dockerMsg}`, 'False');
      case 'stopped':
        return this.progress(obj, status, 'Starting', 'Starting', `${name} is not running yet${dockerMsg}`, 'True');
      case 'rejected':
      case 'failed':
      default: {
        const reason = observed.state === 'rejected' ? 'TaskRejected' : 'TaskFailed';
        const msg = `${name} ${observed.state}${dockerMsg}`;
        cond('Ready', 'False', reason, msg);
        cond('Degraded', 'True', reason, msg);
        // A failed task's published port is gone (a retry gets a new one): no stale URL in status.
        delete status.endpoint;
        status = this.withPhase(status, 'Failed', msg);
        const prev = getCondition(obj.status?.conditions, 'Ready');
        const event = prev?.reason !== reason || prev?.message !== msg ? { type: 'Warning' as const, reason, message: msg } : undefined;
        return { status, event, requeueAfterMs: 5000 };
      }
    }
  }

  private progress(obj: NotebookServer, status: NotebookServerStatus, reason: string, eventReason: string, message: string, scheduled: Condition['status']) {
    status.conditions = setCondition(status.conditions, { type: 'Ready', status: 'False', reason, message });
    status.conditions = setCondition(status.conditions, { type: 'Scheduled', status: scheduled, reason: scheduled === 'True' ? 'Scheduled' : 'Pending', message });
    status.conditions = setCondition(status.conditions, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' });
    status = this.withPhase(status, 'Creating', message);
    const prev = getCondition(obj.status?.conditions, 'Ready');
    const event = prev?.reason !== reason ? { type: 'Normal' as const, reason: eventReason, message } : undefined;
    return { status, event, requeueAfterMs: this.nextProbeDelay(obj, `${reason}: ${message}`), probing: true };
  }

  private withPhase(status: NotebookServerStatus, phase: Phase, message: string, conds: Record<string, Omit<Condition, 'type'>> = {}): NotebookServerStatus {
    const s = { ...status, phase, message };
    for (const [type, c] of Object.entries(conds)) s.conditions = setCondition(s.conditions, { type, ...c });
    return s;
  }

  private failed(status: NotebookServerStatus, type: 'Ready', reason: string, message: string): NotebookServerStatus {
    return this.withPhase(status, 'Failed', message, { [type]: { status: 'False', reason, message } });
  }

  /** Patch status only when it differs; emit the event only together with a change (no event spam on resync). */
  private async writeStatus(obj: NotebookServer, old: NotebookServerStatus, next: NotebookServerStatus, event?: { type: EventType; reason: string; message: string }): Promise<void> {
    const target = clean(next);
    for (const c of target.conditions ?? []) if (c.message === '') delete c.message;
    const patch = mergePatch(clean(old), target);
    if (!patch) return;
    const { namespace, name } = { namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name ?? '' };
    try {
      const res = (await this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { status: patch } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as NotebookServer;
      this.s.statusPatches++;
      this.rememberOwnWrite(res);
      this.d.informer.observeWrite({ ...res, apiVersion: obj.apiVersion, kind: obj.kind });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return;
      throw err;
    }
    const changedVisible = old.phase !== target.phase || old.message !== target.message;
    if (event && (changedVisible || !jsonEqual(getCondition(old.conditions, 'Ready'), getCondition(target.conditions, 'Ready')))) {
      await this.event(obj, event.type, event.reason, event.message);
    }
  }

  private async event(obj: NotebookServer, type: EventType, reason: string, message: string): Promise<void> {
    this.s.eventsEmitted++;
    await this.d.events.emit(obj, type, reason, message);
  }

  private async patchMeta(obj: NotebookServer, body: Record<string, unknown>): Promise<NotebookServer> {
    const res = (await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name ?? '', body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as NotebookServer;
    this.s.metadataPatches++;
    this.rememberOwnWrite(res);
    const full = { ...res, apiVersion: obj.apiVersion, kind: obj.kind } as NotebookServer;
    this.d.informer.observeWrite(full);
    return full;
  }

  /** More than one object for one UID (a crash between create and label, or a human): keep one. */
  private async dropDuplicates(obj: NotebookServer, found: ObservedServer[]): Promise<ObservedServer[]> {
    if (found.length <= 1) return found;
    const want = obj.metadata.generation;
    const score = (o: ObservedServer) => (o.state === 'running' ? 2 : 0) + (Number(o.labels[LABELS.generation]) === want ? 1 : 0);
    const sorted = [...found].sort((a, b) => score(b) - score(a) || String(a.createdAt ?? '').localeCompare(String(b.createdAt ?? '')));
    for (const extra of sorted.slice(1)) {
      await this.d.backend.remove(extra);
      this.countWrite('removeDuplicate');
      await this.event(obj, 'Warning', 'DuplicateRemoved', `removed duplicate ${extra.kind} ${extra.name} (${extra.id.slice(0, 12)}) for this server`);
    }
    return sorted.slice(0, 1);
  }

  private async resolveSecrets(obj: NotebookServer): Promise<{ ok: true; values: Record<string, string> } | { ok: false; reason: string; message: string }> {
    const values: Record<string, string> = {};
    const ns = obj.metadata.namespace ?? 'default';
    const env = obj.spec.env ?? [];
    for (let i = 0; i < env.length; i++) {
      const ref = env[i].valueFrom?.secretKeyRef;
      if (!ref) continue;
      const field = `spec.env[${i}].valueFrom.secretKeyRef`;
      try {
        const secret = await this.core.readNamespacedSecret({ name: ref.name, namespace: ns });
        const raw = secret.data?.[ref.key];
        const str = secret.stringData?.[ref.key];
        if (raw === undefined && str === undefined) {
          if (ref.optional) continue;
          return { ok: false, reason: 'SecretKeyMissing', message: `${field}: secret ${ns}/${ref.name} has no key "${ref.key}"` };
        }
        values[`${ref.name}/${ref.key}`] = raw !== undefined ? Buffer.from(raw, 'base64').toString('utf8') : String(str);
      } catch (err) {
        if ((err as { code?: number }).code === 404) {
          if (ref.optional) continue;
          return { ok: false, reason: 'SecretNotFound', message: `${field}: secret ${ns}/${ref.name} not found; create it or mark the reference optional` };
        }
        throw err;
      }
    }
    return { ok: true, values };
  }

  /** A free port in policy.hostPortRange: not labelled on any managed object, not reserved in flight, bindable on loopback. */
  private async allocatePort(uid: string): Promise<number> {
    const [lo, hi] = this.d.policy.hostPortRange;
    const used = new Set<number>();
    for (const o of await this.d.backend.listManaged()) {
      const p = Number(o.labels[LABELS.port]);
      if (p) used.add(p);
      if (o.hostPort) used.add(o.hostPort);
    }
    for (const [p, owner] of this.reservedPorts) if (owner !== uid) used.add(p);
    for (const [p, owner] of this.reservedPorts) if (owner === uid && !used.has(p)) return p;
    for (let p = lo; p <= hi; p++) {
      if (used.has(p)) continue;
      if (!(await canBind(p))) continue;
      this.reservedPorts.set(p, uid);
      return p;
    }
    throw new BackendError(`no free host port in ${lo}-${hi}`, 'DockerError', 'allocate host port', 'widen policy.hostPortRange or remove unused servers');
  }

  /**
   * Commit the source server's container once per (source generation, rebuild token), as
   * cdsdashboards' DockerBuilder did, and run this server from the result.
   */
  private async ensureSourceImage(
    obj: NotebookServer,
    status: NotebookServerStatus,
  ): Promise<{
    status: NotebookServerStatus;
    image?: string;
    previous?: string;
    wait?: { reason: string; message: string; requeueMs: number; event?: { type: EventType; reason: string; message: string } };
  }> {
    const ns = obj.metadata.namespace ?? 'default';
    const srcName = obj.spec.source?.server ?? '';
    const field = 'spec.source.server';
    if (srcName === obj.metadata.name) {
      const message = `${field}: a server cannot be built from itself`;
      return { status, wait: { reason: 'InvalidSource', message, requeueMs: 60_000 } };
    }
    const src = this.d.informer.get(`${ns}/${srcName}`);
    if (!src) {
      const message = `${field}: source server ${ns}/${srcName} not found`;
      return { status, wait: { reason: 'SourceNotFound', message, requeueMs: 5000, event: { type: 'Warning', reason: 'SourceNotFound', message } } };
    }
    // The source's generation is snapshotted at the first build: later edits of the source server
    // do not rebuild (that would silently change a published dashboard); an explicit bump of
    // spec.source.generation or a new value of the rebuild annotation does.
    const gen = obj.spec.source?.generation ?? status.build?.sourceGeneration ?? src.metadata.generation ?? 1;
    const token = obj.metadata.annotations?.[REBUILD_ANNOTATION];
    const tag = `g${gen}${token ? `-r${createHash('sha1').update(token).digest('hex').slice(0, 8)}` : ''}`;
    const { repository, registry } = this.d.policy.sourceImages;
    const repo = `${registry ? registry.replace(/\/+$/, '') + '/' : ''}${repository}/${ns}-${srcName}`.toLowerCase().replace(/[^a-z0-9._/:-]/g, '-');
    const ref = `${repo}:${tag}`;
    const previous = status.build?.image && status.build.image !== ref ? status.build.image : undefined;
    if (status.build?.image === ref) {
      try {
        await this.d.backend.resolveImage(ref, 'never');
        return { status, image: ref };
      } catch (err) {
        if (!(err instanceof BackendError) || err.reason !== 'ImageNotFound') throw err;
        // The image vanished (pruned by hand): build it again.
      }
    }
    const running = (await this.d.backend.find(src.metadata.uid ?? '')).find((o) => o.state === 'running' && o.containerId);
    if (!running) {
      const message = `waiting for source server ${srcName} to run so its container can be committed`;
      return { status, wait: { reason: 'WaitingForSource', message, requeueMs: 3000 } };
    }
    // Identity labels inherited from the source container are blanked so that containers made
    // from this image are never mistaken for the source server's (find/GC work by label).
    const blank = Object.fromEntries(Object.values(LABELS).map((l) => [l, '']));
    await this.d.backend.commitImage(running, repo, tag, {
      ...blank,
      [SOURCE_UID_LABEL]: src.metadata.uid ?? '',
      [BUILT_FOR_UID_LABEL]: obj.metadata.uid ?? '',
      'nbswarm.io/source': `${ns}/${srcName}`,
      'nbswarm.io/source-generation': String(gen),
    });
    this.countWrite('commit');
    await this.event(obj, 'Normal', 'Built', `committed source server ${srcName}'s container to ${ref}`);
    const next = { ...status, build: { image: ref, builtAt: nowIso(), sourceGeneration: gen } };
    return { status: next, image: ref, previous };
  }

  /** Volumes of this server the policy marks deleteWithServer (renderDesired labels them with the uid). */
  private async deleteWithServerVolumes(obj: NotebookServer): Promise<string[]> {
    const docker = (this.d.backend as unknown as { docker?: { listVolumes(o: object): Promise<{ Volumes?: Array<{ Name: string }> }> } }).docker;
    if (!docker) return [];
    const res = await docker.listVolumes({ filters: JSON.stringify({ label: [`${DELETE_WITH_SERVER_LABEL}=true`, `${LABELS.uid}=${obj.metadata.uid}`] }) });
    return (res.Volumes ?? []).map((v) => v.Name);
  }

  private async finalize(obj: NotebookServer): Promise<void> {
    if (!obj.metadata.finalizers?.includes(FINALIZER)) return;
    const old = obj.status ?? {};
    if (old.phase !== 'Terminating') {
      const msg = 'removing the server; volumes are kept';
      await this.writeStatus(obj, old, this.withPhase(clean({ ...old }), 'Terminating', msg, { Ready: { status: 'False', reason: 'Terminating', message: msg } }));
    }
    const found = await this.d.backend.find(obj.metadata.uid ?? '');
    for (const o of found) {
      await this.d.backend.remove(o);
      this.countWrite('remove');
    }
    if (found.length) await this.event(obj, 'Normal', 'Deleted', `removed ${found.map((o) => `${o.kind} ${o.name}`).join(', ')}; volumes kept`);
    // The removed object's containers may linger a moment (Swarm tasks): try briefly, then leave
    // the rest to the GC pass, so the finalizer never blocks on it.
    const built = obj.status?.build?.image;
    const volumes = this.d.policy.volumes.some((v) => v.deleteWithServer) ? await this.deleteWithServerVolumes(obj) : [];
    for (let i = 0; i < 8; i++) {
      let done = true;
      if (built) done = (await this.d.gc.removeImageSoon(built)) && done;
      for (const v of volumes) done = (await this.d.gc.removeVolumeSoon(v)) && done;
      if (done) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.patchMeta(obj, { metadata: { finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } });
  }
}

export { splitKey };
