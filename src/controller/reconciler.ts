/**
 * reconcile(key): level-triggered and idempotent, after controller-runtime's Reconciler and
 * Kubeflow's notebook-controller. It reads the caches (NotebookServers, Secrets, the backend's
 * Docker observer), writes Docker and status, and returns when to look again; it keeps no state of
 * its own (echo suppression, poll delays, first looks and reserved host ports live beside the queue, in the
 * collaborators it is given). The desired object comes from a pure function (renderDesired), the
 * backend writes only the difference (spec-hash label), and status (a pure function, status.ts) is
 * patched only when it changed, so a converged reconcile writes nothing: not to Docker, not to the API.
 */
import { ANNOTATIONS, FINALIZER, LABELS, START_DEADLINE_EXCEEDED } from '../api/names.js';
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import { registryAuthFromSecret } from '../backends/registry.js';
import {
  BackendError,
  type ApplyAction,
  type Backend,
  type ClusterView,
  type ObservedServer,
  type RegistryAuth,
  type ResolvedImage,
} from '../backends/types.js';
import { lookupSystemUser, SystemUserError } from '../config/system-users.js';
import type { Policy } from '../config/types.js';
import { nowIso } from '../util/time.js';
import { NameTaken } from '../backends/name-taken.js';
import { effectiveMode, fallbackDockerName, isStopped, nodeLocalVolumeNames, pinFor, renderDesired, type RenderContext } from './desired.js';
import type { EventRecorder, EventType } from './events.js';
import type { OrphanCollector } from './gc.js';
import type { ObjectWriter, WriteCounts } from './object-writer.js';
import type { HostPortAllocator } from './ports.js';
import type { ReconcileResult } from './progress.js';
import type { RecordedReadiness } from './recorded-readiness.js';
import { ensureSourceImage } from './source-image.js';
import {
  crashLoopBackOff,
  dockerFailedStatus,
  failedStatus,
  forGeneration,
  imageFailedStatus,
  imageResolved,
  observedStatus,
  planStatusWrite,
  probeUrlFor,
  startingStatus,
  stoppedStatus,
  terminatingStatus,
  waitingStatus,
  type BackOff,
  type EventSpec,
} from './status.js';

/** Ready reasons of a spec that waits for a Secret (or a key of one) to exist, as a Pod does. */
export const WAITING_FOR_SECRET = new Set(['SecretNotFound', 'SecretKeyMissing']);

export interface ReconcilerStats extends WriteCounts {
  reconciles: number;
  dockerWrites: number;
  actions: Record<string, number>;
  eventsEmitted: number;
}

export function newReconcilerStats(): ReconcilerStats {
  return { reconciles: 0, statusPatches: 0, metadataPatches: 0, dockerWrites: 0, actions: {}, eventsEmitted: 0 };
}

export interface ReconcilerDeps {
  policy: Policy;
  backend: Backend;
  /** NotebookServers by "namespace/name" (the informer's cache); list() finds servers sharing volumes. */
  servers: { get(key: string): NotebookServer | undefined; list?(): NotebookServer[] };
  /** Decoded values of a Secret (the Secrets informer's cache). */
  secrets: { values(namespace: string, name: string): Record<string, string> | undefined };
  writer: ObjectWriter;
  events: EventRecorder;
  ports: Pick<HostPortAllocator, 'allocate' | 'release'>;
  /** Whether an HTTP server answers at a loopback URL (any status counts). */
  probe: (url: string) => Promise<boolean>;
  /** When set, a first look at a running server takes its recorded Ready instead of probing (see recorded-readiness.ts). */
  readiness?: Pick<RecordedReadiness, 'firstLook'>;
  /** Removal of built images / deleteWithServer volumes that may have to wait (see gc.ts). */
  gc: Pick<OrphanCollector, 'removeImageSoon' | 'removeVolumeSoon'>;
  /** Counters, shared with the writer and read by the operator's stats. */
  stats: ReconcilerStats;
  systemUser?: typeof lookupSystemUser;
  now?: () => string;
  sleep?: (ms: number) => Promise<void>;
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

/** Attempts (250 ms apart) to remove a deleted server's built image and volumes before the finalizer goes. */
const FINALIZE_ATTEMPTS = 8;

export class Reconciler {
  private readonly now: () => string;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly d: ReconcilerDeps) {
    this.now = d.now ?? nowIso;
    this.sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    this.d.stats.reconciles++;
    let obj = this.d.servers.get(key);
    // Gone from the API: the finalizer already cleaned up, or orphan GC will.
    if (!obj) return;
    if (obj.metadata.deletionTimestamp) return this.finalize(obj);
    if (!obj.metadata.finalizers?.includes(FINALIZER)) {
      obj = await this.d.writer.patchMetadata(obj, { finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] });
    }
    obj = await this.clearStaleStop(obj);
    obj = await this.enforceStartDeadline(obj);
    return withDeadline(obj, await this.converge(obj), Date.parse(this.now()));
  }

  /**
   * A start the client stopped waiting for (annotation start-deadline passed, not Ready for this
   * generation) must not run unattended: stop it by annotation, as the culler does, saying why.
   */
  private async enforceStartDeadline(obj: NotebookServer): Promise<NotebookServer> {
    const deadline = startDeadline(obj);
    if (deadline === undefined || isStopped(obj) || readyForGeneration(obj) || Date.parse(this.now()) < deadline) return obj;
    const at = obj.metadata.annotations?.[ANNOTATIONS.startDeadline];
    // With the resourceVersion read, so a start written meanwhile (a new deadline) is never stopped.
    const patched = await this.d.writer.patchMetadata(obj, {
      resourceVersion: obj.metadata.resourceVersion,
      annotations: {
        [ANNOTATIONS.stopped]: this.now(),
        [ANNOTATIONS.stoppedGeneration]: String(obj.metadata.generation ?? 0),
        [ANNOTATIONS.stoppedReason]: START_DEADLINE_EXCEEDED,
        [ANNOTATIONS.startDeadline]: null,
      },
    });
    await this.event(
      patched,
      'Warning',
      START_DEADLINE_EXCEEDED,
      `not Ready by its start deadline ${at}, when the client that started it stopped waiting; stopped (volumes kept)`,
    );
    return patched;
  }

  /** A person or GitOps tool changing spec after a cull means "run again" (Kubeflow clears its annotation on start). */
  private async clearStaleStop(obj: NotebookServer): Promise<NotebookServer> {
    const a = obj.metadata.annotations ?? {};
    if (a[ANNOTATIONS.stopped] === undefined) return obj;
    const at = Number(a[ANNOTATIONS.stoppedGeneration]);
    if (!Number.isFinite(at) || (obj.metadata.generation ?? 0) <= at) return obj;
    const patched = await this.d.writer.patchMetadata(obj, {
      annotations: { [ANNOTATIONS.stopped]: null, [ANNOTATIONS.stoppedGeneration]: null, [ANNOTATIONS.stoppedReason]: null },
    });
    await this.event(
      patched,
      'Normal',
      'Resumed',
      `spec changed (generation ${obj.metadata.generation}) after the server was stopped by ${a[ANNOTATIONS.stoppedReason] ?? 'annotation'}; starting it again`,
    );
    return patched;
  }

  private async converge(obj: NotebookServer): Promise<ReconcileResult | void> {
    const { backend, policy } = this.d;
    const uid = obj.metadata.uid ?? '';
    const resource = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const old = obj.status ?? {};
    let status: NotebookServerStatus = { ...startingStatus(obj, this.now()), mode: effectiveMode(obj, policy) };
    const stopped = isStopped(obj);

    // Actual state first: the port label of an existing object keeps a host-network port stable.
    let found: ObservedServer[];
    try {
      found = await backend.find(uid);
    } catch (err) {
      // Docker did not answer (or failed) reading this server's object: say so on the server.
      if (err instanceof BackendError) await this.dockerFailed(obj, old, status, err);
      throw err;
    }
    const current = (await this.dropDuplicates(obj, found))[0];

    // A server that is stopped and has no Docker object (created stopped, or never started) needs
    // none: nothing to keep, so no image, port, secret or source build until it starts.
    if (stopped && !current) {
      await this.writeStatus(obj, old, stoppedStatus(obj, status, true, backend.kind, this.now()));
      return;
    }

    const registry = this.registryAuth();
    if ('problem' in registry) {
      await this.writeStatus(obj, old, imageFailedStatus(status, 'RegistryCredentialsMissing', registry.problem, this.now()), {
        type: 'Warning',
        reason: 'RegistryCredentialsMissing',
        message: registry.problem,
      });
      throw new RetryLater(registry.problem, resource, undefined, 'create the Secret named by registry.credentialsSecret in the policy');
    }
    const auth = registry.auth;

    // Source-server image (dashboards built from another server's container).
    let sourceImage: string | undefined;
    let oldBuiltImage: string | undefined;
    if (obj.spec.source?.server) {
      const r = await ensureSourceImage({ backend, policy, server: (k) => this.d.servers.get(k), now: this.now, auth }, obj, status);
      if ('refused' in r) return this.fail(obj, old, status, r.refused.reason, r.refused.message);
      if ('wait' in r) {
        await this.writeStatus(obj, old, waitingStatus(status, !!current, r.wait.reason, r.wait.message, this.now()), r.wait.event);
        return { requeueAfterMs: r.wait.requeueMs };
      }
      if (r.built) {
        this.countWrite('commit');
        await this.event(obj, 'Normal', 'Built', `committed source server ${obj.spec.source.server}'s container to ${r.image}`);
      }
      status = r.status;
      sourceImage = r.image;
      oldBuiltImage = r.previous;
    }

    let hostPort: number | undefined;
    if (policy.networkMode === 'host') {
      const label = current ? Number(current.labels[LABELS.port]) : NaN;
      // The labels come from the backend's event-kept snapshot: a full list per new server cost a
      // burst of spawns two list calls each.
      hostPort = Number.isInteger(label) && label > 0 ? label : await this.d.ports.allocate(uid, () => backend.listManaged({ fromCache: true }));
    }

    let systemUser: { uid: number; gid: number; home: string } | undefined;
    if (obj.spec.systemUser && policy.systemUsers.enabled) {
      try {
        systemUser = await (this.d.systemUser ?? lookupSystemUser)(obj.spec.user, policy);
      } catch (err) {
        if (!(err instanceof SystemUserError)) throw err;
        return this.fail(obj, old, status, err.reason, `spec.systemUser: ${err.message}`);
      }
    }

    const ns = obj.metadata.namespace ?? 'default';
    const cluster = await backend.cluster();
    const pinNode = this.pinNode(obj, old, current, cluster);
    // An existing object keeps the name and volumes it was created with (upgrades rename nothing).
    const ctx: RenderContext = {
      secrets: (name) => this.d.secrets.values(ns, name),
      hostPort,
      sourceImage,
      systemUser,
      secretsOptional: stopped,
      pinNode,
      keep: current ? { name: current.name, volumes: current.volumes } : undefined,
    };
    const rendered = renderDesired(obj, policy, ctx);
    if (!rendered.ok) {
      const message = rendered.message.startsWith(rendered.field) ? rendered.message : `${rendered.field}: ${rendered.message}`;
      // A missing Secret is waited for, as a Pod waits (the Secrets informer wakes this server when
      // it appears): a hub writes the Secret just before the object, and the two informers may
      // deliver them in either order. A server already running keeps running meanwhile.
      if (WAITING_FOR_SECRET.has(rendered.reason)) {
        await this.writeStatus(obj, old, waitingStatus(status, !!current, rendered.reason, message, this.now()), {
          type: 'Warning',
          reason: rendered.reason,
          message,
        });
        return;
      }
      // A refused spec waits for a change of the object; resync re-checks after policy changes.
      return this.fail(obj, old, status, rendered.reason, message);
    }
    // The stop annotation (culling) stops without a spec change; stopped is outside the spec hash.
    const firstDesired = { ...rendered.desired, stopped };
    // A stopped server keeps the object it has, as written: a spec change (or a token Secret the
    // hub deleted on stop) is applied when it starts again, so stopping is a scale-down only,
    // never a rewrite of a service whose task is still shutting down.
    if (stopped && current?.specHash) firstDesired.specHash = current.specHash;

    let image: ResolvedImage;
    try {
      image = await backend.resolveImage(firstDesired.image, sourceImage ? 'never' : firstDesired.pullPolicy, undefined, { auth });
      status = imageResolved(status, firstDesired.image, image, this.now());
    } catch (err) {
      if (!(err instanceof BackendError) || (err.reason !== 'ImageNotFound' && err.reason !== 'ImagePullFailed' && err.reason !== 'ImageNotShared')) throw err;
      const msg = `${err.message.includes(firstDesired.image) ? '' : `image ${firstDesired.image}: `}${err.message}${err.hint && !err.message.includes(err.hint) ? `; ${err.hint}` : ''}`;
      await this.writeStatus(obj, old, imageFailedStatus(status, err.reason, msg, this.now()), { type: 'Warning', reason: err.reason, message: msg });
      throw new RetryLater(msg, resource, err.dockerCall, err.hint);
    }

    // Apply: the backend writes nothing when the spec hash and run state already match.
    let action: ApplyAction;
    let observed: ObservedServer;
    let drift: string[] | undefined;
    let desired = firstDesired;
    try {
      try {
        ({ action, observed, drift } = await backend.apply(desired, image, current, { auth }));
      } catch (err) {
        if (!(err instanceof NameTaken) || current) throw err;
        // The template's name is held by an object that is not this server's (another tenant's
        // server whose name renders the same, or one made by hand): never touch it; take the
        // name with a hash of the UID, which this server keeps from now on.
        const name = fallbackDockerName(err.dockerName, uid);
        const again = renderDesired(obj, policy, { ...ctx, keep: { name } });
        if (!again.ok) throw err;
        desired = { ...again.desired, stopped };
        await this.event(obj, 'Warning', 'NameTaken', `${err.message}; using ${name} instead`);
        ({ action, observed, drift } = await backend.apply(desired, image, current, { auth }));
      }
    } catch (err) {
      await this.dockerFailed(obj, old, status, err);
      throw err;
    }
    if (hostPort !== undefined) this.d.ports.release(hostPort);
    await this.announce(obj, action, observed, drift);
    if (oldBuiltImage && oldBuiltImage !== sourceImage) await this.d.gc.removeImageSoon(oldBuiltImage);

    let backOff: BackOff | undefined;
    if (!stopped && (observed.state === 'failed' || observed.state === 'rejected')) {
      // Docker stopped restarting it (Swarm's restart policy gave up): start it again after a back-off.
      const b = crashLoopBackOff(observed, policy, this.now());
      if (Date.parse(this.now()) < Date.parse(b.at)) backOff = b;
      else observed = await this.restartCrashed(obj, old, status, observed, b);
    }

    const url = probeUrlFor(desired, observed, policy, stopped);
    const observation = { obj, base: status, desired, observed, image, kind: backend.kind, policy, stopped, cluster, now: this.now(), backOff };
    let outcome = observedStatus({ ...observation, answering: true });
    if (url && !this.recordedAnswering(obj, old, outcome.status)) {
      const answering = await this.d.probe(url);
      if (!answering) outcome = observedStatus({ ...observation, answering });
    }
    const written = await this.writeStatus(obj, old, outcome.status, outcome.event);
    if (obj.metadata.annotations?.[ANNOTATIONS.startDeadline] !== undefined && outcome.status.phase === 'Running') {
      // The start it was waited for is done: a later crash is not a missed start. Conditional on
      // the version read, so the deadline of a newer start is never the one removed.
      const rv = (written ?? obj).metadata.resourceVersion;
      await this.d.writer.patchMetadata(obj, { resourceVersion: rv, annotations: { [ANNOTATIONS.startDeadline]: null } });
    }
    if (outcome.progress !== undefined) return { progress: outcome.progress };
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
  }

  private async restartCrashed(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    observed: ObservedServer,
    b: BackOff,
  ): Promise<ObservedServer> {
    let after: ObservedServer;
    try {
      after = await this.d.backend.restart(observed);
    } catch (err) {
      await this.dockerFailed(obj, old, status, err);
      throw err;
    }
    this.countWrite('restart');
    const why = observed.lastFailure ?? observed.message;
    await this.event(
      obj,
      'Normal',
      'Restarted',
      `started ${this.d.backend.kind} ${observed.name} again after Docker stopped restarting it (back-off ${Math.round(b.delayMs / 1000)} s, attempt ${b.attempt})${why ? `; it had failed: ${why}` : ''}`,
    );
    return after;
  }

  /**
   * Multi-node Swarm: the node holding the server's node-local volumes (see pinFor). Other servers
   * are searched only for a server that has no pin or record yet, e.g. a user's new named server
   * sharing the user's home volume.
   */
  private pinNode(obj: NotebookServer, old: NotebookServerStatus, current: ObservedServer | undefined, cluster: ClusterView): string | undefined {
    if (!cluster.multiNode) return undefined;
    const volumes = nodeLocalVolumeNames(obj.spec, this.d.policy);
    if (!volumes.length) return undefined;
    const annotation = obj.metadata.annotations?.[ANNOTATIONS.node];
    const known = annotation || current?.pinNode || old.node;
    let siblings: string[] | undefined;
    if (!known && this.d.servers.list) {
      const mine = new Set(volumes);
      siblings = this.d.servers
        .list()
        .filter((o) => o.metadata.uid !== obj.metadata.uid && (o.metadata.annotations?.[ANNOTATIONS.node] || o.status?.node))
        .filter((o) => o.spec?.user && nodeLocalVolumeNames(o.spec, this.d.policy).some((v) => mine.has(v)))
        .map((o) => (o.metadata.annotations?.[ANNOTATIONS.node] || o.status?.node)!);
    }
    return pinFor({ multiNode: true, volumes, annotation, current: current?.pinNode, recorded: old.node, siblings, running: current?.node });
  }

  /** Registry credentials from the Secret the policy names, if it names one. */
  private registryAuth(): { auth?: RegistryAuth } | { problem: string } {
    const ref = this.d.policy.registry?.credentialsSecret;
    if (!ref) return {};
    const address = this.d.policy.registry.address ?? '';
    const data = this.d.secrets.values(ref.namespace, ref.name);
    if (!data) return { problem: `registry credentials: Secret ${ref.namespace}/${ref.name} (policy registry.credentialsSecret) not found` };
    const auth = registryAuthFromSecret(data, address);
    if (!auth)
      return {
        problem: `registry credentials: Secret ${ref.namespace}/${ref.name} has no credentials for ${address} (expected .dockerconfigjson or username/password)`,
      };
    return { auth };
  }

  /**
   * Whether this look may take the server's recorded Ready instead of probing it: only on the
   * process's first look at it, and only when the status it would write if the server answers is
   * exactly the one recorded (so the record is of this generation, Docker object, endpoint and
   * restart count, and says Ready).
   */
  private recordedAnswering(obj: NotebookServer, old: NotebookServerStatus, answeringStatus: NotebookServerStatus): boolean {
    if (!this.d.readiness?.firstLook(`${obj.metadata.namespace}/${obj.metadata.name}`)) return false;
    return planStatusWrite(old, forGeneration(answeringStatus, obj.metadata.generation)).patch === undefined;
  }

  /** A refused spec or unusable system user: Failed, one Warning; nothing to retry until something changes. */
  private async fail(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus, reason: string, message: string): Promise<void> {
    await this.writeStatus(obj, old, failedStatus(status, reason, message, this.now()), { type: 'Warning', reason, message });
  }

  /** One Event (and a counted Docker write) for whatever apply did. */
  private async announce(obj: NotebookServer, action: ApplyAction, observed: ObservedServer, drift?: string[]): Promise<void> {
    if (drift?.length) {
      // Someone changed the Docker object by hand: written back, and said so where people look.
      await this.event(
        obj,
        'Warning',
        'DriftReverted',
        `${this.d.backend.kind} ${observed.name} had been changed outside nbswarm (${drift.join(', ')}); reverted to the spec`,
      );
    }
    const kind = this.d.backend.kind;
    const why = obj.metadata.annotations?.[ANNOTATIONS.stoppedReason];
    const verbs: Partial<Record<ApplyAction, [string, string]>> = {
      created: ['Created', `created ${kind} ${observed.name}`],
      updated: ['Updated', `updated ${kind} ${observed.name} for generation ${obj.metadata.generation}`],
      recreated: ['Updated', `recreated ${kind} ${observed.name} for generation ${obj.metadata.generation}`],
      started: ['Started', `started ${kind} ${observed.name}`],
      stopped: ['Stopped', `stopped ${kind} ${observed.name}${why ? ` (${why})` : ''}; volumes kept`],
      pinned: [
        'Pinned',
        observed.pinNode
          ? `pinned ${kind} ${observed.name} to node ${observed.pinNode}, which holds its volumes`
          : `unpinned ${kind} ${observed.name}: its volumes are shared`,
      ],
      reverted: ['Reverted', `wrote ${kind} ${observed.name} back to the spec of generation ${obj.metadata.generation}`],
    };
    const verb = verbs[action];
    if (!verb) return;
    this.countWrite(action);
    await this.event(obj, 'Normal', verb[0], verb[1]);
  }

  private countWrite(what: string): void {
    this.d.stats.dockerWrites++;
    this.d.stats.actions[what] = (this.d.stats.actions[what] ?? 0) + 1;
  }

  /** Patch status only when it differs; record the Event only together with a visible change. */
  private async writeStatus(
    obj: NotebookServer,
    old: NotebookServerStatus,
    next: NotebookServerStatus,
    event?: EventSpec,
  ): Promise<NotebookServer | undefined> {
    const plan = planStatusWrite(old, forGeneration(next, obj.metadata.generation), event);
    if (!plan.patch) return undefined;
    const written = await this.d.writer.patchStatus(obj, plan.patch);
    if (written && plan.event) await this.event(obj, plan.event.type, plan.event.reason, plan.event.message);
    return written;
  }

  private async event(obj: NotebookServer, type: EventType, reason: string, message: string): Promise<void> {
    this.d.stats.eventsEmitted++;
    await this.d.events.emit(obj, type, reason, message);
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

  /** Write a Docker call's failure to the server's status and as a Warning event. */
  private async dockerFailed(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus, err: unknown): Promise<void> {
    const e = err as BackendError;
    const msg = `${e.dockerCall && !e.message.startsWith(e.dockerCall) ? e.dockerCall + ': ' : ''}${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`;
    await this.writeStatus(obj, old, dockerFailedStatus(status, e.reason ?? 'DockerError', msg, this.now()), {
      type: 'Warning',
      reason: 'Failed',
      message: msg,
    });
  }

  private async finalize(obj: NotebookServer): Promise<void> {
    if (!obj.metadata.finalizers?.includes(FINALIZER)) return;
    const old = obj.status ?? {};
    const terminating = terminatingStatus(old, this.now());
    if (terminating) await this.writeStatus(obj, old, terminating);
    const { backend, policy } = this.d;
    const found = await backend.find(obj.metadata.uid ?? '');
    for (const o of found) {
      await backend.remove(o);
      this.countWrite('remove');
    }
    if (found.length) await this.event(obj, 'Normal', 'Deleted', `removed ${found.map((o) => `${o.kind} ${o.name}`).join(', ')}; volumes kept`);
    // The removed object's containers may linger a moment (Swarm tasks): try briefly, then leave
    // the rest to the GC pass, so the finalizer never blocks on it.
    const built = obj.status?.build?.image;
    const volumes = policy.volumes.some((v) => v.deleteWithServer)
      ? await backend.listVolumes({ [LABELS.deleteWithServer]: 'true', [LABELS.uid]: obj.metadata.uid ?? '' })
      : [];
    for (let i = 0; i < FINALIZE_ATTEMPTS; i++) {
      let done = true;
      if (built) done = (await this.d.gc.removeImageSoon(built)) && done;
      for (const v of volumes) done = (await this.d.gc.removeVolumeSoon(v)) && done;
      if (done) break;
      await this.sleep(250);
    }
    await this.d.writer.patchMetadata(obj, { finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) });
  }
}

/** The start deadline (ms since the epoch) a client set on the object, if any. */
function startDeadline(obj: NotebookServer): number | undefined {
  const raw = obj.metadata.annotations?.[ANNOTATIONS.startDeadline];
  if (raw === undefined) return undefined;
  const t = Date.parse(raw);
  return Number.isFinite(t) ? t : undefined;
}

/** Whether the stored status says Ready for the object's current generation. */
function readyForGeneration(obj: NotebookServer): boolean {
  const st = obj.status;
  return st?.observedGeneration === obj.metadata.generation && st?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Look again by the start deadline at the latest, so a start nobody waits for is stopped on time. */
function withDeadline(obj: NotebookServer, res: ReconcileResult | void, now: number): ReconcileResult | void {
  const deadline = startDeadline(obj);
  if (deadline === undefined || isStopped(obj) || res?.progress !== undefined) return res;
  const untilDeadline = Math.max(0, deadline - now) + 50;
  if (res?.requeueAfterMs !== undefined && res.requeueAfterMs <= untilDeadline) return res;
  return { ...res, requeueAfterMs: untilDeadline };
}
