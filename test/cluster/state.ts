/**
 * The state file of a cluster: written before anything is created and updated as processes start,
 * so a run killed at any point leaves enough behind for the next start (or `cluster:down`) to
 * remove exactly what it made and nothing else.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupMount } from './cgroups.js';
import { isRunning, type ProcessRef } from './procs.js';

export const STATE_VERSION = 1;

export interface NodeState {
  index: number;
  /** node1, node2, … */
  name: string;
  hostname: string;
  ip: string;
  role: 'manager' | 'worker';
  netns: string;
  netnsInode?: number;
  /** The node's end of its link lives in the node as eth0; this is the other end, on the bridge. */
  link: string;
  dir: string;
  socketPath: string;
  configPath: string;
  cgroupParent: string;
  cgroupDirs: string[];
  /** A `sleep` that holds the node's mount and UTS namespaces, so dockerd can be restarted into them. */
  anchor?: ProcessRef;
  mntnsInode?: number;
  dockerd?: ProcessRef;
}

export interface ClusterState {
  version: number;
  name: string;
  dir: string;
  /** The process whose exit makes this cluster stale; null for clusters kept until `cluster:down`. */
  owner: ProcessRef | null;
  createdAt: string;
  subnet: string;
  heartbeatSeconds: number;
  preferOfflineImage: boolean;
  fabric: { netns: string; netnsInode?: number; bridge: string; ip: string; anchor?: ProcessRef };
  registry: { address: string; process?: ProcessRef };
  hub: { netns: string; netnsInode?: number; ip: string; link: string; agentSocket: string; anchor?: ProcessRef; agent?: ProcessRef };
  sharedDir: string;
  cgroupMounts: CgroupMount[];
  nodes: NodeState[];
}

export const DEFAULT_STATE_ROOT = '/var/tmp/nbswarm-cluster';

export function stateRoot(root?: string): string {
  const r = root ?? process.env.NBSWARM_CLUSTER_ROOT ?? DEFAULT_STATE_ROOT;
  // The root ends up in shell commands and socket paths: keep it plain and short.
  if (!/^\/[A-Za-z0-9_./-]{1,60}$/.test(r) || r.includes('..')) {
    throw new Error(`cluster state root ${JSON.stringify(r)} must be an absolute path of at most 60 plain characters (letters, digits, _ . / -)`);
  }
  return r;
}

/** Names of the cluster's namespaces (and node cgroups): nbsc-NAME-fabric, nbsc-NAME-hub, nbsc-NAME-node1, … */
export function nsName(cluster: string, part: string): string {
  return `nbsc-${cluster}-${part}`;
}

/** Inode of a named network namespace, which identifies it in /proc/PID/ns/net links. */
export function netnsInode(name: string): number {
  return statSync(`/run/netns/${name}`).ino;
}

export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,19}$/;

export function checkName(name: string): string {
  if (!NAME_PATTERN.test(name) || name.endsWith('-')) {
    throw new Error(`cluster name ${JSON.stringify(name)} must be 1-20 characters: a lower-case letter, then letters, digits or "-"`);
  }
  return name;
}

export function clusterDir(root: string, name: string): string {
  return join(root, checkName(name));
}

function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function readState(root: string, name: string): ClusterState | undefined {
  const p = statePath(clusterDir(root, name));
  if (!existsSync(p)) return undefined;
  let st: ClusterState;
  try {
    st = JSON.parse(readFileSync(p, 'utf8')) as ClusterState;
  } catch (err) {
    throw new Error(
      `cluster state ${p} is unreadable (${(err as Error).message}); remove the cluster's namespaces (ip netns list | grep nbsc-${name}-) and that folder by hand`,
    );
  }
  if (st.version !== STATE_VERSION || st.name !== name) {
    throw new Error(`cluster state ${p} has version ${st.version} / name ${st.name}, expected ${STATE_VERSION} / ${name}`);
  }
  return st;
}

/** Atomic: a reader never sees half a file, even when this process is killed mid-write. */
export function writeState(st: ClusterState): void {
  mkdirSync(st.dir, { recursive: true });
  const p = statePath(st.dir);
  writeFileSync(`${p}.tmp`, JSON.stringify(st, null, 2));
  renameSync(`${p}.tmp`, p);
}

export function listClusterNames(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && NAME_PATTERN.test(e.name) && existsSync(statePath(join(root, e.name))))
    .map((e) => e.name);
}

/**
 * A cluster whose owning process has exited (left behind by a killed test run), or a kept one
 * (`cluster:up`) none of whose processes runs any more (killed by hand, or the machine restarted).
 */
export function isStale(st: ClusterState): boolean {
  if (st.owner !== null) return !isRunning(st.owner);
  const recorded = [st.fabric.anchor, st.registry.process, st.hub.anchor, st.hub.agent, ...st.nodes.flatMap((n) => [n.anchor, n.dockerd])].filter(
    (r): r is ProcessRef => r !== undefined,
  );
  return recorded.length > 0 && !recorded.some((r) => isRunning(r));
}

/** Why `isStale(st)` holds, for the log. */
export function staleReason(st: ClusterState): string {
  return st.owner !== null ? `its owner, process ${st.owner.pid}, has exited` : 'none of its processes runs any more';
}
