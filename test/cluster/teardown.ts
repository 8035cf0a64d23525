/**
 * Removing a cluster — by its handle, by name, or as the stale leftover of a killed run — and
 * proving that nothing of it is left.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { findCgroupDirsNamed, removeCgroupTrees } from './cgroups.js';
import { run } from '../../bench/lib/exec.js';
import { commandLine, isRunning, killAndWait, pidsInCgroupTree, pidsInNamespace } from './procs.js';
import { checkName, isStale, listClusterNames, netnsInode, nsName, readState, staleReason, stateRoot, type ClusterState } from './state.js';
import { sleep } from './wait.js';

/** Stop and remove a cluster by name (`cluster:down`); a no-op when there is none. */
export async function destroyCluster(name: string, root?: string, log: (l: string) => void = () => undefined): Promise<boolean> {
  const st = readState(stateRoot(root), checkName(name));
  if (!st) {
    await removeOrphanNamespaces(name, log);
    return false;
  }
  await destroy(st, log);
  return true;
}

/** Remove every cluster whose owning process has exited (left behind by killed test runs). */
export async function pruneStaleClusters(rootDir?: string, log: (l: string) => void = () => undefined): Promise<void> {
  const root = stateRoot(rootDir);
  for (const n of listClusterNames(root)) {
    let st: ClusterState | undefined;
    try {
      st = readState(root, n);
    } catch (err) {
      log(`skipping ${n}: ${(err as Error).message}`);
      continue;
    }
    if (st && isStale(st)) {
      log(`removing stale cluster ${n} (${staleReason(st)})`);
      await destroy(st, log);
    }
  }
  await removeDeadNamespaces(root, log);
}

/**
 * Namespaces named like a cluster's (nbsc-NAME-fabric|hub|nodeN) that no state file under `root`
 * describes and that no process uses: what is left when a cluster's folder was removed while its
 * namespaces stayed mounted. A namespace some process still uses is never touched (it may belong
 * to a cluster under another state root).
 */
export async function removeDeadNamespaces(root: string, log: (l: string) => void): Promise<void> {
  if (!existsSync('/run/netns')) return;
  const known = new Set(listClusterNames(root));
  for (const ns of readdirSync('/run/netns')) {
    const m = /^nbsc-([a-z][a-z0-9-]{0,19})-(fabric|hub|node\d+)$/.exec(ns);
    if (!m || known.has(m[1]!)) continue;
    let inode: number;
    try {
      inode = netnsInode(ns);
    } catch {
      continue;
    }
    if (pidsInNamespace('net', inode).length > 0) continue;
    log(`removing namespace ${ns}: no cluster state describes it and no process uses it`);
    await run('ip', ['netns', 'delete', ns]);
  }
}

/** Namespaces named like ours with no state file describing them (state folder removed by hand). */
export async function removeOrphanNamespaces(name: string, log: (l: string) => void): Promise<void> {
  const prefix = nsName(name, '');
  const names = existsSync('/run/netns')
    ? readdirSync('/run/netns').filter((n) => n.startsWith(prefix) && /^(fabric|hub|node\d+)$/.test(n.slice(prefix.length)))
    : [];
  if (names.length === 0) return;
  log(`removing namespaces left without state: ${names.join(' ')}`);
  const pids = names.flatMap((n) => pidsInNamespace('net', netnsInode(n)));
  await killAndWait(pids);
  for (const n of names) await run('ip', ['netns', 'delete', n]);
}

/** The nodes' container cgroups: those recorded, and any found by their name (a crash may have come before the record). */
function nodeCgroupDirs(st: ClusterState): string[] {
  const dirs = new Set(st.nodes.flatMap((n) => n.cgroupDirs));
  for (const n of st.nodes) for (const d of findCgroupDirsNamed(n.cgroupParent, st.cgroupMounts)) dirs.add(d);
  return [...dirs].filter((d) => existsSync(d));
}

/** Every process of the cluster: in its network namespaces, in its anchors' mount namespaces, in its nodes' cgroups. */
function clusterPids(st: ClusterState): Set<number> {
  const pids = new Set<number>();
  for (const d of nodeCgroupDirs(st)) for (const p of pidsInCgroupTree(d)) pids.add(p);
  const netInodes = [st.fabric.netnsInode, st.hub.netnsInode, ...st.nodes.map((n) => n.netnsInode)].filter((i): i is number => i !== undefined);
  for (const ino of netInodes) for (const p of pidsInNamespace('net', ino)) pids.add(p);
  for (const n of st.nodes) if (n.mntnsInode !== undefined) for (const p of pidsInNamespace('mnt', n.mntnsInode)) pids.add(p);
  const recorded = [st.fabric.anchor, st.registry.process, st.hub.anchor, st.hub.agent, ...st.nodes.flatMap((n) => [n.anchor, n.dockerd])];
  for (const r of recorded) if (r && isRunning(r)) pids.add(r.pid);
  pids.delete(process.pid);
  return pids;
}

/**
 * Remove everything a cluster made: kill its processes (containers first, so their shims reap
 * them), delete its namespaces (which takes the bridge and veths with them), its cgroups and its
 * folder. Throws, listing them, when something could not be removed.
 */
export async function destroy(st: ClusterState, log: (l: string) => void): Promise<number> {
  const t0 = Date.now();
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    const containerPids = nodeCgroupDirs(st).flatMap((d) => pidsInCgroupTree(d));
    if (containerPids.length) await killAndWait(containerPids, 2000);
    const pids = clusterPids(st);
    if (pids.size === 0) break;
    killed += pids.size;
    const left = await killAndWait(pids);
    if (left.length) log(`still running after SIGKILL: ${left.join(' ')}`);
  }
  log(`${killed} processes killed (${Date.now() - t0} ms)`);
  for (const ns of [st.fabric.netns, st.hub.netns, ...st.nodes.map((n) => n.netns)]) {
    if (existsSync(`/run/netns/${ns}`)) await run('ip', ['netns', 'delete', ns]);
  }
  log(`namespaces deleted (${Date.now() - t0} ms)`);
  // A cgroup can only be removed once the kernel has finished tearing its last task down.
  let cgroupsLeft = nodeCgroupDirs(st);
  for (let i = 0; i < 50 && cgroupsLeft.length > 0; i++) {
    cgroupsLeft = removeCgroupTrees(cgroupsLeft);
    if (cgroupsLeft.length) await sleep(20);
  }
  log(`cgroups removed (${Date.now() - t0} ms)`);
  const left = leftoversOf(st);
  if (left.length > 0)
    throw new Error(`cluster ${st.name} could not be fully removed (state kept in ${st.dir}; run cluster:down again):\n  ${left.join('\n  ')}`);
  rmSync(st.dir, { recursive: true, force: true });
  log(`folder removed (${Date.now() - t0} ms)`);
  return killed;
}

/** What of the cluster still exists on this machine; empty once it is fully removed. */
export function leftoversOf(st: ClusterState): string[] {
  const out: string[] = [];
  for (const pid of clusterPids(st)) out.push(`process ${pid}: ${commandLine(pid)}`);
  const namespaces = [st.fabric, st.hub, ...st.nodes];
  for (const ns of namespaces) if (existsSync(`/run/netns/${ns.netns}`)) out.push(`network namespace ${ns.netns}`);
  const inodes = new Set([
    ...namespaces
      .map((n) => n.netnsInode)
      .filter((i) => i !== undefined)
      .map((i) => `net:[${i}]`),
    ...st.nodes
      .map((n) => n.mntnsInode)
      .filter((i) => i !== undefined)
      .map((i) => `mnt:[${i}]`),
  ]);
  // A namespace outlives its processes while a mount or an open descriptor refers to it.
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    if (inodes.has(f[3]) || f[4] === st.dir || f[4].startsWith(`${st.dir}/`)) out.push(`mount ${f[4]} (${f[3]})`);
  }
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (inodes.has(target)) out.push(`process ${pid} holds ${target} open (fd ${fd}): ${commandLine(Number(pid))}`);
      } catch {
        // closed meanwhile
      }
    }
  }
  for (const d of nodeCgroupDirs(st)) out.push(`cgroup ${d}`);
  return out;
}
