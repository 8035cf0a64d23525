/**
 * An in-memory Backend for unit tests of the controller's logic (reconcile transitions, GC): the
 * same interface and the same apply semantics as the Docker backends (create, update in place for
 * services or recreate for containers, scale/start/stop, "unchanged" on an equal spec hash), with
 * every write recorded, Docker events emitted for writes, and failures injectable. Integration
 * tests use the real backends against a real dockerd; this one never talks to Docker.
 */
import { Subject, type Observable } from 'rxjs';
import { LABELS } from '../api/names.js';
import { imageNotPresent } from './images.js';
import { volumeOwnerConflict, volumeOwnerError } from './volume-owner.js';
import {
  BackendError,
  type ApplyResult,
  type Backend,
  type BackendEvent,
  type BackendKind,
  type ClusterView,
  type DesiredServer,
  type ObservedServer,
  type ObservedState,
  type PullPolicy,
  type ResolvedImage,
} from './types.js';

/** The operations a test can make fail (once each, in order). */
export type FakeOp = 'resolveImage' | 'find' | 'listManaged' | 'apply' | 'remove' | 'restart' | 'commitImage' | 'removeImage' | 'listVolumes' | 'removeVolume';

export class FakeBackend implements Backend {
  /** Docker writes, in order, as "verb target" (e.g. "create nbs-alice", "volume-create nbs-alice-home"). */
  readonly writes: string[] = [];
  /** Read calls by operation. */
  readonly reads: Record<string, number> = {};
  /** State a created or started object is observed in right after the write. */
  startState: ObservedState = 'running';
  /** State a stopped object is observed in right after the write ('running' = still shutting down). */
  stoppedState: ObservedState = 'stopped';
  /** The nodes (a multi-node Swarm when it has several). */
  clusterView: ClusterView = { multiNode: false, nodes: [] };
  /** Node a new, unpinned task lands on (Swarm's choice). */
  scheduleOn = 'fake-node';
  private readonly objects = new Map<string, ObservedServer>();
  private readonly images = new Map<string, { id: string; labels: Record<string, string> }>();
  private readonly volumes = new Map<string, Record<string, string>>();
  /** Volumes a test marks as still used by a container: removing them fails like Docker's 409. */
  readonly volumesInUse = new Set<string>();
  private readonly failures = new Map<FakeOp, BackendError[]>();
  private readonly desired = new Map<string, DesiredServer>();
  private readonly events$ = new Subject<BackendEvent>();
  private seq = 0;
  private nextPort = 32768;

  constructor(readonly kind: BackendKind = 'service') {}

  /** Put an image on the fake host. */
  addImage(reference: string, id = `sha256:${(++this.seq).toString(16).padStart(64, '0')}`): string {
    this.images.set(reference, { id, labels: {} });
    return id;
  }

  hasImage(reference: string): boolean {
    return this.images.has(reference);
  }

  imageLabels(reference: string): Record<string, string> | undefined {
    return this.images.get(reference)?.labels;
  }

  volumeNames(): string[] {
    return [...this.volumes.keys()];
  }

  /** The next call of `op` throws `err`. */
  failNext(op: FakeOp, err: BackendError): void {
    this.failures.set(op, [...(this.failures.get(op) ?? []), err]);
  }

  /**
   * Docker moved a server's object on by itself (a task started, a container crashed, Swarm
   * restarted it: `more` sets restarts/lastFailure/failedAt).
   */
  setState(uid: string, state: ObservedState, message?: string, more: Pick<ObservedServer, 'restarts' | 'lastFailure' | 'failedAt'> = {}): void {
    for (const o of this.objects.values()) {
      if (o.labels[LABELS.uid] !== uid) continue;
      o.state = state;
      o.message = message;
      o.restarts = more.restarts;
      o.lastFailure = more.lastFailure;
      o.failedAt = more.failedAt;
      this.emit(o, 'container', state === 'running' ? 'start' : 'die');
    }
  }

  /** Swarm moved a server's task to another node (node loss, drain), with a new published port. */
  move(uid: string, node: string, state: ObservedState = 'running'): void {
    for (const o of this.objects.values()) {
      if (o.labels[LABELS.uid] !== uid) continue;
      Object.assign(o, { node, state, hostPort: this.nextPort++, containerId: `container-${o.id}-${node}` });
    }
  }

  /** Someone removed a server's object behind the operator's back (drift). */
  removeBehindBack(uid: string): void {
    for (const [id, o] of this.objects) {
      if (o.labels[LABELS.uid] !== uid) continue;
      this.objects.delete(id);
      this.emit(o, this.kind, this.kind === 'service' ? 'remove' : 'destroy');
    }
  }

  /** A second object for a server named `name`, as a crash between create and label would leave. */
  duplicate(uid: string, name: string, state: ObservedState = 'pending'): void {
    const first = [...this.objects.values()].find((o) => o.labels[LABELS.uid] === uid);
    if (!first) throw new Error(`no object for ${uid} to duplicate`);
    const id = `${this.kind}-${++this.seq}`;
    this.objects.set(id, { ...first, id, name, state, labels: { ...first.labels }, containerId: `container-${id}`, createdAt: new Date(0).toISOString() });
  }

  /** The desired server an object was last written for (what a test asserts the reconciler rendered). */
  written(uid: string): DesiredServer | undefined {
    return this.desired.get(uid);
  }

  private fail(op: FakeOp): void {
    this.reads[op] = (this.reads[op] ?? 0) + 1;
    const queued = this.failures.get(op);
    const err = queued?.shift();
    if (err) throw err;
  }

  private emit(o: ObservedServer, type: string, action: string): void {
    this.events$.next({ uid: o.labels[LABELS.uid], name: o.name, type, action, time: Date.now() });
  }

  async resolveImage(reference: string, pullPolicy: PullPolicy): Promise<ResolvedImage> {
    this.fail('resolveImage');
    const img = this.images.get(reference);
    if (img && pullPolicy !== 'always') return { reference, id: img.id, pinned: img.id };
    if (pullPolicy === 'never') throw imageNotPresent(reference);
    throw new BackendError(
      `docker pull ${reference} failed: no registry on a fake host`,
      'ImagePullFailed',
      `docker pull ${reference}`,
      'check the image name',
    );
  }

  async cluster(): Promise<ClusterView> {
    return structuredClone(this.clusterView);
  }

  async find(uid: string): Promise<ObservedServer[]> {
    this.fail('find');
    return [...this.objects.values()].filter((o) => o.labels[LABELS.uid] === uid).map((o) => ({ ...o }));
  }

  async listManaged(scope?: { prefix?: string }): Promise<ObservedServer[]> {
    this.fail('listManaged');
    return [...this.objects.values()].filter((o) => !scope?.prefix || o.name.startsWith(scope.prefix)).map((o) => ({ ...o }));
  }

  async apply(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult> {
    this.fail('apply');
    this.desired.set(desired.uid, desired);
    const cur = current ? this.objects.get(current.id) : [...this.objects.values()].find((o) => o.labels[LABELS.uid] === desired.uid);
    if (!cur) {
      this.ensureVolumes(desired);
      const o = this.newObject(desired, image, desired.stopped ? this.stoppedState : this.startState);
      this.write('create', o);
      return { action: 'created', observed: { ...o } };
    }
    if (cur.specHash !== desired.specHash) {
      this.ensureVolumes(desired);
      if (this.kind === 'container') {
        this.objects.delete(cur.id);
        const o = this.newObject(desired, image, desired.stopped ? this.stoppedState : this.startState);
        this.write('recreate', o);
        return { action: 'recreated', observed: { ...o } };
      }
      Object.assign(cur, this.shape(desired, image), {
        state: desired.stopped ? this.stoppedState : this.startState,
        forcedRestarts: 0,
        restarts: undefined,
        lastFailure: undefined,
        failedAt: undefined,
      });
      this.write('update', cur);
      return { action: 'updated', observed: { ...cur } };
    }
    const live = cur.state !== 'stopped' && cur.state !== 'missing' && !(cur.replicas === 0 && cur.state !== 'running');
    const running = this.kind === 'service' ? cur.replicas !== 0 : live;
    if (desired.stopped && running) {
      Object.assign(cur, { state: this.stoppedState, replicas: this.kind === 'service' ? 0 : undefined });
      this.write('stop', cur);
      return { action: 'stopped', observed: { ...cur } };
    }
    if (!desired.stopped && !running) {
      Object.assign(cur, { state: this.startState, replicas: this.kind === 'service' ? 1 : undefined }, this.placed(desired, cur.node));
      this.write('start', cur);
      return { action: 'started', observed: { ...cur } };
    }
    if ((cur.pinNode ?? undefined) !== (desired.pinNode ?? undefined)) {
      // Placement alone: Swarm keeps the task where it runs when that node satisfies the pin.
      Object.assign(cur, { pinNode: desired.pinNode, labels: { ...desired.labels } });
      this.write('pin', cur);
      return { action: 'pinned', observed: { ...cur } };
    }
    return { action: 'unchanged', observed: { ...cur } };
  }

  async remove(observed: ObservedServer): Promise<void> {
    this.fail('remove');
    const o = this.objects.get(observed.id);
    if (!o) return;
    this.objects.delete(observed.id);
    this.write('remove', o);
  }

  async restart(observed: ObservedServer): Promise<ObservedServer> {
    this.fail('restart');
    const o = this.objects.get(observed.id);
    if (!o) throw new BackendError(`${observed.name} disappeared`, 'Conflict', `restart ${observed.name}`);
    Object.assign(o, {
      state: this.startState,
      message: undefined,
      restarts: undefined,
      lastFailure: undefined,
      failedAt: undefined,
      forcedRestarts: (o.forcedRestarts ?? 0) + 1,
    });
    this.write('restart', o);
    return { ...o };
  }

  async commitImage(observed: ObservedServer, repo: string, tag: string, labels: Record<string, string>): Promise<string> {
    this.fail('commitImage');
    if (!observed.containerId)
      throw new BackendError(`cannot commit ${observed.name}: it has no container right now`, 'CommitFailed', `docker commit ${repo}:${tag}`);
    const id = this.addImage(`${repo}:${tag}`);
    this.images.get(`${repo}:${tag}`)!.labels = { ...labels };
    this.writes.push(`commit ${repo}:${tag}`);
    return id;
  }

  async removeImage(reference: string): Promise<void> {
    this.fail('removeImage');
    if (this.images.delete(reference)) this.writes.push(`image-remove ${reference}`);
  }

  async listVolumes(labels: Record<string, string>): Promise<string[]> {
    this.fail('listVolumes');
    return [...this.volumes].filter(([, l]) => Object.entries(labels).every(([k, v]) => l[k] === v)).map(([name]) => name);
  }

  async removeVolume(name: string): Promise<'removed' | 'absent'> {
    this.fail('removeVolume');
    if (!this.volumes.has(name)) return 'absent';
    if (this.volumesInUse.has(name))
      throw new BackendError(`docker volume rm ${name} failed (HTTP 409): volume is in use`, 'Conflict', `docker volume rm ${name}`);
    this.volumes.delete(name);
    this.writes.push(`volume-remove ${name}`);
    return 'removed';
  }

  events(): Observable<BackendEvent> {
    return this.events$.asObservable();
  }

  async close(): Promise<void> {
    this.events$.complete();
  }

  private ensureVolumes(d: DesiredServer): void {
    // Several nodes: each node's daemon creates its own copy when a task mounts it (as Swarm does).
    if (this.clusterView.multiNode) return;
    for (const v of d.volumes) {
      if (v.type !== 'volume') continue;
      if (this.volumes.has(v.source)) {
        const problem = volumeOwnerConflict(this.volumes.get(v.source), v.labels);
        if (problem) throw volumeOwnerError(v.source, problem);
        continue;
      }
      this.volumes.set(v.source, { [LABELS.volume]: 'true', ...(v.labels ?? {}) });
      this.writes.push(`volume-create ${v.source}`);
    }
  }

  /** The fields of an object that follow from what was written. */
  private shape(d: DesiredServer, image: ResolvedImage): Partial<ObservedServer> {
    const volumes = Object.fromEntries(d.volumes.filter((v) => v.type === 'volume').map((v) => [v.target, v.source]));
    return {
      name: d.dockerName,
      labels: { ...d.labels },
      specHash: d.specHash,
      image: image.pinned,
      replicas: this.kind === 'service' ? (d.stopped ? 0 : 1) : undefined,
      pinNode: d.pinNode,
      volumes,
    };
  }

  /** Where a task of `d` runs: on its pinned node, else where it ran, else where Swarm puts new tasks. */
  private placed(d: DesiredServer, was?: string): Partial<ObservedServer> {
    return { node: d.pinNode ?? was ?? this.scheduleOn };
  }

  private newObject(d: DesiredServer, image: ResolvedImage, state: ObservedState): ObservedServer {
    const id = `${this.kind}-${++this.seq}`;
    const host = d.networkMode === 'host';
    const o: ObservedServer = {
      kind: this.kind,
      id,
      name: d.dockerName,
      labels: {},
      state,
      node: d.pinNode ?? this.scheduleOn,
      containerId: `container-${id}`,
      hostPort: host ? d.port : this.nextPort++,
      hostIp: host ? undefined : d.publishHostIp,
      createdAt: new Date(Date.now() + this.seq).toISOString(),
      ...this.shape(d, image),
    };
    this.objects.set(id, o);
    return o;
  }

  private write(verb: string, o: ObservedServer): void {
    this.writes.push(`${verb} ${o.name}`);
    this.emit(o, this.kind, verb);
  }
}
