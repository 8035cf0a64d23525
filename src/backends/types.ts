/**
 * The contract between the controller and a Docker backend. The controller computes a
 * DesiredServer with pure functions (src/controller/desired.ts); a backend makes Docker match it,
 * finding its objects by label only (never by name alone, so a restart, a rename or a half-done
 * create never duplicates a server). Implementations: Swarm services, plain containers, and an
 * in-memory fake for unit tests.
 */
import type { Observable } from 'rxjs';

export type BackendKind = 'service' | 'container';
export type PullPolicy = 'ifNotPresent' | 'always' | 'never';

export interface VolumeMount {
  /** Named volume name, or host path for kind 'bind' (binds only ever come from policy). */
  source: string;
  target: string;
  type: 'volume' | 'bind';
  readOnly?: boolean;
  /** Labels put on a named volume when the operator creates it. */
  labels?: Record<string, string>;
  /** Volume driver and its options for a named volume (unset: Docker's local driver). */
  driver?: string;
  driverOptions?: Record<string, string>;
}

/**
 * A file with secret content for the container, at /run/secrets/<name>, readable by the server's
 * user: a Docker secret on Swarm, a file copied into the container before it starts otherwise.
 * Never an environment variable, so `docker inspect` does not show it.
 */
export interface SecretFile {
  name: string;
  data: string;
}

export interface DesiredServer {
  /** Identity of the owning resource. */
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  /** Docker object name (service or container), from the policy's name template, sanitised. */
  dockerName: string;
  /** Every label of the Docker object, as written (built only by the desired-state function). */
  labels: Record<string, string>;
  /** Image reference as the user (or policy default) gave it; the backend resolves and pins it. */
  image: string;
  pullPolicy: PullPolicy;
  /** Full argv; empty means the image's own entrypoint/cmd. */
  command: string[];
  /** Overrides the image entrypoint when set (e.g. [] to clear it). */
  entrypoint?: string[];
  env: Record<string, string>;
  workdir?: string;
  /** "uid:gid" or user name; undefined keeps the image's USER. */
  user?: string;
  /** Supplementary groups. */
  groups?: string[];
  /** Port the server listens on inside the container (equals the host port with host networking). */
  port: number;
  /** 'host' → host network namespace, nothing published; 'bridge' → publish `port` on publishHostIp. */
  networkMode: 'host' | 'bridge';
  /** Host IP published ports bind to (default 127.0.0.1). */
  publishHostIp: string;
  /** Optional extra (overlay/bridge) network to attach to; gives the internal URL by name. */
  network?: string;
  volumes: VolumeMount[];
  /** Limits, and (Swarm) reservations the scheduler places by. */
  resources: { nanoCpus?: number; memoryBytes?: number; reserveNanoCpus?: number; reserveMemoryBytes?: number };
  hardening: { noNewPrivileges: boolean; capDrop: string[]; capAdd?: string[]; pidsLimit?: number; readOnlyRootfs?: boolean };
  /** Swarm placement constraints from policy. */
  constraints?: string[];
  /** Files under /run/secrets (e.g. git credentials). */
  secretFiles?: SecretFile[];
  /**
   * Multi-node Swarm: the node (hostname) holding the server's node-local volumes; the service is
   * constrained to it. Not part of specHash: Swarm keeps a running task when only its placement
   * changes and its node still satisfies it, so pinning a server where it already runs restarts nothing.
   */
  pinNode?: string;
  stopped: boolean;
  /**
   * When a running server moves to a newer image of its tag (the tag was re-pushed or pulled):
   * at its next start (default: a running server is never restarted for it) or at once.
   */
  imageUpdates?: 'onStart' | 'immediate';
  /** Hash of every field above that shapes the Docker object; stored as a label so "unchanged" costs no write. */
  specHash: string;
}

export interface ResolvedImage {
  /** What was asked for. */
  reference: string;
  /** Local image ID (sha256:…). */
  id: string;
  /** name@sha256:… when the image has a repo digest, else undefined. */
  digestReference?: string;
  /** What Docker is actually handed: digestReference ?? id. */
  pinned: string;
}

export type ObservedState = 'pending' | 'preparing' | 'starting' | 'running' | 'stopped' | 'failed' | 'rejected' | 'missing';

export interface ObservedServer {
  kind: BackendKind;
  id: string;
  name: string;
  labels: Record<string, string>;
  /** Value of the spec-hash label (what the object was last written for). */
  specHash?: string;
  state: ObservedState;
  /** Docker's own words for the state (task message/error, container status). */
  message?: string;
  /** Node the task/container runs on (Swarm node hostname, or the Docker host name). */
  node?: string;
  /** Host port the server answers on (published port, or the port itself with host networking). */
  hostPort?: number;
  hostIp?: string;
  /** Container ID (Swarm: the running task's container), for commits and probes. */
  containerId?: string;
  /** Image the object runs (pinned form). */
  image?: string;
  /** Swarm only: desired replicas (0 when stopped). */
  replicas?: number;
  /** Swarm only: the node the service is pinned to (label nbswarm.io/node), if any. */
  pinNode?: string;
  createdAt?: string;
  /** When the object was last written (Swarm: the service's UpdatedAt; container: its last start). */
  updatedAt?: string;
  /**
   * Times Docker restarted the server after a failure since the object was last written (Swarm:
   * failed tasks of the current spec; container: Docker's restart count). While Docker is about to
   * restart it, state is 'pending'/'starting', not 'failed'.
   */
  restarts?: number;
  /** Docker's words for the most recent of those failures. */
  lastFailure?: string;
  /** state 'failed': when it failed. 'failed' means nothing restarts it by itself (Swarm's restart policy gave up). */
  failedAt?: string;
  /** Restarts the operator forced after Docker gave up (Swarm: TaskTemplate.ForceUpdate); reset by a spec change. */
  forcedRestarts?: number;
  /** Named volumes the object mounts, by mount target (what it was created with; kept across updates). */
  volumes?: Record<string, string>;
  /**
   * The part of the object's Docker configuration nbswarm writes, as observed, in the backend's
   * canonical form (see drift.ts); undefined when the observation did not include it.
   */
  observedSpec?: unknown;
  /** The pinned image nbswarm last wrote for the object (Swarm: a service label; containers: the image it runs). */
  writtenImage?: string;
}

/** A node as the Swarm manager sees it. */
export interface NodeView {
  id: string;
  hostname: string;
  /** The address the node advertises to the Swarm (where its published ports are reached). */
  addr?: string;
  role: 'manager' | 'worker';
  /** ready, down, unknown, disconnected. */
  state: string;
  /** active, pause, drain. */
  availability: string;
  labels: Record<string, string>;
}

/** The Docker hosts servers can run on. */
export interface ClusterView {
  /** More than one Swarm node: images must come from a registry, node-local volumes pin servers. */
  multiNode: boolean;
  /** Every Swarm node (empty for a plain Docker host and a single-node Swarm). */
  nodes: NodeView[];
}

/** Registry credentials, sent to Docker as the X-Registry-Auth header. */
export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

export type ApplyAction = 'created' | 'updated' | 'recreated' | 'started' | 'stopped' | 'pinned' | 'reverted' | 'unchanged';

export interface ApplyResult {
  action: ApplyAction;
  observed: ObservedServer;
  /** What someone else had changed on the object (dotted paths of its Docker spec), now written back. */
  drift?: string[];
  /** The running server kept this pinned image although its tag now names `image` (see imageUpdates). */
  keptImage?: string;
}

export interface BackendEvent {
  /** nbswarm.io/uid label of the object the event concerns, when it has one. */
  uid?: string;
  /** Docker name of the object (service name; container name, for Swarm tasks "service.slot.task"), when known. */
  name?: string;
  /** For 'node' events: `name` is the node's hostname. */
  type: 'service' | 'container' | 'task' | 'volume' | 'image' | 'node' | string;
  action: string;
  time: number;
}

/** A Docker failure with context (the call, a hint) for status.message, an Event and one log line. */
export class BackendError extends Error {
  constructor(
    message: string,
    readonly reason: 'ImageNotFound' | 'ImagePullFailed' | 'ImageNotShared' | 'DockerUnavailable' | 'Conflict' | 'DockerError' | 'CommitFailed',
    readonly dockerCall: string,
    readonly hint?: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'BackendError';
  }
}

export interface Backend {
  readonly kind: BackendKind;
  /** Resolve (and pull per policy) an image to the form that is safe to hand Docker; onProgress sees pull progress. */
  resolveImage(
    reference: string,
    pullPolicy: PullPolicy,
    onProgress?: (p: { reference: string; status: string; id?: string; current?: number; total?: number }) => void,
    opts?: { auth?: RegistryAuth },
  ): Promise<ResolvedImage>;
  /** The nodes servers can run on (cached; Docker's node events keep it current). */
  cluster(): Promise<ClusterView>;
  /**
   * All objects labelled with this resource UID (normally 0 or 1). May be answered from the
   * backend's snapshot, which Docker events and the backend's own apply/remove keep current.
   */
  find(uid: string): Promise<ObservedServer[]>;
  /**
   * Every object this operator manages (label nbswarm.io/managed-by), for orphan GC and port
   * allocation; with `scope.prefix`, only those whose Docker name starts with it. Read from Docker
   * now, unless `scope.fromCache`: then the backend's event-maintained snapshot may answer, which
   * lags Docker by an event's delivery (another writer's object appears once its event arrives).
   */
  listManaged(scope?: { prefix?: string; fromCache?: boolean }): Promise<ObservedServer[]>;
  /**
   * Converge Docker to `desired` (create, update in place, recreate, scale 0/1, start/stop),
   * creating named volumes first. Writes nothing when `current` already matches (same spec hash
   * and stopped/running state). Never removes volumes.
   */
  apply(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer, opts?: { auth?: RegistryAuth }): Promise<ApplyResult>;
  /** Remove the service/container (not its volumes). Idempotent. */
  remove(observed: ObservedServer): Promise<void>;
  /**
   * Start a server again that failed and that Docker no longer restarts (Swarm: a forced update,
   * which makes a new task; container: docker start), keeping its spec. Returns it as observed after.
   */
  restart(observed: ObservedServer): Promise<ObservedServer>;
  /**
   * docker commit of the running container of `observed` into repo:tag, with labels; returns the
   * image ID (multi-node Swarm: committed on the container's node and pushed to the registry
   * named by `repo`; returns the registry digest reference).
   */
  commitImage(observed: ObservedServer, repo: string, tag: string, labels: Record<string, string>, opts?: { auth?: RegistryAuth }): Promise<string>;
  /** Remove an image the operator built (source-server images) if no container uses it. */
  removeImage(id: string): Promise<void>;
  /** Names of the named volumes carrying every one of `labels`. */
  listVolumes(labels: Record<string, string>): Promise<string[]>;
  /**
   * Remove a named volume (only ever one the policy lets the operator delete). 'absent' when it
   * does not exist; throws a BackendError when Docker refuses (e.g. a container still uses it).
   */
  removeVolume(name: string): Promise<'removed' | 'absent'>;
  /** Docker events about managed objects (services, tasks, containers), for the controller's queue. */
  events(): Observable<BackendEvent>;
  close(): Promise<void>;
}
