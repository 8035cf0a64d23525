/**
 * Reading Swarm state for the Swarm backend: services and their tasks in as few calls as it can
 * (per-uid reads batched, one task list joined by service ID), each service observed from its
 * tasks (state, node, published port and the address it is bound to), and the node view.
 * Remembers which service ID belongs to which server (Swarm 20.10 service events name only the
 * service).
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { labelFilter, MANAGED_FILTER, namedVolumes } from './base-backend.js';
import { hintFromDaemon, statusOf, wrapDockerError } from './docker.js';
import { ReadBatcher } from './read-batcher.js';
import { BoundIps } from './swarm-bound-ips.js';
import type { ServiceDrift } from './swarm-drift.js';
import { lostNodeMessage, SwarmNodes, type NodesSnapshot } from './swarm-nodes.js';
import { interpretTasks } from './swarm-spec.js';
import type { ObservedServer } from './types.js';

/**
 * Shortest gap between two batched per-uid reads (see ReadBatcher): short while few servers are
 * being read (one spawn sees its task's next state sooner), longer in a burst, where each read
 * serves many servers and the reads themselves load the Swarm manager.
 */
const FETCH_SPACING_MS = 20;
const FETCH_SPACING_BURST_MS = 40;
const FETCH_BURST = 4;

/**
 * How long a service as last read stands in for a new read, while no service event and no write
 * of ours says it changed. A server being spawned is polled every few tens of ms until its task
 * runs; the service itself does not move meanwhile, only its task does. Listing only the tasks
 * halves the reads each poll makes of the Swarm manager — a store walk that also slows the
 * scheduling and start of that very task — and makes each poll one round trip instead of two.
 * Measured on a 2-core VM: service create → task running, polled every ~25 ms, 1,167 ms median
 * when each poll also listed the service against 1,108 ms with tasks alone (10 spawns each).
 * The bound is for an event stream that is down or late: then a change made by someone else is
 * seen at most this much later than it would be otherwise.
 */
export const SERVICE_REUSE_MS = 1000;

export class SwarmReader {
  private readonly nodeNames = new Map<string, Promise<string>>();
  /** Service ID → nbswarm uid: Swarm 20.10 service events carry only the service name. */
  readonly serviceUids = new Map<string, string>();
  /** The Swarm's nodes (one `docker info` while there is only one). */
  private readonly nodes: SwarmNodes;
  /** The last node view read, to name the node of a node event that carries only its ID. */
  lastNodes?: NodesSnapshot;
  private readonly boundIps: BoundIps;
  /** Observations whose every later change Docker announces on our event stream. */
  private readonly settledObs = new WeakSet<ObservedServer>();
  /**
   * Each service as last read, by ID, until it is known to have changed or is older than
   * SERVICE_REUSE_MS; oldest first, so what has expired is dropped from the front (a resync lists
   * every service, and none of them should stay in memory for longer than it may be reused).
   */
  private readonly lastRead = new Map<string, { service: any; at: number }>();
  /** Counts serviceChanged calls: a read that a change overtook is not kept (it may predate the change). */
  private changes = 0;

  private readonly reads = new ReadBatcher<string, ObservedServer[]>((uids) => this.fetchUids(uids), [], {
    spacingMs: (waiting) => (waiting > FETCH_BURST ? FETCH_SPACING_BURST_MS : FETCH_SPACING_MS),
  });

  constructor(
    private readonly docker: Docker,
    private readonly drift: ServiceDrift,
    private readonly now: () => number = Date.now,
  ) {
    this.boundIps = new BoundIps(docker);
    this.nodes = new SwarmNodes(docker);
  }

  async nodeSnapshot(): Promise<NodesSnapshot> {
    const s = await this.nodes.get();
    this.lastNodes = s;
    return s;
  }

  /** The node view changed (a node event): read it again next time. */
  nodesChanged(): void {
    this.nodes.invalidate();
  }

  /** Per-uid reads share one service list + one task list with every read asked for meanwhile. */
  fetchUid(uid: string): Promise<ObservedServer[]> {
    // Each caller gets its own array: the observer keeps and copies what it is handed.
    return this.reads.get(uid).then((servers) => [...servers]);
  }

  /**
   * Service `id` changed, or may have: a service event, or a write of ours. Its next read goes to
   * Docker (see SERVICE_REUSE_MS).
   */
  serviceChanged(id: string): void {
    this.changes++;
    this.lastRead.delete(id);
  }

  /** The services `ids` as last read, when every one of them is recent and unchanged since. */
  private recentServices(ids: string[]): any[] | undefined {
    // What is left after this is recent: the map is in order of reading.
    this.dropExpired(this.now());
    const out: any[] = [];
    for (const id of ids) {
      const r = this.lastRead.get(id);
      if (!r) return undefined;
      out.push(r.service);
    }
    return out;
  }

  /** Keeps `s` as read, unless a change was announced since the read began (`changesBefore`). */
  private remember(s: any, changesBefore: number): void {
    if (!s?.ID || changesBefore !== this.changes) return;
    const now = this.now();
    // Deleted first, so that the entry moves to the end: the map stays in order of reading.
    this.lastRead.delete(s.ID);
    this.lastRead.set(s.ID, { service: s, at: now });
    this.dropExpired(now);
  }

  private dropExpired(now: number): void {
    for (const [id, r] of this.lastRead) {
      if (now - r.at <= SERVICE_REUSE_MS) return;
      this.lastRead.delete(id);
    }
  }

  /** How many services are kept as last read (for tests). */
  get servicesKept(): number {
    return this.lastRead.size;
  }

  /**
   * The services of `uids` and their tasks: two calls whatever their number, or only the task list
   * while each service's last read still stands (SERVICE_REUSE_MS).
   */
  private async fetchUids(uids: string[]): Promise<Map<string, ObservedServer[]>> {
    // One uid: a label filter reads only its service. Several: Docker ANDs label filters but ORs
    // IDs, so when every uid's service is known, ask for those IDs; a list of every managed service
    // per poll grew with the fleet (a burst of 200 listed 200 services ~360 times). A uid with no
    // known service (not created yet, or made elsewhere) falls back to the managed-label list;
    // a stray duplicate made by someone else shows up in the next full list (resync, events).
    const wanted = new Set(uids);
    const ids = this.knownServiceIds(wanted);
    const filter = uids.length === 1 ? labelFilter(`${LABELS.uid}=${uids[0]}`) : ids ? JSON.stringify({ id: ids }) : labelFilter(MANAGED_FILTER);
    const all = (ids && this.recentServices(ids)) || (await this.listServices(filter));
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
  async listTasks(filters: Record<string, string[]>): Promise<Map<string, any[]>> {
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

  settled(o: ObservedServer): boolean {
    return this.settledObs.has(o);
  }

  async listServices(filters: string): Promise<any[]> {
    const changes = this.changes;
    try {
      const list = (await this.docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as any[];
      for (const s of list) {
        if (s.Spec?.Labels?.[LABELS.uid]) this.serviceUids.set(s.ID, s.Spec.Labels[LABELS.uid]);
        this.remember(s, changes);
      }
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
      observedSpec: this.drift.ownedSpecOf(s),
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

  async inspectService(id: string): Promise<any | undefined> {
    const changes = this.changes;
    try {
      const s = await this.docker.getService(id).inspect();
      this.remember(s, changes);
      return s;
    } catch (err) {
      if (statusOf(err) === 404) {
        this.serviceChanged(id);
        return undefined;
      }
      throw wrapDockerError(`docker service inspect ${id}`, err);
    }
  }
}
