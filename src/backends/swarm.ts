/**
 * Swarm backend (kind 'service'): one replicated service per server, 1 replica (0 when stopped),
 * a mode=host published port read back from the task's PortStatus. The service spec and the
 * reading of its tasks are pure (./swarm-spec.ts); this file does the Docker calls.
 */
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { LABELS } from '../api/names.js';
import { BaseBackend, labelFilter, MANAGED_FILTER, namedVolumes } from './base-backend.js';
import { eventTime } from './docker-events.js';
import { hintFromDaemon, statusOf, wrapDockerError, type BackendOptions } from './docker.js';
import type { PullProgress } from './images.js';
import { ReadBatcher } from './read-batcher.js';
import { parseImageRef, resolveShared } from './registry.js';
import { BoundIps } from './swarm-bound-ips.js';
import { digestOf, WrittenShapes } from './drift.js';
import { nameTaken } from './name-taken.js';
import { runBuildJob } from './swarm-build.js';
import { lostNodeMessage, SwarmNodes, type NodesSnapshot } from './swarm-nodes.js';
import { interpretTasks, isPinned, ownedServiceSpec, serviceDrift, serviceSpec, withPin } from './swarm-spec.js';
import { swarmSecretLabels, swarmSecretName, swarmSecretRefs } from './secret-files.js';
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

/**
 * Shortest gap between two batched per-uid reads (see ReadBatcher): short while few servers are
 * being read (one spawn sees its task's next state sooner), longer in a burst, where each read
 * serves many servers and the reads themselves load the Swarm manager.
 */
const FETCH_SPACING_MS = 20;
const FETCH_SPACING_BURST_MS = 40;
const FETCH_BURST = 4;
/** Swarm's default task stop grace period (ContainerSpec.StopGracePeriod unset), used for our own stop too. */
const STOP_GRACE_SECONDS = 10;
/** How long a scale-down waits for Swarm to mark the task for shutdown, and later to report it down. */
const TASK_SHUTDOWN_WAIT_MS = 2000;

export class SwarmBackend extends BaseBackend {
  readonly kind = 'service' as const;
  private readonly nodeNames = new Map<string, Promise<string>>();
  /** Service ID → nbswarm uid: Swarm 20.10 service events carry only the service name. */
  private readonly serviceUids = new Map<string, string>();
  /** The Swarm's nodes (one `docker info` while there is only one). */
  private readonly nodes: SwarmNodes;
  /** The last node view read, to name the node of a node event that carries only its ID. */
  private lastNodes?: NodesSnapshot;
  /** Services seen in events that are not ours (no managed-by label), so each is inspected once. */
  private readonly foreign = new Set<string>();
  private readonly boundIps: BoundIps;
  /** Observations whose every later change Docker announces on our event stream. */
  private readonly settledObs = new WeakSet<ObservedServer>();
  /** ownedServiceSpec per service, for its Swarm version. */
  private readonly ownedSpecs = new Map<string, { key: string; owned: unknown }>();
  /**
   * The last drift computed per service: for the same observed spec (one object per Swarm version,
   * see ownedSpecOf) and the same desired spec (by a digest of its text) it is the same. A server
   * polled while it starts compared unchanged specs ~10 times a second, the costliest step of its
   * reconcile.
   */
  private readonly drifts = new Map<string, { observed: unknown; desired: string; drift: string[] }>();
  /** Specs just written, checked against what Docker stored at the next inspect of the service. */
  private readonly pendingShapes = new Map<string, { spec: any; specHash: string }>();
  private readonly shapes = new WrittenShapes();

  private readonly reads = new ReadBatcher<string, ObservedServer[]>((uids) => this.fetchUids(uids), [], {
    spacingMs: (waiting) => (waiting > FETCH_BURST ? FETCH_SPACING_BURST_MS : FETCH_SPACING_MS),
  });

  constructor(docker: Docker, opts: BackendOptions = {}) {
    super(docker, opts);
    this.boundIps = new BoundIps(docker);
    this.nodes = new SwarmNodes(docker);
  }

  override async cluster(): Promise<ClusterView> {
    const s = await this.nodeSnapshot();
    return { multiNode: s.multiNode, nodes: s.nodes };
  }

  private async nodeSnapshot(): Promise<NodesSnapshot> {
    const s = await this.nodes.get();
    this.lastNodes = s;
    return s;
  }

  /** Per-uid reads share one service list + one task list with every read asked for meanwhile. */
  fetchUid(uid: string): Promise<ObservedServer[]> {
    // Each caller gets its own array: the observer keeps and copies what it is handed.
    return this.reads.get(uid).then((servers) => [...servers]);
  }

  /** The services of `uids` and their tasks: two calls whatever their number. */
  private async fetchUids(uids: string[]): Promise<Map<string, ObservedServer[]>> {
    // One uid: a label filter reads only its service. Several: Docker ANDs label filters but ORs
    // IDs, so when every uid's service is known, ask for those IDs; a list of every managed service
    // per poll grew with the fleet (a burst of 200 listed 200 services ~360 times). A uid with no
    // known service (not created yet, or made elsewhere) falls back to the managed-label list;
    // a stray duplicate made by someone else shows up in the next full list (resync, events).
    const wanted = new Set(uids);
    const ids = this.knownServiceIds(wanted);
    const filter = uids.length === 1 ? labelFilter(`${LABELS.uid}=${uids[0]}`) : ids ? JSON.stringify({ id: ids }) : labelFilter(MANAGED_FILTER);
    const all = await this.listServices(filter);
    const services = all.filter((s) => wanted.has(s.Spec?.Labels?.[LABELS.uid]));
    const out = new Map<string, ObservedServer[]>();
    if (!services.length) return out;
    const tasks = await this.listTasks({ service: services.map((s) => s.ID) });
    const observed = await Promise.all(services.map((s) => this.observeService(s, tasks.get(s.ID) ?? [])));
    for (const o of observed) {
      const uid = o.labels[LABELS.uid]!;
      const l = out.get(uid);
      if (l) l.push(o);
      else out.set(uid, [o]);
    }
    return out;
  }

  /** IDs of the services of `uids` when each uid has one we know of, else undefined. */
  private knownServiceIds(uids: Set<string>): string[] | undefined {
    const ids: string[] = [];
    const covered = new Set<string>();
    for (const [id, uid] of this.serviceUids) {
      if (uids.has(uid)) {
        ids.push(id);
        covered.add(uid);
      }
    }
    return covered.size === uids.size ? ids : undefined;
  }

  /** All managed services from two calls: the services, and ONE task list joined by service ID. */
  async listAll(): Promise<ObservedServer[]> {
    const [services, tasks] = await Promise.all([this.listServices(labelFilter(MANAGED_FILTER)), this.listTasks({ label: [MANAGED_FILTER] })]);
    await this.boundIps.refresh(services, tasks, await this.localNodeId());
    return Promise.all(services.map((s) => this.observeService(s, tasks.get(s.ID) ?? [])));
  }

  /** Tasks by service ID (a task list filter on label matches the service's labels). */
  private async listTasks(filters: Record<string, string[]>): Promise<Map<string, any[]>> {
    let list: any[];
    try {
      list = (await this.docker.listTasks({ filters: JSON.stringify(filters) } as object)) as any[];
    } catch (err) {
      throw wrapDockerError('docker service ps', err, hintFromDaemon(err));
    }
    const by = new Map<string, any[]>();
    for (const t of list) {
      const l = by.get(t.ServiceID);
      if (l) l.push(t);
      else by.set(t.ServiceID, [t]);
    }
    return by;
  }

  override settled(o: ObservedServer): boolean {
    return this.settledObs.has(o);
  }

  private async listServices(filters: string): Promise<any[]> {
    try {
      const list = (await this.docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as any[];
      for (const s of list) if (s.Spec?.Labels?.[LABELS.uid]) this.serviceUids.set(s.ID, s.Spec.Labels[LABELS.uid]);
      return list;
    } catch (err) {
      throw wrapDockerError('docker service ls', err, hintFromDaemon(err));
    }
  }

  private nodeName(id: string | undefined): Promise<string | undefined> {
    if (!id) return Promise.resolve(undefined);
    let p = this.nodeNames.get(id);
    if (!p) {
      // The promise is kept, so observing many tasks at once asks Docker once per node.
      p = this.docker
        .getNode(id)
        .inspect()
        .then(
          (n: any) => String(n?.Description?.Hostname ?? id),
          () => {
            this.nodeNames.delete(id);
            return id;
          },
        );
      this.nodeNames.set(id, p);
    }
    return p;
  }

  private async localNodeId(): Promise<string | undefined> {
    try {
      return (await this.nodeSnapshot()).self;
    } catch {
      return undefined;
    }
  }

  /** Observe service `s` from its tasks (read here when not given). */
  async observeService(s: any, given?: any[]): Promise<ObservedServer> {
    const spec = s.Spec ?? {};
    const labels: Record<string, string> = spec.Labels ?? {};
    const replicas: number = spec.Mode?.Replicated?.Replicas ?? 1;
    const port = Number(labels[LABELS.port] ?? 0);
    // Swarm stores network IDs, not names, so host networking is recognised by "nothing published".
    const hostNetwork = !(spec.EndpointSpec?.Ports?.length > 0);
    const tasks: any[] = given ?? (await this.listTasks({ service: [s.ID] })).get(s.ID) ?? [];
    const forcedRestarts = Number(spec.TaskTemplate?.ForceUpdate ?? 0);
    // Not the service's UpdatedAt: Swarm's updater moves it too (e.g. when it pauses after a failure).
    const writtenAt: string | undefined = labels[LABELS.writtenAt] || s.CreatedAt;
    const view = interpretTasks(tasks, replicas, { specHash: labels[LABELS.specHash], forceUpdate: forcedRestarts, updatedAt: writtenAt });
    const obs: ObservedServer = {
      kind: 'service',
      id: s.ID,
      name: spec.Name,
      labels,
      specHash: labels[LABELS.specHash],
      state: view.state,
      message: view.message,
      image: spec.TaskTemplate?.ContainerSpec?.Image,
      replicas,
      pinNode: labels[LABELS.node] || undefined,
      createdAt: s.CreatedAt,
      updatedAt: writtenAt,
      forcedRestarts,
      volumes: namedVolumes(spec.TaskTemplate?.ContainerSpec?.Mounts, 'Source', 'Target'),
      observedSpec: this.ownedSpecOf(s),
      writtenImage: labels[LABELS.writtenImage] || spec.TaskTemplate?.ContainerSpec?.Image,
    };
    if (view.restarts) {
      obs.restarts = view.restarts;
      obs.lastFailure = view.lastFailure;
    }
    if (view.failedAt) obs.failedAt = view.failedAt;
    if (replicas === 0) {
      // A scaled-down service changes only by a service update (an event); a task still shutting
      // down announces its container's death only when it ran on this node.
      const live = view.shuttingDown;
      if (!live || (live.NodeID && live.NodeID === (await this.localNodeId()))) this.settledObs.add(obs);
      return obs;
    }
    const task = view.task;
    if (!task) return obs;
    const st = task.Status ?? {};
    const nodes = await this.nodeSnapshot().catch(() => undefined);
    // Several nodes: a published port is reached at the address of the node that runs the task.
    const taskNode = nodes?.multiNode ? nodes.byId.get(task.NodeID) : undefined;
    obs.node = taskNode?.hostname ?? (await this.nodeName(task.NodeID));
    const lost = lostNodeMessage(obs.state, taskNode);
    if (lost) {
      obs.state = 'starting';
      obs.message = lost;
    }
    obs.containerId = st.ContainerStatus?.ContainerID || undefined;
    if (hostNetwork) {
      obs.hostPort = port || undefined;
      obs.hostIp = taskNode?.addr;
    } else {
      const p = (st.PortStatus?.Ports ?? []).find((x: any) => x.TargetPort === port) ?? st.PortStatus?.Ports?.[0];
      if (p?.PublishedPort) obs.hostPort = p.PublishedPort;
      if (obs.hostPort && obs.containerId && task.NodeID && task.NodeID === (await this.localNodeId())) {
        obs.hostIp = await this.boundIps.of(obs.containerId, port);
      }
      if (taskNode?.addr && (obs.hostIp === undefined || obs.hostIp === '0.0.0.0' || obs.hostIp === '::')) obs.hostIp = taskNode.addr;
      obs.hostIp ??= labels[LABELS.hostIp] || undefined;
    }
    // A running task on this node changes only with a container event we see; anything else
    // (scheduling, retries, tasks on other nodes) moves without one.
    if (obs.state === 'running' && task.NodeID && task.NodeID === (await this.localNodeId())) this.settledObs.add(obs);
    return obs;
  }

  private async inspectService(id: string): Promise<any | undefined> {
    try {
      return await this.docker.getService(id).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw wrapDockerError(`docker service inspect ${id}`, err);
    }
  }

  /**
   * service update needs the current Version index; when someone else wrote in between Swarm
   * answers "update out of sequence", so re-read once and retry.
   */
  private async updateService(id: string, mutate: (spec: any) => any, call: string, auth?: RegistryAuth): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.inspectService(id);
      if (!cur) throw new BackendError(`${call}: service ${id} disappeared`, 'Conflict', call, 'it was removed meanwhile; the next reconcile recreates it');
      const spec = mutate(cur.Spec);
      try {
        const body = { ...spec, version: cur.Version.Index } as any;
        // Without credentials Swarm keeps the ones it stored with the spec.
        await (auth ? this.docker.getService(id).update(auth as any, body) : this.docker.getService(id).update(body));
        return;
      } catch (err) {
        if (attempt === 0 && /out of sequence/i.test(String((err as any)?.json?.message ?? (err as Error).message))) continue;
        throw wrapDockerError(call, err, hintFromDaemon(err));
      }
    }
  }

  /** ownedServiceSpec of service `s`, computed once per Swarm version of it (an idle resync re-lists unchanged services). */
  private ownedSpecOf(s: any): unknown {
    const key = `${s.ID}@${s.Version?.Index ?? ''}`;
    const hit = this.ownedSpecs.get(s.ID);
    if (hit && hit.key === key) return hit.owned;
    const owned = ownedServiceSpec(s.Spec);
    if (this.ownedSpecs.size > 20_000) this.ownedSpecs.clear();
    this.ownedSpecs.set(s.ID, { key, owned });
    return owned;
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
      const spec = serviceSpec(d, use, await this.ensureSecrets(d));
      await this.write(current, spec, d.specHash, `docker service update ${changed ? '' : '(start) '}${current.name}`, auth, false);
      // Secrets of the old content go; an unchanged spec made none to remove.
      if (changed || d.secretFiles?.length) await this.pruneSecrets(d);
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
      if (scale && !wantReplicas && current.containerId) await this.stopTaskNow(current.id, current.containerId);
      return { action: scale ? (wantReplicas ? 'started' : 'stopped') : 'pinned', observed: await this.observeById(current.id), ...kept };
    }
    // A stopped server keeps its service as it was written (a spec change is written when it
    // starts): comparing it with today's spec would "revert" every stop that came with a change.
    if (!wantReplicas) return { action: 'unchanged', observed: current, ...kept };
    const spec = serviceSpec(d, use, await this.secretRefsOf(d, current));
    const drift = this.driftOf(current, spec, d.specHash);
    if (drift.length) {
      // Written back whole: someone else's change, or a newer image on (re)start.
      await this.ensureVolumesHere(d);
      await this.write(current, spec, d.specHash, `docker service update ${current.name}`, auth, true);
      await this.pruneSecrets(d);
      const observed = await this.observeById(current.id);
      const humanDrift = drift.filter((p) => p !== 'TaskTemplate.ContainerSpec.Image' || current!.image !== written);
      return { action: humanDrift.length ? 'reverted' : 'updated', observed, ...(humanDrift.length ? { drift: humanDrift } : {}), ...kept };
    }
    return { action: 'unchanged', observed: current, ...kept };
  }

  /**
   * Where service `current` differs from `spec` (what nbswarm writes now), ignoring how it looked
   * right after the operator's own last write for this spec hash.
   */
  private driftOf(current: ObservedServer, spec: any, specHash: string): string[] {
    if (current.observedSpec === undefined) return [];
    const desired = createHash('sha1').update(JSON.stringify(spec)).digest('base64');
    const memo = this.drifts.get(current.id);
    let drift: string[];
    if (memo && memo.observed === current.observedSpec && memo.desired === desired) drift = memo.drift;
    else {
      drift = serviceDrift(current.observedSpec, spec);
      if (this.drifts.size > 20_000) this.drifts.clear();
      this.drifts.set(current.id, { observed: current.observedSpec, desired, drift });
    }
    if (drift.length && this.shapes.isOwnWrite(current.id, specHash, digestOf(current.observedSpec))) return [];
    return drift;
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
    this.rememberShape(current.id, spec, specHash);
  }

  /**
   * After a write, the stored spec should compare equal to what was written; when the daemon
   * normalised something drift.ts does not know, remember that shape so it is not "reverted"
   * again and again (one log line says what it was).
   */
  private rememberShape(id: string, spec: any, specHash: string): void {
    this.pendingShapes.set(id, { spec, specHash });
  }

  private async create(d: DesiredServer, image: ResolvedImage, auth: RegistryAuth | undefined): Promise<ApplyResult> {
    await this.ensureVolumesHere(d);
    const spec = stamped(serviceSpec(d, image, await this.ensureSecrets(d)));
    let id: string;
    try {
      const res: any = await this.docker.createService(auth as any, spec);
      id = res.id ?? res.ID;
    } catch (err) {
      if (statusOf(err) === 409) {
        // The name is taken. Ours (a create whose answer was lost, e.g. by an operator killed
        // meanwhile): converge that one. Anyone else's: the reconciler picks another name.
        const holder = await this.inspectService(d.dockerName);
        if (holder?.Spec?.Labels?.[LABELS.uid] === d.uid) return this.applyNow(d, image, await this.observeService(holder), { auth });
        throw nameTaken('service', d.dockerName, holder?.Spec?.Labels, err);
      }
      throw wrapDockerError(`docker service create ${d.dockerName}`, err, hintFromDaemon(err));
    }
    this.serviceUids.set(id, d.uid);
    this.rememberShape(id, spec, d.specHash);
    // Secrets of an earlier attempt at this create (other content) go now; without secret files
    // there is nothing to prune that the service's removal would not take (they carry its uid).
    if (d.secretFiles?.length) await this.pruneSecrets(d);
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
   * Stop a scaled-down service's task container ourselves when it runs on this node. Swarm stops a
   * task attached to any network but the default bridge (host networking, an overlay) only after a
   * fixed 2 s pause for its service-discovery gossip to converge (moby's executor,
   * defaultGossipConvergeDelay); a notebook server being stopped has no callers to drain, so that
   * pause was most of a stop. The container is stopped only once Swarm no longer wants the task
   * running (so its exit is never taken for a crash to restart), with Swarm's own grace period,
   * and the call returns when Swarm reports the task down. A container on another node (not found
   * here) is left to Swarm.
   */
  private async stopTaskNow(serviceId: string, containerId: string): Promise<void> {
    const tasksOf = async () => (await this.listTasks({ service: [serviceId] })).get(serviceId) ?? [];
    const ours = (tasks: any[]) => tasks.find((t) => t.Status?.ContainerStatus?.ContainerID === containerId);
    if (!(await this.until(async () => ours(await tasksOf())?.DesiredState !== 'running', TASK_SHUTDOWN_WAIT_MS))) return;
    try {
      await this.docker.getContainer(containerId).stop({ t: STOP_GRACE_SECONDS });
    } catch (err) {
      const s = statusOf(err);
      if (s === 404) return; // on another node: Swarm stops it
      if (s !== 304) throw wrapDockerError(`docker stop ${containerId.slice(0, 12)}`, err);
    }
    await this.until(async () => ours(await tasksOf())?.Status?.State !== 'running', TASK_SHUTDOWN_WAIT_MS);
  }

  /** Poll `cond` every 10 ms for up to `ms`; whether it held. */
  private async until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await cond()) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Named volumes are created by the daemon that mounts them. With one node that is this one (so
   * they are created first, labelled); with several, each node's daemon creates its own when a task
   * first mounts it there (the mount carries the labels and driver), and creating them on the
   * manager would only leave empty copies behind.
   */
  private async ensureVolumesHere(d: DesiredServer): Promise<void> {
    if ((await this.nodeSnapshot()).multiNode) return;
    await this.ensureVolumes(d);
  }

  protected override async resolveFresh(
    reference: string,
    pullPolicy: PullPolicy,
    onProgress?: (p: PullProgress) => void,
    opts?: { auth?: RegistryAuth },
  ): Promise<ResolvedImage> {
    const registry = this.opts.registry;
    const nodes = await this.nodeSnapshot();
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
    if (!(await this.nodeSnapshot()).multiNode) return super.commitImage(observed, repo, tag, labels, opts);
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
    const s = await this.inspectService(id);
    if (!s) throw new BackendError(`service ${id} disappeared right after it was written`, 'Conflict', `docker service inspect ${id}`);
    const obs = await this.observeService(s, tasks);
    const written = this.pendingShapes.get(id);
    if (written) {
      this.pendingShapes.delete(id);
      const left = serviceDrift(obs.observedSpec, written.spec);
      if (left.length) {
        this.shapes.remember(id, written.specHash, digestOf(obs.observedSpec));
        this.log?.warn('Docker stored a service spec that differs from the one written; not treated as drift', { service: obs.name, paths: left });
      }
    }
    return obs;
  }

  protected async removeNow(observed: ObservedServer): Promise<void> {
    try {
      await this.docker.getService(observed.id).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw wrapDockerError(`docker service rm ${observed.name}`, err);
    }
    const uid = observed.labels[LABELS.uid];
    if (uid) await this.removeSecrets(uid, new Set());
  }

  /**
   * ContainerSpec.Secrets for the drift check of an idle reconcile: the service's own entries when it
   * references every secret d wants (secret names carry a digest of their content, so the same name
   * is the same secret), read from the observed spec without a Docker call; else the secrets are made.
   */
  private async secretRefsOf(d: DesiredServer, current: ObservedServer): Promise<object[]> {
    if (!d.secretFiles?.length) return [];
    const refs: any[] = (current.observedSpec as any)?.TaskTemplate?.ContainerSpec?.Secrets ?? [];
    const ids = new Map<string, string>(refs.filter((r) => r?.SecretName && r.SecretID).map((r) => [r.SecretName, r.SecretID]));
    if (d.secretFiles.every((f) => ids.has(swarmSecretName(d, f)))) return swarmSecretRefs(d, ids);
    return this.ensureSecrets(d);
  }

  /** The Docker secrets of d.secretFiles, created when missing; their ContainerSpec.Secrets entries. */
  private async ensureSecrets(d: DesiredServer): Promise<object[]> {
    const files = d.secretFiles ?? [];
    if (!files.length) return [];
    const existing = await this.listSecrets(d.uid);
    const ids = new Map<string, string>(existing.map((s) => [s.Spec?.Name, s.ID]));
    for (const f of files) {
      const name = swarmSecretName(d, f);
      if (ids.has(name)) continue;
      try {
        const res: any = await this.docker.createSecret({ Name: name, Labels: swarmSecretLabels(d), Data: Buffer.from(f.data, 'utf8').toString('base64') });
        ids.set(name, res.id ?? res.ID);
      } catch (err) {
        if (statusOf(err) !== 409) throw wrapDockerError(`docker secret create ${name}`, err, hintFromDaemon(err));
        const again = (await this.listSecrets(d.uid)).find((s) => s.Spec?.Name === name);
        if (!again) throw wrapDockerError(`docker secret create ${name}`, err, 'a secret of that name exists but is not labelled for this resource: remove it');
        ids.set(name, again.ID);
      }
    }
    return swarmSecretRefs(d, ids);
  }

  /** Remove the server's Docker secrets that its spec no longer references (a changed Secret's old content). */
  private async pruneSecrets(d: DesiredServer): Promise<void> {
    const keep = new Set((d.secretFiles ?? []).map((f) => swarmSecretName(d, f)));
    await this.removeSecrets(d.uid, keep);
  }

  private async removeSecrets(uid: string, keep: ReadonlySet<string>): Promise<void> {
    const stale = (await this.listSecrets(uid)).filter((s) => !keep.has(s.Spec?.Name));
    // Best effort: a secret still referenced by a service (a racing update) is refused and tried
    // again with the next write or the removal of the service.
    await Promise.all(
      stale.map((s) =>
        this.docker
          .getSecret(s.ID)
          .remove()
          .catch((err: unknown) => {
            if (statusOf(err) !== 404) this.log?.debug('docker secret rm deferred', { secret: s.Spec?.Name, error: (err as Error).message });
          }),
      ),
    );
  }

  private async listSecrets(uid: string): Promise<any[]> {
    try {
      return (await this.docker.listSecrets({ filters: labelFilter(`${LABELS.uid}=${uid}`) } as object)) as any[];
    } catch (err) {
      throw wrapDockerError('docker secret ls', err, hintFromDaemon(err));
    }
  }

  protected override async imageInUseByServices(id: string): Promise<boolean> {
    const services = await this.listServices(labelFilter(MANAGED_FILTER));
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
    if (raw?.Type === 'node') {
      // A node went down, came back, was drained or joined: tasks moved without events of their own.
      this.nodes.invalidate();
      const id = String(raw.Actor?.ID ?? '');
      const name = raw.Actor?.Attributes?.name ?? this.lastNodes?.byId.get(id)?.hostname;
      return { type: 'node', name, action: String(raw.Action ?? ''), time: eventTime(raw) };
    }
    if (raw?.Type === 'container') {
      const ev = this.containerEvent(raw);
      return ev ? { ...ev, type: raw.Actor?.Attributes?.['com.docker.swarm.task.id'] ? 'task' : 'container' } : undefined;
    }
    if (raw?.Type !== 'service') return undefined;
    const id: string = raw.Actor?.ID;
    if (this.foreign.has(id)) return undefined;
    let uid = this.serviceUids.get(id);
    if (!uid && raw.Action !== 'remove') {
      const s = await this.inspectService(id);
      uid = s?.Spec?.Labels?.[LABELS.uid];
      if (s && s.Spec?.Labels?.[LABELS.managedBy] === undefined) {
        // Someone else's service (a shared daemon): remember, so its next events cost no inspect.
        if (this.foreign.size > 10_000) this.foreign.clear();
        this.foreign.add(id);
      }
      if (s?.Spec?.Labels?.[LABELS.managedBy] === undefined) return undefined;
      if (uid) this.serviceUids.set(id, uid);
    }
    if (!uid) return undefined;
    if (raw.Action === 'remove') this.serviceUids.delete(id);
    const name = raw.Actor?.Attributes?.name;
    return { uid, name, type: 'service', action: String(raw.Action), time: eventTime(raw) };
  }

  private primed = false;

  override events() {
    // Prime the ID → uid map so a remove event of a service created before we started still maps.
    if (!this.primed) {
      this.primed = true;
      void this.listServices(labelFilter(MANAGED_FILTER)).catch(() => {
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
