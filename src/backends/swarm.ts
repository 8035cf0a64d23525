/**
 * Swarm backend (kind 'service'): one replicated service per server, 1 replica (0 when stopped),
 * a mode=host published port read back from the task's PortStatus (DESIGN.md §3).
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/types.js';
import { BackendError, type ApplyResult, type BackendEvent, type DesiredServer, type ObservedServer, type ObservedState, type ResolvedImage } from './types.js';
import { BaseBackend, envList, HOST_IP_LABEL, labelFilter, MANAGED_FILTER, objectLabels } from './common.js';
import { hintFromDaemon, statusOf, wrapDockerError } from './docker.js';

const TASK_STATE: Record<string, ObservedState> = {
  new: 'pending',
  allocated: 'pending',
  pending: 'pending',
  assigned: 'pending',
  accepted: 'pending',
  preparing: 'preparing',
  ready: 'starting',
  starting: 'starting',
  running: 'running',
  failed: 'failed',
  rejected: 'rejected',
};

/**
 * Shortest gap between two batched per-uid reads (see fetchUid): short while few servers are
 * being read (one spawn sees its task's next state sooner), longer in a burst, where each read
 * serves many servers and the reads themselves load the Swarm manager.
 */
const FETCH_SPACING_MS = 20;
const FETCH_SPACING_BURST_MS = 40;
const FETCH_BURST = 4;

export class SwarmBackend extends BaseBackend {
  readonly kind = 'service' as const;
  private readonly nodeNames = new Map<string, Promise<string>>();
  /** Service ID → nbswarm uid: Swarm 20.10 service events carry only the service name. */
  private readonly serviceUids = new Map<string, string>();
  private selfNodeId?: Promise<string | undefined>;
  /** Services seen in events that are not ours (no managed-by label), so each is inspected once. */
  private readonly foreign = new Set<string>();
  /** container ID → host IP its published port is bound to (fixed for the container's life). */
  private readonly boundIps = new Map<string, string>();
  /** Observations whose every later change Docker announces on our event stream. */
  private readonly settledObs = new WeakSet<ObservedServer>();

  constructor(docker: Docker, opts = {}) {
    super(docker, opts);
  }

  /** The service spec for `d`, pinned to `image.pinned`. Pure, so it can be unit-tested. */
  static serviceSpec(d: DesiredServer, image: ResolvedImage): any {
    if (!image.pinned || (!image.pinned.startsWith('sha256:') && !image.pinned.includes('@sha256:'))) {
      // A bare tag would make every task start pull from a registry (moby's executor).
      throw new BackendError(`refusing to hand Swarm the unpinned image "${image.pinned}"`, 'DockerError', 'docker service create', 'resolve the image first (resolveImage)');
    }
    const labels = objectLabels(d);
    const containerSpec: any = {
      Image: image.pinned,
      Labels: labels,
      Env: envList(d.env),
      Mounts: d.volumes.map((v) =>
        v.type === 'volume'
          ? { Type: 'volume', Source: v.source, Target: v.target, ReadOnly: !!v.readOnly, VolumeOptions: { Labels: { [LABELS.volume]: 'true', ...(v.labels ?? {}) } } }
          : { Type: 'bind', Source: v.source, Target: v.target, ReadOnly: !!v.readOnly },
      ),
      CapabilityDrop: d.hardening.capDrop.length ? d.hardening.capDrop : undefined,
      CapabilityAdd: d.hardening.capAdd?.length ? d.hardening.capAdd : undefined,
      // Honoured from API 1.46 (Docker 27) on; Docker 20.10 (API 1.41) drops the field silently.
      Privileges: { NoNewPrivileges: d.hardening.noNewPrivileges },
      ReadOnly: d.hardening.readOnlyRootfs || undefined,
      Hostname: d.networkMode === 'host' ? undefined : d.dockerName,
      // Signals reach the server (PID 1 ignores SIGTERM by default) and zombies are reaped.
      Init: true,
    };
    if (d.entrypoint) containerSpec.Command = d.entrypoint;
    if (d.command.length) containerSpec.Args = d.command;
    if (d.workdir) containerSpec.Dir = d.workdir;
    if (d.user) containerSpec.User = d.user;
    if (d.groups?.length) containerSpec.Groups = d.groups;

    const limits: any = {};
    if (d.resources.nanoCpus) limits.NanoCPUs = d.resources.nanoCpus;
    if (d.resources.memoryBytes) limits.MemoryBytes = d.resources.memoryBytes;
    if (d.hardening.pidsLimit) limits.Pids = d.hardening.pidsLimit;

    const networks =
      d.networkMode === 'host' ? [{ Target: 'host' }] : d.network ? [{ Target: d.network, Aliases: [d.dockerName] }] : undefined;
    return {
      Name: d.dockerName,
      Labels: labels,
      TaskTemplate: {
        ContainerSpec: containerSpec,
        Resources: { Limits: limits },
        // A crash-looping server stops being restarted after a few attempts, so its failed task
        // (with Docker's error) stays the newest one and observe can report it.
        RestartPolicy: { Condition: 'on-failure', Delay: 2e9, MaxAttempts: 5, Window: 120e9 },
        Placement: d.constraints?.length ? { Constraints: d.constraints } : {},
        Networks: networks,
      },
      Mode: { Replicated: { Replicas: d.stopped ? 0 : 1 } },
      // No PublishedPort: Docker picks a free one on the node; the mode=host port binds on the
      // daemon's default address (dockerd --ip), since Swarm's PortConfig has no host IP field.
      // dnsrr: the service name resolves straight to the task on the overlay network. A VIP needs
      // IPVS in the kernel, which hosts like this one (and the ingress mesh) may lack.
      EndpointSpec:
        d.networkMode === 'host'
          ? { Mode: 'dnsrr' }
          : { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: d.port, PublishMode: 'host' }] },
    };
  }

  /**
   * Per-uid reads are batched (issue 7, P2): while Swarm tasks are pending nothing announces their
   * progress, so every server being spawned is re-read, and a burst of 20 made ~100 service lists
   * plus ~120 task lists, each a store walk in the manager that also slows its scheduling. Callers
   * that arrive while a read is in flight (or within FETCH_SPACING_MS of the last one) share ONE
   * next read (one service list + one task list for all of them), which halved those lists; that
   * read begins after each of them asked, so its answer is as fresh as a read of their own.
   */
  private fetchQueue = new Map<string, { resolve: (v: ObservedServer[]) => void; reject: (e: unknown) => void }[]>();
  private fetching = false;
  private lastFetchAt = 0;

  protected fetchUid(uid: string): Promise<ObservedServer[]> {
    return new Promise((resolve, reject) => {
      const waiting = this.fetchQueue.get(uid);
      if (waiting) waiting.push({ resolve, reject });
      else this.fetchQueue.set(uid, [{ resolve, reject }]);
      if (!this.fetching) {
        this.fetching = true;
        // Callers of the same tick join this read.
        queueMicrotask(() => void this.drainFetches());
      }
    });
  }

  private async drainFetches(): Promise<void> {
    try {
      while (this.fetchQueue.size) {
        // Reads start at most every FETCH_SPACING_MS, so a burst of polls shares one.
        const spacing = this.fetchQueue.size > FETCH_BURST ? FETCH_SPACING_BURST_MS : FETCH_SPACING_MS;
        const wait = this.lastFetchAt + spacing - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        this.lastFetchAt = Date.now();
        const batch = this.fetchQueue;
        this.fetchQueue = new Map();
        const settle = (uid: string, f: (w: { resolve: (v: ObservedServer[]) => void; reject: (e: unknown) => void }) => void) => {
          for (const w of batch.get(uid) ?? []) f(w);
        };
        try {
          const got = await this.fetchUids([...batch.keys()]);
          for (const uid of batch.keys()) {
            const servers = got.get(uid) ?? [];
            // Each caller gets its own array: the cache keeps and copies what it is handed.
            settle(uid, (w) => w.resolve([...servers]));
          }
        } catch (err) {
          for (const uid of batch.keys()) settle(uid, (w) => w.reject(err));
        }
      }
    } finally {
      this.fetching = false;
    }
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
  protected async listAll(): Promise<ObservedServer[]> {
    const [services, tasks] = await Promise.all([this.listServices(labelFilter(MANAGED_FILTER)), this.listTasks({ label: [MANAGED_FILTER] })]);
    const seen = new Set<string>();
    for (const ts of tasks.values()) for (const t of ts) if (t.Status?.ContainerStatus?.ContainerID) seen.add(t.Status.ContainerStatus.ContainerID);
    for (const key of this.boundIps.keys()) if (!seen.has(key.split('/')[0])) this.boundIps.delete(key);
    await this.learnBoundIps(services, tasks);
    return Promise.all(services.map((s) => this.observeService(s, tasks.get(s.ID) ?? [])));
  }

  /**
   * Where the running task containers on this node publish their ports, from ONE container list
   * (instead of an inspect per container), for those not known yet.
   */
  private async learnBoundIps(services: any[], tasks: Map<string, any[]>): Promise<void> {
    const self = await this.localNodeId();
    if (!self) return;
    let unknown = false;
    for (const s of services) {
      const port = Number(s.Spec?.Labels?.[LABELS.port] ?? 0);
      for (const t of tasks.get(s.ID) ?? []) {
        const cid = t.Status?.ContainerStatus?.ContainerID;
        if (cid && t.NodeID === self && t.Status?.State === 'running' && !this.boundIps.has(`${cid}/${port}`)) unknown = true;
      }
    }
    if (!unknown) return;
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ filters: JSON.stringify({ label: [MANAGED_FILTER, 'com.docker.swarm.task.id'], status: ['running'] }) });
    } catch {
      return; // observeService falls back to inspecting the container
    }
    for (const c of list) {
      for (const p of c.Ports ?? []) {
        if (p.Type !== 'tcp' || !p.PublicPort) continue;
        const key = `${c.Id}/${p.PrivatePort}`;
        // IPv4 first, like inspect's first binding.
        if (this.boundIps.has(key) && p.IP?.includes(':')) continue;
        this.boundIps.set(key, p.IP ? p.IP : '0.0.0.0');
      }
    }
  }

  /** Tasks by service ID (a task list filter on label matches the service's labels). */
  private async listTasks(filters: Record<string, string[]>): Promise<Map<string, any[]>> {
    let list: any[];
    try {
      list = (await this.docker.listTasks({ filters: JSON.stringify(filters) } as object)) as any[];
    } catch (err) {
      throw wrapDockerError('docker service ps', err, swarmHint(err));
    }
    const by = new Map<string, any[]>();
    for (const t of list) {
      const l = by.get(t.ServiceID);
      if (l) l.push(t);
      else by.set(t.ServiceID, [t]);
    }
    return by;
  }

  protected override settled(o: ObservedServer): boolean {
    return this.settledObs.has(o);
  }

  private async listServices(filters: string): Promise<any[]> {
    try {
      const list = (await this.docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as any[];
      for (const s of list) if (s.Spec?.Labels?.[LABELS.uid]) this.serviceUids.set(s.ID, s.Spec.Labels[LABELS.uid]);
      return list;
    } catch (err) {
      throw wrapDockerError('docker service ls', err, swarmHint(err));
    }
  }

  private nodeName(id: string | undefined): Promise<string | undefined> {
    if (!id) return Promise.resolve(undefined);
    let p = this.nodeNames.get(id);
    if (!p) {
      // The promise is kept, so observing many tasks at once asks Docker once per node.
      p = this.docker.getNode(id).inspect().then(
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

  private localNodeId(): Promise<string | undefined> {
    this.selfNodeId ??= this.docker.info().then(
      (info: any) => String(info?.Swarm?.NodeID ?? '') || undefined,
      () => {
        this.selfNodeId = undefined;
        return undefined;
      },
    );
    return this.selfNodeId;
  }

  /** Observe service `s` from its tasks (read here when not given). */
  async observeService(s: any, given?: any[]): Promise<ObservedServer> {
    const spec = s.Spec ?? {};
    const labels: Record<string, string> = spec.Labels ?? {};
    const replicas: number = spec.Mode?.Replicated?.Replicas ?? 1;
    const port = Number(labels[LABELS.port] ?? 0);
    // Swarm stores network IDs, not names, so host networking is recognised by "nothing published".
    const hostNetwork = !(spec.EndpointSpec?.Ports?.length > 0);
    const obs: ObservedServer = {
      kind: 'service',
      id: s.ID,
      name: spec.Name,
      labels,
      specHash: labels[LABELS.specHash],
      state: 'pending',
      image: spec.TaskTemplate?.ContainerSpec?.Image,
      replicas,
      createdAt: s.CreatedAt,
    };
    const tasks: any[] = given ? [...given] : ((await this.listTasks({ service: [s.ID] })).get(s.ID) ?? []);
    // Newest task first; Swarm keeps old ones (task history) next to the current one.
    tasks.sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt) || (b.Version?.Index ?? 0) - (a.Version?.Index ?? 0));
    const wanted = tasks.filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready' || t.DesiredState === 'accepted');
    const task = (replicas === 0 ? undefined : wanted[0]) ?? tasks[0];
    if (replicas === 0) {
      obs.state = 'stopped';
      const live = tasks.find((t) => t.Status?.State === 'running');
      obs.message = live ? 'scaled to 0; task shutting down' : 'scaled to 0';
      // Until its task has really stopped the server still runs: callers (the hub) must not
      // treat it as stopped and re-attach to the old process. The reconciler shows "Stopping".
      if (live) obs.state = 'running';
      // A scaled-down service changes only by a service update (an event); a task still shutting
      // down announces its container's death only when it ran on this node.
      if (!live || (live.NodeID && live.NodeID === (await this.localNodeId()))) this.settledObs.add(obs);
      return obs;
    }
    if (!task) {
      obs.message = 'no task scheduled yet';
      return obs;
    }
    const st = task.Status ?? {};
    const state: string = st.State ?? 'pending';
    obs.state = TASK_STATE[state] ?? (task.DesiredState === 'running' ? 'pending' : 'failed');
    if (['complete', 'shutdown', 'orphaned', 'remove'].includes(state) && wanted.length === 0) {
      obs.state = 'failed';
    }
    obs.message = [state, st.Err || st.Message].filter(Boolean).join(': ');
    // While Swarm waits to retry a crashed task, the newest task is just "new"/"pending"; the
    // failure that caused it is the useful news (like a crash-loop back-off), so report that.
    if (['pending', 'preparing', 'starting'].includes(obs.state)) {
      // Only failures of the same task spec count: after an update that fixed the cause, an old
      // failure says nothing about the new task.
      const sameSpec = JSON.stringify(task.Spec ?? {});
      const prev = tasks.find(
        (t) => t !== task && t.Slot === task.Slot && (t.Status?.State === 'failed' || t.Status?.State === 'rejected') && JSON.stringify(t.Spec ?? {}) === sameSpec,
      );
      if (prev) {
        obs.state = prev.Status.State === 'rejected' ? 'rejected' : 'failed';
        const attempts = tasks.filter((t) => t.Slot === task.Slot).length;
        obs.message = `${prev.Status.State}: ${prev.Status.Err || prev.Status.Message}; Swarm retries (task ${attempts}, now ${state})`;
      }
    }
    obs.node = await this.nodeName(task.NodeID);
    obs.containerId = st.ContainerStatus?.ContainerID || undefined;
    if (hostNetwork) {
      obs.hostPort = port || undefined;
      obs.hostIp = undefined;
    } else {
      const p = (st.PortStatus?.Ports ?? []).find((x: any) => x.TargetPort === port) ?? st.PortStatus?.Ports?.[0];
      if (p?.PublishedPort) obs.hostPort = p.PublishedPort;
      if (obs.hostPort && obs.containerId && task.NodeID && task.NodeID === (await this.localNodeId())) {
        obs.hostIp = await this.boundHostIp(obs.containerId, port);
      }
      obs.hostIp ??= labels[HOST_IP_LABEL] || undefined;
    }
    // A running task on this node changes only with a container event we see; anything else
    // (scheduling, retries, tasks on other nodes) moves without one.
    if (obs.state === 'running' && task.NodeID && task.NodeID === (await this.localNodeId())) this.settledObs.add(obs);
    return obs;
  }

  /** Where the published port really listens: Swarm cannot choose it, dockerd's --ip does. */
  private async boundHostIp(containerId: string, port: number): Promise<string | undefined> {
    const key = `${containerId}/${port}`;
    const known = this.boundIps.get(key);
    if (known !== undefined) return known;
    try {
      const c: any = await this.docker.getContainer(containerId).inspect();
      const b = c?.NetworkSettings?.Ports?.[`${port}/tcp`]?.[0];
      if (!b) return undefined;
      const ip = b.HostIp === '' ? '0.0.0.0' : String(b.HostIp);
      this.boundIps.set(key, ip);
      return ip;
    } catch {
      return undefined;
    }
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
  private async updateService(id: string, mutate: (spec: any) => any, call: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.inspectService(id);
      if (!cur) throw new BackendError(`${call}: service ${id} disappeared`, 'Conflict', call, 'it was removed meanwhile; the next reconcile recreates it');
      const spec = mutate(cur.Spec);
      try {
        await this.docker.getService(id).update({ ...spec, version: cur.Version.Index } as any);
        return;
      } catch (err) {
        if (attempt === 0 && /out of sequence/i.test(String((err as any)?.json?.message ?? (err as Error).message))) continue;
        throw wrapDockerError(call, err, swarmHint(err));
      }
    }
  }

  protected async applyNow(d: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult> {
    if (!current) {
      const found = await this.find(d.uid);
      current = found[0];
    }
    if (!current) {
      await this.ensureVolumes(d);
      const spec = SwarmBackend.serviceSpec(d, image);
      let id: string;
      try {
        const res: any = await this.docker.createService(spec);
        id = res.id ?? res.ID;
      } catch (err) {
        const s = statusOf(err);
        throw wrapDockerError(
          `docker service create ${d.dockerName}`,
          err,
          s === 409 ? `a service named ${d.dockerName} exists but is not labelled for this resource: rename or remove it` : swarmHint(err),
          s === 409 ? 'Conflict' : undefined,
        );
      }
      this.serviceUids.set(id, d.uid);
      return { action: 'created', observed: await this.observeById(id) };
    }
    const wantReplicas = d.stopped ? 0 : 1;
    if (current.specHash !== d.specHash) {
      await this.ensureVolumes(d);
      const spec = SwarmBackend.serviceSpec(d, image);
      // Keep the service's name: Swarm cannot rename a service in place.
      await this.updateService(current.id, () => ({ ...spec, Name: current!.name }), `docker service update ${current.name}`);
      return { action: 'updated', observed: await this.observeById(current.id) };
    }
    const haveReplicas = current.replicas ?? 1;
    if (haveReplicas !== wantReplicas) {
      await this.updateService(
        current.id,
        (spec) => ({ ...spec, Mode: { Replicated: { Replicas: wantReplicas } } }),
        `docker service scale ${current.name}=${wantReplicas}`,
      );
      return { action: wantReplicas ? 'started' : 'stopped', observed: await this.observeById(current.id) };
    }
    return { action: 'unchanged', observed: current };
  }

  private async observeById(id: string): Promise<ObservedServer> {
    const s = await this.inspectService(id);
    if (!s) throw new BackendError(`service ${id} disappeared right after it was written`, 'Conflict', `docker service inspect ${id}`);
    return this.observeService(s);
  }

  protected async removeNow(observed: ObservedServer): Promise<void> {
    try {
      await this.docker.getService(observed.id).remove();
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw wrapDockerError(`docker service rm ${observed.name}`, err);
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
    await Promise.all(history.map((c) => this.docker.getContainer(c.Id).remove().catch(() => undefined)));
    return super.removeImage(ref);
  }

  protected eventFilters(): Record<string, string[]> {
    // No label filter: Swarm 20.10's service events carry only the service name, so a label
    // filter would drop them all. Task containers carry the ContainerSpec labels and are
    // filtered client-side.
    return { type: ['service', 'container'] };
  }

  protected async mapEvent(raw: any): Promise<BackendEvent | undefined> {
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
    return { uid, name, type: 'service', action: String(raw.Action), time: raw.timeNano ? Math.floor(raw.timeNano / 1e6) : raw.time * 1000 };
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

function swarmHint(err: unknown): string | undefined {
  return hintFromDaemon(err);
}
