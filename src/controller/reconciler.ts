/**
 * reconcile(key): level-triggered and idempotent, after controller-runtime's Reconciler and
 * Kubeflow's notebook-controller. It reads the caches (NotebookServers, Secrets, the backend's
 * Docker observer), writes Docker and status, and returns when to look again; it keeps no state of
 * its own (echo suppression, poll delays, first looks and reserved host ports live beside the queue, in the
 * collaborators it is given). The desired object comes from a pure function (renderDesired), the
 * backend writes only the difference (spec-hash label), and status (a pure function, status.ts) is
 * patched only when it changed, so a converged reconcile writes nothing: not to Docker, not to the API.
 *
 * converge takes its steps in order, each in the module named for it: the Docker object found
 * (docker-write.ts), the image's registry credentials and source build (server-image.ts), the
 * desired server rendered (desired-render.ts), the image resolved, the Docker write, the readiness
 * check (readiness.ts), the status write (server-writes.ts). A step that writes a final status
 * ends the reconcile there.
 */
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import type { Backend } from '../backends/types.js';
import type { lookupSystemUser } from '../config/system-users.js';
import type { Policy } from '../config/types.js';
import { nowIso } from '../util/time.js';
import { effectiveMode, isStopped } from './desired.js';
import { DesiredRender } from './desired-render.js';
import { DockerWrites } from './docker-write.js';
import type { EventRecorder } from './events.js';
import { Finalizer } from './finalizer.js';
import type { OrphanCollector } from './gc.js';
import type { ObjectWriter, WriteCounts } from './object-writer.js';
import type { HostPortAllocator } from './ports.js';
import type { ReconcileResult } from './progress.js';
import { Readiness } from './readiness.js';
import type { RecordedReadiness } from './recorded-readiness.js';
import { ServerImage } from './server-image.js';
import { ServerWrites, type WriteTally } from './server-writes.js';
import { startingStatus, stoppedStatus } from './status-phases.js';
import { StopAnnotations, withDeadline } from './stop-annotations.js';

export interface ReconcilerStats extends WriteCounts, WriteTally {
  reconciles: number;
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

export class Reconciler {
  private readonly now: () => string;
  // The steps hold the collaborators they are given and nothing per server.
  private readonly writes: ServerWrites;
  private readonly annotations: StopAnnotations;
  private readonly finalizer: Finalizer;
  private readonly docker: DockerWrites;
  private readonly image: ServerImage;
  private readonly desired: DesiredRender;
  private readonly readiness: Readiness;

  constructor(private readonly d: ReconcilerDeps) {
    this.now = d.now ?? nowIso;
    const sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.writes = new ServerWrites(d, this.now);
    this.annotations = new StopAnnotations(d, this.writes, this.now);
    this.finalizer = new Finalizer(d, this.writes, this.now, sleep);
    this.docker = new DockerWrites(d, this.writes, this.now);
    this.image = new ServerImage(d, this.writes, this.now);
    this.desired = new DesiredRender(d, this.writes, this.now);
    this.readiness = new Readiness(d, this.writes, this.now);
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    this.d.stats.reconciles++;
    let obj = this.d.servers.get(key);
    // Gone from the API: the finalizer already cleaned up, or orphan GC will.
    if (!obj) return;
    if (obj.metadata.deletionTimestamp) return this.finalizer.finalize(obj);
    obj = await this.finalizer.ensure(obj);
    obj = await this.annotations.clearStaleStop(obj);
    obj = await this.annotations.enforceStartDeadline(obj);
    return withDeadline(obj, await this.converge(key, obj), Date.parse(this.now()));
  }

  /** `key`: "namespace/name", which names the server in a retry and to the readiness record. */
  private async converge(key: string, obj: NotebookServer): Promise<ReconcileResult | void> {
    const old = obj.status ?? {};
    let status: NotebookServerStatus = { ...startingStatus(obj, this.now()), mode: effectiveMode(obj, this.d.policy) };
    const stopped = isStopped(obj);

    // Actual state first: the port label of an existing object keeps a host-network port stable.
    const current = await this.docker.findCurrent(obj, old, status);

    // A server that is stopped and has no Docker object (created stopped, or never started) needs
    // none: nothing to keep, so no image, port, secret or source build until it starts.
    if (stopped && !current) {
      await this.writes.writeStatus(obj, old, stoppedStatus(obj, status, true, this.d.backend.kind, this.now()));
      return;
    }

    const auth = await this.image.registryAuth(obj, old, status, key);
    const build = await this.image.fromSourceServer(obj, old, status, current, auth);
    if ('ended' in build) return build.ended;
    status = build.status;

    const rendered = await this.desired.render(obj, old, status, { current, sourceImage: build.image, stopped });
    if ('ended' in rendered) return rendered.ended;

    const resolved = await this.image.resolve(obj, old, status, rendered.desired, build, auth, key);
    status = resolved.status;

    // Apply: the backend writes nothing when the spec hash and run state already match.
    const applied = await this.docker.apply(obj, old, status, rendered, resolved.image, current, auth);
    await this.image.removeReplacedBuild(build);
    const { observed, backOff } = await this.docker.restartIfGaveUp(obj, old, status, applied.observed, stopped);

    const converged = { status, desired: applied.desired, observed, image: resolved.image, cluster: rendered.cluster, stopped, backOff };
    const { outcome, write } = await this.readiness.check(key, obj, old, converged);
    const written = await this.writes.write(obj, write);
    await this.annotations.clearMetDeadline(obj, outcome.status, written);
    if (outcome.progress !== undefined) return { progress: outcome.progress };
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
  }
}
