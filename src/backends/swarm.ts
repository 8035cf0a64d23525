/**
 * Swarm backend (kind 'service'): one replicated service per server, 1 replica (0 when stopped),
 * a mode=host published port read back from the task's PortStatus. The service spec and the
 * reading of its tasks are pure (./swarm-spec.ts); reading and observing services is
 * ./swarm-reader.ts, drift ./swarm-drift.ts, secret files ./swarm-secrets.ts; this file writes.
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { BaseBackend, labelFilter, MANAGED_FILTER } from './base-backend.js';
import { hintFromDaemon, statusOf, wrapDockerError, type BackendOptions } from './docker.js';
import type { PullProgress } from './images.js';
import { parseImageRef, resolveShared } from './registry.js';
import { nameTaken } from './name-taken.js';
import { runBuildJob } from './swarm-build.js';
import { ServiceDrift } from './swarm-drift.js';
import { SwarmEventMapper } from './swarm-events.js';
import { SwarmReader } from './swarm-reader.js';
import { SwarmSecrets } from './swarm-secrets.js';
import { isPinned, serviceSpec, withPin } from './swarm-spec.js';
import { stopTaskNow } from './swarm-task-stop.js';
import {
  BackendError,
  type ApplyResult,
  type BackendEvent,
  type ClusterView,
  type DesiredServer,
  type ObservedServer,
  type PullPolicy,
  type RegistryAuth,
  type ResolvedImage,
} from './types.js';

export class SwarmBackend extends BaseBackend {
  readonly kind = 'service' as const;
  private readonly drift = new ServiceDrift();
  private readonly reader: SwarmReader;
  private readonly secrets: SwarmSecrets;
  private readonly swarmEvents: SwarmEventMapper;

  constructor(docker: Docker, opts: BackendOptions = {}) {
    super(docker, opts);
    this.reader = new SwarmReader(docker, this.drift);
    this.secrets = new SwarmSecrets(docker, opts.log);
    this.swarmEvents = new SwarmEventMapper(this.reader);
  }

  override async cluster(): Promise<ClusterView> {
    const s = await this.reader.nodeSnapshot();
    return { multiNode: s.multiNode, nodes: s.nodes };
  }

  fetchUid(uid: string): Promise<ObservedServer[]> {
    return this.reader.fetchUid(uid);
  }

  listAll(): Promise<ObservedServer[]> {
    return this.reader.listAll();
  }

  override settled(o: ObservedServer): boolean {
    return this.reader.settled(o);
  }

  /**
   * service update needs the current Version index; when someone else wrote in between Swarm
   * answers "update out of sequence", so re-read once and retry.
   */
  private async updateService(id: string, mutate: (spec: any) => any, call: string, auth?: RegistryAuth): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.reader.inspectService(id);
      if (!cur) throw new BackendError(`${call}: service ${id} disappeared`, 'Conflict', call, 'it was removed meanwhile; the next reconcile recreates it');
      const spec = mutate(cur.Spec);
      try {
        const body = { ...spec, version: cur.Version.Index } as any;
        // Without credentials Swarm keeps the ones it stored with the spec.
        await (auth ? this.docker.getService(id).update(auth as any, body) : this.docker.getService(id).update(body));
        this.reader.serviceChanged(id);
        return;
      } catch (err) {
        if (attempt === 0 && /out of sequence/i.test(String((err as any)?.json?.message ?? (err as Error).message))) continue;
        throw wrapDockerError(call, err, hintFromDaemon(err));
      }
    }
  }

  protected async applyNow(d: DesiredServer, image: ResolvedImage, current?: ObservedServer, opts?: { auth?: RegistryAuth }): Promise<ApplyResult> {
    const auth = opts?.auth;
    if (!current) {
      const found = await this.find(d.uid);
      current = found[0];
    }
    if (!current) return this.create(d, image, auth);
    // The service keeps its name (Swarm cannot rename one; the name is its address on the network).
    d = d.dockerName === current.name ? d : { ...d, dockerName: current.name };
    const wantReplicas = d.stopped ? 0 : 1;
    const haveReplicas = current.replicas ?? 1;
    // A running server keeps the image it runs when its tag now names another one, until it
    // (re)starts, unless asked to move at once. A spec change restarts it anyway: then it moves.
    const running = haveReplicas > 0 && wantReplicas > 0 && current.specHash === d.specHash;
    const written = current.writtenImage ?? current.image;
    const keep = running && d.imageUpdates !== 'immediate' && !!written && written !== image.pinned && isPinned(written);
    const use: ResolvedImage = keep ? { ...image, pinned: written!, digestReference: undefined } : image;
    const kept = keep ? { keptImage: written } : {};
    const changed = current.specHash !== d.specHash;
    const scale = haveReplicas !== wantReplicas;
    if (changed || (scale && wantReplicas)) {
      // A spec change, or a start: the whole spec as it is now, in one write. A stopped service is
      // kept as it was written (see below), so a newer image of its tag or drift made while it was
      // stopped is taken at its start; a scale-only start would have kept the old image for good.
      await this.ensureVolumesHere(d);
      const spec = serviceSpec(d, use, await this.secrets.ensure(d));
      await this.write(current, spec, d.specHash, `docker service update ${changed ? '' : '(start) '}${current.name}`, auth, false);
      // Secrets of the old content go; an unchanged spec made none to remove.
      if (changed || d.secretFiles?.length) await this.secrets.prune(d);
      return { action: changed ? 'updated' : 'started', observed: await this.observeById(current.id), ...kept };
    }
    const pin = (current.pinNode ?? undefined) !== (d.pinNode ?? undefined);
    if (scale || pin) {
      // Scale and pin touch only Mode and Placement, so Swarm keeps a running task where it is;
      // anything else that drifted is seen (and written back) by the next reconcile.
      const what = [scale ? `scale ${current.name}=${wantReplicas}` : '', pin ? `pin ${current.name} to ${d.pinNode ?? '(no node)'}` : '']
        .filter(Boolean)
        .join(', ');
      await this.updateService(
        current.id,
        (cur) => {
          const s = pin ? withPin(cur, d.pinNode) : cur;
          return stamped(scale ? { ...s, Mode: { Replicated: { Replicas: wantReplicas } } } : s);
        },
        `docker service update (${what})`,
        auth,
      );
      if (scale && !wantReplicas && current.containerId) await stopTaskNow(this.docker, this.reader, current.id, current.containerId);
      return { action: scale ? (wantReplicas ? 'started' : 'stopped') : 'pinned', observed: await this.observeById(current.id), ...kept };
    }
    // A stopped server keeps its service as it was written (a spec change is written when it
    // starts): comparing it with today's spec would "revert" every stop that came with a change.
    if (!wantReplicas) return { action: 'unchanged', observed: current, ...kept };
    const spec = serviceSpec(d, use, await this.secrets.refsOf(d, current));
    const drift = this.drift.driftOf(current, spec, d.specHash);
    if (drift.length) {
      // Written back whole: someone else's change, or a newer image on (re)start.
      await this.ensureVolumesHere(d);
      await this.write(current, spec, d.specHash, `docker service update ${current.name}`, auth, true);
      await this.secrets.prune(d);
      const observed = await this.observeById(current.id);
      const humanDrift = drift.filter((p) => p !== 'TaskTemplate.ContainerSpec.Image' || current!.image !== written);
      return { action: humanDrift.length ? 'reverted' : 'updated', observed, ...(humanDrift.length ? { drift: humanDrift } : {}), ...kept };
    }
    return { action: 'unchanged', observed: current, ...kept };
  }

  /** Write the whole spec (keeping the name) and remember how Docker stored it. */
  private async write(
    current: ObservedServer,
    spec: any,
    specHash: string,
    call: string,
    auth: RegistryAuth | undefined,
    keepForceUpdate: boolean,
  ): Promise<void> {
    // A changed ForceUpdate restarts the task: a write-back keeps the count of forced restarts;
    // a spec change restarts the server anyway and starts the count over.
    const force = (cur: any) => (keepForceUpdate && cur.TaskTemplate?.ForceUpdate ? { ForceUpdate: cur.TaskTemplate.ForceUpdate } : {});
    await this.updateService(current.id, (cur) => stamped({ ...spec, Name: current.name, TaskTemplate: { ...spec.TaskTemplate, ...force(cur) } }), call, auth);
    this.drift.rememberShape(current.id, spec, specHash);
  }

  private async create(d: DesiredServer, image: ResolvedImage, auth: RegistryAuth | undefined): Promise<ApplyResult> {
    await this.ensureVolumesHere(d);
    const spec = stamped(serviceSpec(d, image, await this.secrets.ensure(d)));
    let id: string;
    try {
      const res: any = await this.docker.createService(auth as any, spec);
      id = res.id ?? res.ID;
    } catch (err) {
      if (statusOf(err) === 409) {
        // The name is taken. Ours (a create whose answer was lost, e.g. by an operator killed
        // meanwhile): converge that one. Anyone else's: the reconciler picks another name.
        const holder = await this.reader.inspectService(d.dockerName);
        if (holder?.Spec?.Labels?.[LABELS.uid] === d.uid) return this.applyNow(d, image, await this.reader.observeService(holder), { auth });
        throw nameTaken('service', d.dockerName, holder?.Spec?.Labels, err);
      }
      throw wrapDockerError(`docker service create ${d.dockerName}`, err, hintFromDaemon(err));
    }
    this.reader.serviceUids.set(id, d.uid);
    this.drift.rememberShape(id, spec, d.specHash);
    // Secrets of an earlier attempt at this create (other content) go now; without secret files
    // there is nothing to prune that the service's removal would not take (they carry its uid).
    if (d.secretFiles?.length) await this.secrets.prune(d);
    // A service created a moment ago has no task worth listing yet: the next look sees Swarm's.
    return { action: 'created', observed: await this.observeById(id, []) };
  }

  /** docker service update --force: Swarm makes a new task even after its restart policy gave up. */
  protected async restartNow(observed: ObservedServer): Promise<ObservedServer> {
    await this.updateService(
      observed.id,
      (spec) => stamped({ ...spec, TaskTemplate: { ...spec.TaskTemplate, ForceUpdate: (spec.TaskTemplate?.ForceUpdate ?? 0) + 1 } }),
      `docker service update --force ${observed.name}`,
    );
    return this.observeById(observed.id);
  }

  /**
   * Named volumes are created by the daemon that mounts them. With one node that is this one (so
   * they are created first, labelled); with several, each node's daemon creates its own when a task
   * first mounts it there (the mount carries the labels and driver), and creating them on the
   * manager would only leave empty copies behind.
   */
  private async ensureVolumesHere(d: DesiredServer): Promise<void> {
    if ((await this.reader.nodeSnapshot()).multiNode) return;
    await this.ensureVolumes(d);
  }

  protected override async resolveFresh(
    reference: string,
    pullPolicy: PullPolicy,
    onProgress?: (p: PullProgress) => void,
    opts?: { auth?: RegistryAuth },
  ): Promise<ResolvedImage> {
    const registry = this.opts.registry;
    const nodes = await this.reader.nodeSnapshot();
    // One node and no registry in the policy: the local image will do, no registry round trip.
    if (!nodes.multiNode && !registry?.address) return super.resolveFresh(reference, pullPolicy, onProgress, opts);
    return resolveShared(this.docker, reference, {
      registry: registry?.address,
      pushLocalImages: !!registry?.pushLocalImages,
      multiNode: nodes.multiNode,
      auth: opts?.auth,
      onProgress,
    });
  }

  /**
   * Several nodes: the source container may run on any of them, and only its own daemon can commit
   * it; a one-off Swarm job there commits and pushes it to the registry (./swarm-build.ts).
   */
  override async commitImage(
    observed: ObservedServer,
    repo: string,
    tag: string,
    labels: Record<string, string>,
    opts?: { auth?: RegistryAuth },
  ): Promise<string> {
    if (!(await this.reader.nodeSnapshot()).multiNode) return super.commitImage(observed, repo, tag, labels, opts);
    const call = `docker commit ${observed.containerId ?? '(no container)'} ${repo}:${tag}`;
    this.images?.invalidate();
    if (!observed.containerId || !observed.node) {
      throw new BackendError(
        `cannot commit ${observed.name}: it has no running container right now (state ${observed.state})`,
        'CommitFailed',
        call,
        'start the source server first; a commit needs its container',
      );
    }
    if (!parseImageRef(repo).registry) {
      throw new BackendError(
        `cannot build ${repo}:${tag} on a multi-node Swarm without a registry: the other nodes could not pull it`,
        'CommitFailed',
        call,
        'set registry.address (or sourceImages.registry) in the policy',
      );
    }
    const builder = await this.resolveImage(this.opts.builderImage ?? 'docker:cli', 'ifNotPresent', undefined, opts);
    const ref = await runBuildJob(
      this.docker,
      {
        node: observed.node,
        containerId: observed.containerId,
        target: `${repo}:${tag}`,
        builderImage: builder.pinned,
        labels,
        comment: `nbswarm: snapshot of ${observed.name}`,
      },
      opts?.auth,
      { timeoutMs: this.opts.buildTimeoutMs ?? 600_000, pollMs: 250 },
    );
    this.images?.invalidate();
    return ref;
  }

  /** The service as Docker stored it after a write (`tasks`: its tasks when the caller knows them). */
  private async observeById(id: string, tasks?: any[]): Promise<ObservedServer> {
    const s = await this.reader.inspectService(id);
    if (!s) throw new BackendError(`service ${id} disappeared right after it was written`, 'Conflict', `docker service inspect ${id}`);
    const obs = await this.reader.observeService(s, tasks);
    this.drift.checkWritten(id, obs, this.log);
    return obs;
  }

  protected async removeNow(observed: ObservedServer): Promise<void> {
    try {
      await this.docker.getService(observed.id).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw wrapDockerError(`docker service rm ${observed.name}`, err);
    }
    this.reader.serviceChanged(observed.id);
    const uid = observed.labels[LABELS.uid];
    if (uid) await this.secrets.remove(uid, new Set());
  }

  protected override async imageInUseByServices(id: string): Promise<boolean> {
    const services = await this.reader.listServices(labelFilter(MANAGED_FILTER));
    return services.some((s) => {
      const img: string = s.Spec?.TaskTemplate?.ContainerSpec?.Image ?? '';
      return img === id || img.endsWith(`@${id}`);
    });
  }

  /**
   * Swarm keeps the exited containers of a service's shut-down tasks (task history), and they pin
   * the image they ran, so a replaced source-server image would never be freed while the service
   * lives. Once no service spec references the image (checked by ID: specs are pinned to IDs,
   * while callers pass a tag), those history containers are removed, then the image.
   */
  override async removeImage(ref: string): Promise<void> {
    let id: string;
    try {
      id = String(((await this.docker.getImage(ref).inspect()) as { Id: string }).Id);
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw wrapDockerError(`docker image inspect ${ref}`, err);
    }
    if (await this.imageInUseByServices(id)) return;
    const history = await this.docker.listContainers({
      all: true,
      filters: JSON.stringify({ ancestor: [id], label: [MANAGED_FILTER, 'com.docker.swarm.task.id'], status: ['created', 'exited', 'dead'] }),
    });
    await Promise.all(
      history.map((c) =>
        this.docker
          .getContainer(c.Id)
          .remove()
          .catch(() => undefined),
      ),
    );
    return super.removeImage(ref);
  }

  protected eventFilters(): Record<string, string[]> {
    // No label filter: Swarm 20.10's service events carry only the service name, so a label
    // filter would drop them all. Task containers carry the ContainerSpec labels and are
    // filtered client-side.
    return { type: ['service', 'container', 'node'] };
  }

  protected async mapEvent(raw: any): Promise<BackendEvent | undefined> {
    if (raw?.Type === 'node') return this.swarmEvents.nodeEvent(raw);
    if (raw?.Type === 'container') {
      const ev = this.containerEvent(raw);
      return ev ? { ...ev, type: raw.Actor?.Attributes?.['com.docker.swarm.task.id'] ? 'task' : 'container' } : undefined;
    }
    if (raw?.Type !== 'service') return undefined;
    // Whatever changed the service (a write of ours or anyone's), its next read goes to Docker.
    if (raw.Actor?.ID) this.reader.serviceChanged(String(raw.Actor.ID));
    return this.swarmEvents.serviceEvent(raw);
  }

  private primed = false;

  override events() {
    // Prime the ID → uid map so a remove event of a service created before we started still maps.
    if (!this.primed) {
      this.primed = true;
      void this.reader.listServices(labelFilter(MANAGED_FILTER)).catch(() => {
        this.primed = false;
      });
    }
    return super.events();
  }
}

/**
 * The service spec with the time of this write in its labels (not its tasks'): task failures from
 * before it say nothing about the server now (e.g. a crash loop before a stop, once scaled up).
 */
function stamped(spec: any): any {
  return { ...spec, Labels: { ...(spec.Labels ?? {}), [LABELS.writtenAt]: new Date().toISOString() } };
}
