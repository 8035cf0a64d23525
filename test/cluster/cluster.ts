/**
 * A real multi-node Docker Swarm on one machine, for tests: N dockerd "nodes", each in its own
 * network, mount and UTS namespace, joined by a bridge that lives in a namespace of its own (the
 * "fabric", which also runs the registry), plus a "hub" namespace on the same bridge from which
 * tests reach the nodes. Nothing is added to the machine's own network namespace and the machine's
 * dockerd is only ever read from (to `docker save` an image for pushImage).
 *
 *   fabric netns  br0 10.250.0.1 ── registry :5000
 *     ├─ v-hub   ── hub netns    eth0 10.250.0.2   (ns-agent: tunnels for the test process)
 *     ├─ v-node1 ── node1 netns  eth0 10.250.0.11  dockerd (Swarm manager)
 *     ├─ v-node2 ── node2 netns  eth0 10.250.0.12  dockerd (worker)
 *     └─ …
 *
 * No namespace has a default route: a node can reach the other nodes, the registry and the hub,
 * and nothing else (so no pull can ever reach Docker Hub).
 */
import Docker from 'dockerode';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupMountCommands, cgroupParentFor, containerCgroupDirs, hostCgroupMounts } from './cgroups.js';
import { run, runCapture, type RunResult } from '../../bench/lib/exec.js';
import { spawnDetached } from './detached.js';
import { HubNamespace } from './hub.js';
import { commOf, isRunning, killAndWait, pidsInCgroupTree, pidsInNamespace, processRef, rssBytes, type ProcessRef } from './procs.js';
import { pushImage as pushToRegistry, type PushOptions, type PushedImage } from './push.js';
import {
  checkName,
  clusterDir,
  listClusterNames,
  netnsInode,
  nsName,
  readState,
  stateRoot,
  STATE_VERSION,
  writeState,
  type ClusterState,
  type NodeState,
} from './state.js';
import { destroy, leftoversOf, pruneStaleClusters, removeOrphanNamespaces } from './teardown.js';
import { waitUntil } from './wait.js';

export { destroyCluster, leftoversOf, pruneStaleClusters } from './teardown.js';
export { HubNamespace } from './hub.js';

export interface ClusterOptions {
  /** Names the namespaces (nbsc-NAME-…), hostnames (NAME-node1 …) and the state folder. Default "dev". */
  name?: string;
  /** Number of nodes: node1 is the manager, the others workers. Default 3. */
  nodes?: number;
  /** Swarm dispatcher heartbeat; a node is declared down after a few missed beats. Default 5 (Docker's). */
  heartbeatSeconds?: number;
  /** A host folder every node sees at the same path (shared storage); default DIR/shared, removed on stop. */
  sharedDir?: string;
  /** First three octets of the cluster's /24. Default "10.250.0". */
  subnet?: string;
  /** Folder for state, data roots and logs; default $NBSWARM_CLUSTER_ROOT or /var/tmp/nbswarm-cluster. */
  root?: string;
  /**
   * false (default): this process owns the cluster, and it is stale — removed by the next start —
   * once this process has exited. true: it stays until `cluster:down` (the CLI).
   */
  persistent?: boolean;
  /** Replace a persistent cluster of the same name instead of refusing to start. */
  replace?: boolean;
  /** Start node daemons with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (they then never pull, not even from the registry). */
  preferOfflineImage?: boolean;
  /** Progress lines (the CLI prints them). */
  log?: (line: string) => void;
}

export interface ClusterTimings {
  namespacesMs: number;
  daemonsMs: number;
  swarmMs: number;
  totalMs: number;
}

export interface StopReport {
  ms: number;
  killedProcesses: number;
}

export interface RssReport {
  nodes: { name: string; daemonsBytes: number; containersBytes: number; containers: number }[];
  registryBytes: number;
  hubBytes: number;
  totalBytes: number;
}

export type Availability = 'active' | 'pause' | 'drain';
export type NodeRef = ClusterNode | number;

const SWARM_PORT = 2377;
/** Swarm overlay networks; the nodes' local networks use 10.(100+i).0.0/16. Neither overlaps the cluster /24. */
const SWARM_ADDRESS_POOL = '10.240.0.0/16';
const MAX_NODES = 20;
/** Starts of a node's dockerd that exited because its containerd was slow to answer, before giving up. */
const DOCKERD_START_ATTEMPTS = 3;
const AGENT_SCRIPT = fileURLToPath(new URL('./ns-agent.js', import.meta.url));

/**
 * Mounts of namespace files (nsfs) copied from the host keep those namespaces — and the veths of
 * the machine's containers — alive for as long as our mount namespace lives: drop them first.
 */
const DROP_NSFS_MOUNTS = `awk '/ - nsfs /{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done`;

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A dockerd exited while starting; `output` is what this start wrote to its log. */
class DockerdExited extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('the multi-node harness needs root (network namespaces, mounts, dockerd)');
  const missing = [
    ['ip', 'iproute2'],
    ['nsenter', 'util-linux'],
    ['unshare', 'util-linux'],
    ['dockerd', 'docker.io'],
    ['docker-registry', 'docker-registry'],
    ['iptables', 'iptables'],
  ].filter(([bin]) => !(process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(join(d, bin))));
  if (missing.length > 0) {
    throw new Error(
      `the multi-node harness needs ${missing.map(([b, p]) => `${b} (apt package ${p})`).join(', ')}: apt-get install -y ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
    );
  }
}

/** Start a cluster; a stale one left by a killed run (of any name) is removed first. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  checkPrerequisites();
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const root = stateRoot(opts.root);
  const name = checkName(opts.name ?? 'dev');
  const count = opts.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new Error(`nodes must be an integer from 1 to ${MAX_NODES}, got ${count}`);
  const heartbeatSeconds = opts.heartbeatSeconds ?? 5;
  if (!(heartbeatSeconds >= 0.5 && heartbeatSeconds <= 3600)) throw new Error(`heartbeatSeconds must be between 0.5 and 3600, got ${heartbeatSeconds}`);
  const subnet = opts.subnet ?? '10.250.0';
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(subnet) || subnet.split('.').some((o) => Number(o) > 255))
    throw new Error(`subnet must be three octets like "10.250.0", got ${subnet}`);

  await pruneStaleClusters(root, log);
  const existing = readState(root, name);
  if (existing) {
    if (existing.owner && isRunning(existing.owner)) {
      throw new Error(`cluster ${name} is in use by process ${existing.owner.pid}; pick another name`);
    }
    if (!existing.owner && !opts.replace) {
      throw new Error(
        `cluster ${name} is already up (since ${existing.createdAt}); use it (NBSWARM_CLUSTER=${name}), or replace it: npm run cluster:down -- --name ${name}`,
      );
    }
    log(`removing the previous cluster ${name}`);
    await destroy(existing, log);
  }
  await removeOrphanNamespaces(name, log);

  const dir = clusterDir(root, name);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const sharedDir = opts.sharedDir ?? join(dir, 'shared');
  const cgroupMounts = hostCgroupMounts();
  const registryIp = `${subnet}.1`;
  const nodes: NodeState[] = Array.from({ length: count }, (_, i) => {
    const nodeName = `node${i + 1}`;
    const nodeDir = join(dir, nodeName);
    return {
      index: i,
      name: nodeName,
      hostname: `${name}-${nodeName}`,
      ip: `${subnet}.${11 + i}`,
      role: i === 0 ? 'manager' : 'worker',
      netns: nsName(name, nodeName),
      link: `v-${nodeName}`,
      dir: nodeDir,
      socketPath: join(nodeDir, 'docker.sock'),
      configPath: join(nodeDir, 'daemon.json'),
      cgroupParent: cgroupParentFor(nsName(name, nodeName), cgroupMounts),
      cgroupDirs: [],
    };
  });
  const st: ClusterState = {
    version: STATE_VERSION,
    name,
    dir,
    // Owned by this process until it is fully up, even when persistent: a start killed half-way is stale.
    owner: processRef(process.pid) ?? null,
    createdAt: new Date().toISOString(),
    subnet,
    heartbeatSeconds,
    preferOfflineImage: !!opts.preferOfflineImage,
    fabric: { netns: nsName(name, 'fabric'), bridge: 'br0', ip: registryIp },
    registry: { address: `${registryIp}:5000` },
    hub: { netns: nsName(name, 'hub'), ip: `${subnet}.2`, link: 'v-hub', agentSocket: join(dir, 'hub', 'agent.sock') },
    sharedDir,
    cgroupMounts,
    nodes,
  };
  // The state file exists before anything it describes, so a crash at any later point is recoverable.
  writeState(st);
  const cluster = new Cluster(st, log);
  try {
    await cluster.build(t0);
  } catch (err) {
    log(`start failed, cleaning up: ${(err as Error).message}`);
    await destroy(st, log).catch((e: Error) => log(`cleanup after the failed start: ${e.message}`));
    throw err;
  }
  if (opts.persistent) {
    st.owner = null;
    writeState(st);
  }
  return cluster;
}

/** A handle on a cluster started by another process (the CLI), from its state file. */
export function attachCluster(name: string, root?: string): Cluster {
  const st = readState(stateRoot(root), checkName(name));
  if (!st) throw new Error(`no cluster named ${name} under ${stateRoot(root)}; start one with npm run cluster:up`);
  return new Cluster(st, () => undefined);
}

export function listClusters(root?: string): ClusterState[] {
  const r = stateRoot(root);
  return listClusterNames(r).flatMap((n) => {
    try {
      const st = readState(r, n);
      return st ? [st] : [];
    } catch {
      return [];
    }
  });
}

export class ClusterNode {
  readonly docker: Docker;

  constructor(
    private readonly cluster: Cluster,
    readonly index: number,
  ) {
    this.docker = new Docker({ socketPath: this.state.socketPath });
  }

  private get state(): NodeState {
    return this.cluster.state.nodes[this.index];
  }
  /** node1, node2, … */
  get name(): string {
    return this.state.name;
  }
  /** Also the Swarm node's hostname. */
  get hostname(): string {
    return this.state.hostname;
  }
  get ip(): string {
    return this.state.ip;
  }
  get role(): 'manager' | 'worker' {
    return this.state.role;
  }
  get netns(): string {
    return this.state.netns;
  }
  get socketPath(): string {
    return this.state.socketPath;
  }
  /** DOCKER_HOST value for this node's daemon. */
  get dockerHost(): string {
    return `unix://${this.state.socketPath}`;
  }
  /** PID of the node's dockerd while it runs. */
  get pid(): number | undefined {
    const ref = this.state.dockerd;
    return ref && isRunning(ref) ? ref.pid : undefined;
  }
  /** Folder with the node's data root, logs and config. */
  get dir(): string {
    return this.state.dir;
  }
  get logFile(): string {
    return join(this.state.dir, 'dockerd.log');
  }
}

export class Cluster {
  readonly nodes: ClusterNode[];
  readonly hub: HubNamespace;
  /** Set by startCluster (not by attachCluster). */
  timings?: ClusterTimings;
  private readonly pushed = new Map<string, PushedImage>();
  private stopped = false;

  /** @internal use startCluster or attachCluster */
  constructor(
    /** @internal */ readonly state: ClusterState,
    private readonly log: (line: string) => void,
  ) {
    this.nodes = state.nodes.map((n) => new ClusterNode(this, n.index));
    this.hub = new HubNamespace(this);
  }

  get name(): string {
    return this.state.name;
  }
  get dir(): string {
    return this.state.dir;
  }
  get manager(): ClusterNode {
    return this.nodes[0];
  }
  get workers(): ClusterNode[] {
    return this.nodes.slice(1);
  }
  /** What the operator is pointed at: DOCKER_HOST=unix://…/node1/docker.sock. */
  get dockerHost(): string {
    return this.manager.dockerHost;
  }
  /** host:port of the registry, reachable from every node and the hub namespace (insecure, plain HTTP). */
  get registry(): string {
    return this.state.registry.address;
  }
  /** A folder every node sees at the same path: bind it into services for shared-storage tests. */
  get sharedDir(): string {
    return this.state.sharedDir;
  }
  get heartbeatSeconds(): number {
    return this.state.heartbeatSeconds;
  }

  node(ref: NodeRef): ClusterNode {
    const n = typeof ref === 'number' ? this.nodes[ref] : ref;
    if (!n || this.nodes[n.index] !== n)
      throw new Error(`cluster ${this.name} has no node ${typeof ref === 'number' ? `#${ref}` : ref.name} (nodes are 0…${this.nodes.length - 1})`);
    return n;
  }

  /** @internal */
  requireAnchor(which: 'hub' | 'fabric' | number): ProcessRef {
    const ref = which === 'hub' ? this.state.hub.anchor : which === 'fabric' ? this.state.fabric.anchor : this.state.nodes[which].anchor;
    if (!ref || !isRunning(ref)) {
      const what = typeof which === 'number' ? this.state.nodes[which].name : which;
      throw new Error(
        `cluster ${this.name}: the ${what} namespace holder is not running${typeof which === 'number' ? ' (the node is powered off: restartNode)' : ' (cluster stopped?)'}`,
      );
    }
    return ref;
  }

  private save(): void {
    writeState(this.state);
  }

  // ---- building ----------------------------------------------------------------------------

  /** @internal */
  async build(t0: number): Promise<void> {
    const st = this.state;
    for (const d of [join(st.dir, 'fabric', 'registry'), join(st.dir, 'hub'), st.sharedDir]) mkdirSync(d, { recursive: true });
    const tNs = Date.now();
    await this.createNamespaces();
    const namespacesMs = Date.now() - tNs;
    this.log(`namespaces ready (${namespacesMs} ms)`);

    const tDaemons = Date.now();
    const [fabric, hub] = await Promise.all([
      this.startAnchor(st.fabric.netns, `${st.name}-fabric`, [], join(st.dir, 'fabric', 'anchor.log')),
      this.startAnchor(st.hub.netns, `${st.name}-hub`, [], join(st.dir, 'hub', 'anchor.log')),
    ]);
    st.fabric.anchor = fabric.ref;
    st.hub.anchor = hub.ref;
    this.startRegistry();
    this.startAgent();
    this.save();
    await Promise.all([
      ...this.nodes.map((n) => this.bootNode(n.index)),
      this.hub.waitForHttp(`http://${this.registry}/v2/`, { timeoutMs: 20000, everyMs: 50 }).catch((err: Error) => {
        throw new Error(`the registry did not answer: ${err.message}\n${logTail(join(st.dir, 'fabric', 'registry.log'))}`);
      }),
    ]);
    const daemonsMs = Date.now() - tDaemons;
    this.log(`${this.nodes.length} dockerd and the registry answer (${daemonsMs} ms)`);

    const tSwarm = Date.now();
    await this.formSwarm();
    const swarmMs = Date.now() - tSwarm;
    this.log(`swarm formed (${swarmMs} ms)`);
    this.timings = { namespacesMs, daemonsMs, swarmMs, totalMs: Date.now() - t0 };
  }

  /** Three rounds of `ip -batch` (a handful of processes, not one per command). */
  private async createNamespaces(): Promise<void> {
    const st = this.state;
    const f = st.fabric.netns;
    const members = [{ netns: st.hub.netns, link: st.hub.link, ip: st.hub.ip }, ...st.nodes];
    await run('ip', ['-batch', '-'], { input: [f, ...members.map((m) => m.netns)].map((ns) => `netns add ${ns}\n`).join('') });
    st.fabric.netnsInode = netnsInode(f);
    st.hub.netnsInode = netnsInode(st.hub.netns);
    for (const n of st.nodes) n.netnsInode = netnsInode(n.netns);
    this.save();
    // Both ends of every veth are created inside our namespaces: nothing ever appears in the host's.
    const fabric = [
      'link set lo up',
      `link add ${st.fabric.bridge} type bridge`,
      `addr add ${st.fabric.ip}/24 dev ${st.fabric.bridge}`,
      `link set ${st.fabric.bridge} up`,
      ...members.flatMap((m) => [`link add ${m.link} type veth peer name eth0 netns ${m.netns}`, `link set ${m.link} master ${st.fabric.bridge} up`]),
    ];
    await run('ip', ['-n', f, '-batch', '-'], { input: fabric.map((l) => `${l}\n`).join('') });
    await Promise.all(
      members.map((m) =>
        run('ip', ['-n', m.netns, '-batch', '-'], { input: [`addr add ${m.ip}/24 dev eth0`, 'link set eth0 up', 'link set lo up', ''].join('\n') }),
      ),
    );
  }

  /**
   * A `sleep` that owns a mount and UTS namespace inside `netns` (after `setupCommands`), so
   * processes started later with nsenter share them — dockerd restarted after a kill finds the
   * mounts of the containers it left running.
   */
  private async startAnchor(netns: string, hostname: string, setupCommands: string[], logFile: string): Promise<{ ref: ProcessRef; mntns: number }> {
    const script = ['set -e', `hostname ${hostname}`, DROP_NSFS_MOUNTS, ...setupCommands, 'exec sleep infinity'].join('\n');
    const child = spawnDetached('ip', ['netns', 'exec', netns, 'unshare', '--uts', '--', 'sh', '-c', script], logFile);
    let exited: number | null = null;
    child.once('exit', (code) => (exited = code ?? -1));
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start the namespace holder of ${netns}`);
    const ref = await waitUntil(
      `the namespace holder of ${netns} to finish its set-up`,
      () => {
        if (exited !== null) throw new Error(`the set-up of ${netns} failed (exit ${exited}): ${logTail(logFile)}`);
        return commOf(pid) === 'sleep' ? processRef(pid) : undefined;
      },
      10000,
      10,
    );
    const mntns = Number(/mnt:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/mnt`))?.[1]);
    return { ref, mntns };
  }

  private startRegistry(): void {
    const st = this.state;
    const cfg = join(st.dir, 'fabric', 'registry.yml');
    writeFileSync(
      cfg,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(st.dir, 'fabric', 'registry')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: ${st.registry.address}`,
        '',
      ].join('\n'),
    );
    const anchor = this.requireAnchor('fabric');
    const child = spawnDetached(
      'nsenter',
      ['-t', String(anchor.pid), '-m', '-u', '-n', '--', 'docker-registry', 'serve', cfg],
      join(st.dir, 'fabric', 'registry.log'),
    );
    st.registry.process = child.pid !== undefined ? processRef(child.pid) : undefined;
  }

  private startAgent(): void {
    const st = this.state;
    const anchor = this.requireAnchor('hub');
    const child = spawnDetached(
      'nsenter',
      ['-t', String(anchor.pid), '-m', '-u', '-n', '--', process.execPath, AGENT_SCRIPT, st.hub.agentSocket],
      join(st.dir, 'hub', 'agent.log'),
    );
    st.hub.agent = child.pid !== undefined ? processRef(child.pid) : undefined;
  }

  private daemonConfig(n: NodeState): object {
    const i = n.index + 1;
    return {
      'data-root': join(n.dir, 'data'),
      'exec-root': join(n.dir, 'run'),
      pidfile: join(n.dir, 'docker.pid'),
      // Also the standard path inside the node's own /run (a tmpfs of its mount namespace): what a
      // container on the node mounts to reach its daemon, as on a real host (builder jobs do).
      hosts: [`unix://${n.socketPath}`, 'unix:///var/run/docker.sock'],
      'cgroup-parent': n.cgroupParent,
      bip: `10.${100 + i}.0.1/24`,
      'default-address-pools': [{ base: `10.${100 + i}.128.0/17`, size: 24 }],
      'insecure-registries': [this.state.registry.address],
      'log-level': 'warn',
    };
  }

  /** Create the node's namespace holder when needed (first boot, or after powerOffNode) and start dockerd. */
  private async bootNode(index: number): Promise<void> {
    const n = this.state.nodes[index];
    mkdirSync(join(n.dir, 'etc-docker'), { recursive: true });
    if (!n.anchor || !isRunning(n.anchor)) {
      const setup = [
        ...cgroupMountCommands(this.state.cgroupMounts),
        // The node's own /run: shim sockets (/run/containerd/s) and libnetwork's key sockets
        // (/run/docker/libnetwork) would otherwise share the machine's folders.
        'mount -t tmpfs -o mode=755 nbsc-run /run',
        `if [ -d /etc/docker ]; then mount --bind ${join(n.dir, 'etc-docker')} /etc/docker; fi`,
      ];
      const { ref, mntns } = await this.startAnchor(n.netns, n.hostname, setup, join(n.dir, 'anchor.log'));
      n.anchor = ref;
      n.mntnsInode = mntns;
      if (n.cgroupDirs.length === 0) n.cgroupDirs = containerCgroupDirs(ref.pid, n.cgroupParent, this.state.cgroupMounts);
      this.save();
    }
    writeFileSync(n.configPath, JSON.stringify(this.daemonConfig(n), null, 2));
    // dockerd gives the containerd it starts a fixed 15 s to answer, then exits. Restoring a node's
    // tasks on a loaded machine can take longer (it did in CI, with 20 containers on the node).
    // systemd's docker.service restarts dockerd after such an exit; so does the harness, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startDockerd(index);
        return;
      } catch (err) {
        if (attempt >= DOCKERD_START_ATTEMPTS || !(err instanceof DockerdExited) || !/timeout waiting for containerd to start/.test(err.output)) throw err;
        this.log(`${n.name}: dockerd exited before containerd answered (attempt ${attempt} of ${DOCKERD_START_ATTEMPTS}); starting it again`);
      }
    }
  }

  /** Start the node's dockerd once and wait until it answers, or fail with its log's tail. */
  private async startDockerd(index: number): Promise<void> {
    const n = this.state.nodes[index];
    const anchor = this.requireAnchor(index);
    await this.clearPreviousDaemons(n);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
    for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_SERVICE_PREFER_OFFLINE_IMAGE']) delete env[k];
    if (this.state.preferOfflineImage) env.DOCKER_SERVICE_PREFER_OFFLINE_IMAGE = '1';
    const logFile = join(n.dir, 'dockerd.log');
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const child = spawnDetached('nsenter', ['-t', String(anchor.pid), '-m', '-u', '-n', '--', 'dockerd', '--config-file', n.configPath], logFile, env);
    n.dockerd = child.pid !== undefined ? processRef(child.pid) : undefined;
    this.save();
    // An exit ends the wait at once: polling on would only wait out the timeout.
    let exitCode: number | null | undefined;
    child.once('exit', (code) => (exitCode = code));
    const docker = this.nodes[index].docker;
    const tail = () => `\n--- ${logFile}:\n${logTail(logFile)}`;
    try {
      await waitUntil(`dockerd of ${n.name} to answer on ${n.socketPath}`, async () => exitCode !== undefined || (await docker.ping(), true), 30000);
    } catch (err) {
      throw new Error(`${(err as Error).message}${tail()}`);
    }
    if (exitCode !== undefined) throw new DockerdExited(`dockerd of ${n.name} exited with ${exitCode ?? 'a signal'}${tail()}`, readFrom(logFile, logStart));
  }

  /**
   * Before a dockerd starts, none of the node runs (restartNode kills a running one first). Its
   * containerd dies with it (parent-death signal), but under load it can still be dying when the
   * next dockerd reads its pid file: that dockerd then waits for it, and a zombie answers to
   * kill(pid, 0) like a live process. A leftover in the node is killed and waited for; a pid file
   * naming anything else (a reused PID) is simply stale. Both pid files go.
   */
  private async clearPreviousDaemons(n: NodeState): Promise<void> {
    const inNode = new Set(n.netnsInode !== undefined ? pidsInNamespace('net', n.netnsInode) : []);
    for (const f of [join(n.dir, 'docker.pid'), join(n.dir, 'run', 'containerd', 'containerd.pid')]) {
      if (!existsSync(f)) continue;
      const pid = Number(readFileSync(f, 'utf8').trim());
      if (inNode.has(pid)) {
        const left = await killAndWait([pid]);
        if (left.length) throw new Error(`${n.name}: process ${pid} of ${f} survived SIGKILL; dockerd would wait for it`);
      }
      rmSync(f, { force: true });
    }
  }

  private async formSwarm(): Promise<void> {
    const st = this.state;
    const mgr = this.manager;
    await mgr.docker.swarmInit({
      ListenAddr: `${mgr.ip}:${SWARM_PORT}`,
      AdvertiseAddr: mgr.ip,
      DefaultAddrPool: [SWARM_ADDRESS_POOL],
      SubnetSize: 24,
      Spec: {
        Dispatcher: { HeartbeatPeriod: Math.round(st.heartbeatSeconds * 1e9) },
        Orchestration: { TaskHistoryRetentionLimit: 2 },
      },
    });
    const tokens = ((await mgr.docker.swarmInspect()) as any).JoinTokens as { Worker: string };
    await Promise.all(
      this.workers.map((w) =>
        w.docker.swarmJoin({ ListenAddr: `${w.ip}:${SWARM_PORT}`, AdvertiseAddr: w.ip, RemoteAddrs: [`${mgr.ip}:${SWARM_PORT}`], JoinToken: tokens.Worker }),
      ),
    );
    await Promise.all(this.nodes.map((n) => this.waitForNodeState(n, 'ready', 30000)));
  }

  // ---- Swarm views ---------------------------------------------------------------------------

  /** The Swarm node object of `ref`, as the manager sees it. */
  async swarmNode(ref: NodeRef): Promise<any> {
    const n = this.node(ref);
    const all = (await this.manager.docker.listNodes()) as any[];
    const found = all.find((s) => s?.Description?.Hostname === n.hostname);
    if (!found) throw new Error(`the manager does not list a node with hostname ${n.hostname}`);
    return found;
  }

  /** Wait until the manager reports the node's state ("ready", "down", …). Returns the Swarm node. */
  async waitForNodeState(ref: NodeRef, state: 'ready' | 'down' | 'unknown' | 'disconnected', timeoutMs = 60000): Promise<any> {
    const n = this.node(ref);
    return waitUntil(
      `${n.name} (${n.hostname}) to be ${state} in the manager's view`,
      async () => {
        const s = await this.swarmNode(n);
        return s?.Status?.State === state ? s : undefined;
      },
      timeoutMs,
      100,
    );
  }

  async setAvailability(ref: NodeRef, availability: Availability): Promise<void> {
    const s = await this.swarmNode(ref);
    await this.manager.docker.getNode(s.ID).update({ _query: { version: s.Version.Index }, _body: { ...s.Spec, Availability: availability } });
  }

  drain(ref: NodeRef): Promise<void> {
    return this.setAvailability(ref, 'drain');
  }

  activate(ref: NodeRef): Promise<void> {
    return this.setAvailability(ref, 'active');
  }

  async setNodeLabels(ref: NodeRef, labels: Record<string, string>): Promise<void> {
    const s = await this.swarmNode(ref);
    await this.manager.docker
      .getNode(s.ID)
      .update({ _query: { version: s.Version.Index }, _body: { ...s.Spec, Labels: { ...(s.Spec?.Labels ?? {}), ...labels } } });
  }

  // ---- images --------------------------------------------------------------------------------

  /**
   * Copy an image from the machine's daemon into the registry (through the manager) and return it
   * by digest. The same image with the same options is pushed once per cluster.
   */
  async pushImage(image: string, opts: PushOptions = {}): Promise<PushedImage> {
    const source = opts.source ?? new Docker();
    const id = (
      (await source
        .getImage(image)
        .inspect()
        .catch(() => ({ Id: image }))) as { Id: string }
    ).Id;
    const key = JSON.stringify([id, opts.repository, opts.tag, opts.changes]);
    const cached = this.pushed.get(key);
    if (cached) return cached;
    const pushed = await pushToRegistry(this.manager.docker, this.registry, image, source, opts);
    this.pushed.set(key, pushed);
    return pushed;
  }

  // ---- failures ------------------------------------------------------------------------------

  /** `kill -9` of the node's dockerd (containerd dies with it, by its parent-death signal; containers and their shims keep running). */
  async killNode(ref: NodeRef): Promise<void> {
    const n = this.state.nodes[this.node(ref).index];
    if (!n.dockerd || !isRunning(n.dockerd)) throw new Error(`${n.name}'s dockerd is not running`);
    const left = await killAndWait([n.dockerd.pid]);
    if (left.length) throw new Error(`${n.name}'s dockerd (pid ${n.dockerd.pid}) survived SIGKILL`);
    n.dockerd = undefined;
    this.save();
  }

  /** The node's machine stops: every process of the node (daemons, shims, containers) is killed. */
  async powerOffNode(ref: NodeRef): Promise<void> {
    const n = this.state.nodes[this.node(ref).index];
    const pids = new Set<number>();
    for (const d of n.cgroupDirs) for (const p of pidsInCgroupTree(d)) pids.add(p);
    await killAndWait(pids, 3000);
    if (n.netnsInode !== undefined) for (const p of pidsInNamespace('net', n.netnsInode)) pids.add(p);
    if (n.mntnsInode !== undefined) for (const p of pidsInNamespace('mnt', n.mntnsInode)) pids.add(p);
    const left = await killAndWait(pids);
    if (left.length) throw new Error(`${n.name}: processes ${left.join(' ')} survived SIGKILL`);
    n.dockerd = undefined;
    n.anchor = undefined;
    this.save();
  }

  /**
   * Start the node's dockerd again (after killNode or powerOffNode; a running one is killed first)
   * and, unless told not to, wait until the manager reports the node ready.
   */
  async restartNode(ref: NodeRef, opts: { waitReady?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const node = this.node(ref);
    const n = this.state.nodes[node.index];
    if (n.dockerd && isRunning(n.dockerd)) await this.killNode(node);
    await this.bootNode(node.index);
    if (opts.waitReady === false) return;
    const timeoutMs = opts.timeoutMs ?? 60000;
    if (node.role === 'manager') {
      await waitUntil(`${n.name} to lead the swarm again`, async () => ((await node.docker.info()) as any)?.Swarm?.ControlAvailable === true, timeoutMs, 100);
    }
    if (this.manager.pid !== undefined) await this.waitForNodeState(node, 'ready', timeoutMs);
  }

  /** Unplug the node's cable: its link to the bridge goes down (its processes keep running). */
  async cutLink(ref: NodeRef): Promise<void> {
    const n = this.state.nodes[this.node(ref).index];
    await run('ip', ['-n', this.state.fabric.netns, 'link', 'set', n.link, 'down']);
  }

  async restoreLink(ref: NodeRef): Promise<void> {
    const n = this.state.nodes[this.node(ref).index];
    await run('ip', ['-n', this.state.fabric.netns, 'link', 'set', n.link, 'up']);
  }

  async linkUp(ref: NodeRef): Promise<boolean> {
    const n = this.state.nodes[this.node(ref).index];
    const out = await run('ip', ['-n', this.state.fabric.netns, '-o', 'link', 'show', n.link]);
    return /[<,]UP[,>]/.test(out);
  }

  /** Run a command in the node's namespaces (its network, mounts and hostname), e.g. iptables or ip. */
  nodeExec(ref: NodeRef, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    const anchor = this.requireAnchor(this.node(ref).index);
    return runCapture('nsenter', ['-t', String(anchor.pid), '-m', '-u', '-n', '--', cmd, ...args], opts);
  }

  // ---- accounting and teardown -----------------------------------------------------------------

  /** Resident memory of the cluster's processes: per node its daemons (dockerd, containerd, shims) and its containers. */
  rss(): RssReport {
    const st = this.state;
    const sum = (pids: Iterable<number>) => [...pids].reduce((a, p) => a + rssBytes(p), 0);
    const nodes = st.nodes.map((n) => {
      const containerPids = new Set(n.cgroupDirs.flatMap((d) => pidsInCgroupTree(d)));
      const daemonPids = new Set([
        ...(n.netnsInode !== undefined ? pidsInNamespace('net', n.netnsInode) : []),
        ...(n.mntnsInode !== undefined ? pidsInNamespace('mnt', n.mntnsInode) : []),
      ]);
      for (const p of containerPids) daemonPids.delete(p);
      const base = n.cgroupDirs[0];
      const containers = base ? readdirSafe(base).filter((c) => pidsInCgroupTree(join(base, c)).length > 0).length : 0;
      return { name: n.name, daemonsBytes: sum(daemonPids), containersBytes: sum(containerPids), containers };
    });
    const registryBytes = st.fabric.netnsInode !== undefined ? sum(pidsInNamespace('net', st.fabric.netnsInode)) : 0;
    const hubBytes = st.hub.netnsInode !== undefined ? sum(pidsInNamespace('net', st.hub.netnsInode)) : 0;
    const totalBytes = nodes.reduce((a, n) => a + n.daemonsBytes + n.containersBytes, 0) + registryBytes + hubBytes;
    return { nodes, registryBytes, hubBytes, totalBytes };
  }

  /** What of this cluster still exists (processes, namespaces, mounts, cgroups); empty after stop(). */
  leftovers(): string[] {
    const left = leftoversOf(this.state);
    if (existsSync(this.state.dir)) left.push(`folder ${this.state.dir}`);
    return left;
  }

  /** Remove everything the cluster started or made; throws (listing them) when something is left. */
  async stop(): Promise<StopReport> {
    const t0 = Date.now();
    this.stopped = true;
    const killedProcesses = await destroy(this.state, this.log);
    return { ms: Date.now() - t0, killedProcesses };
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
