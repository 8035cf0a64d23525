/**
 * Cgroups for node daemons. `ip netns exec` (and a fresh sysfs in general) leaves /sys/fs/cgroup
 * empty, and dockerd then refuses to start ("Devices cgroup isn't mounted"): each node mounts the
 * host's cgroup hierarchies again inside its own mount namespace. Each node gives its containers a
 * relative --cgroup-parent, so they land below the cgroup of the process that started the cluster
 * and the harness can find (and remove) every one of them.
 */
import { readFileSync, readdirSync, lstatSync, readlinkSync, rmdirSync, existsSync } from 'node:fs';
import { join, posix } from 'node:path';

export interface CgroupMount {
  mountPoint: string;
  fsType: 'cgroup' | 'cgroup2';
  /** Path inside the hierarchy that is mounted (usually "/"). */
  root: string;
  /** v1: the controllers and name= of the hierarchy ("cpu", "name=systemd"); v2: empty. */
  controllers: string[];
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** The cgroup hierarchies mounted at or below /sys/fs/cgroup in this process's mount namespace. */
export function hostCgroupMounts(): CgroupMount[] {
  const known = new Set(
    readFileSync('/proc/cgroups', 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('\t')[0]),
  );
  const mounts: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre.split(' ');
    const [fsType, , superOptions] = post.split(' ');
    const mountPoint = f[4];
    if ((fsType !== 'cgroup' && fsType !== 'cgroup2') || !(mountPoint === CGROUP_ROOT || mountPoint.startsWith(`${CGROUP_ROOT}/`))) continue;
    const controllers = fsType === 'cgroup' ? superOptions.split(',').filter((o) => known.has(o) || o.startsWith('name=')) : [];
    mounts.push({ mountPoint, fsType, root: f[3], controllers });
  }
  return mounts;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Shell commands that rebuild the host's /sys/fs/cgroup layout inside a mount namespace that has a
 * fresh sysfs: the whole v2 hierarchy, or a tmpfs holding each v1 hierarchy (and the host's
 * symlinks such as cpu → cpu,cpuacct).
 */
export function cgroupMountCommands(mounts: CgroupMount[]): string[] {
  if (mounts.length === 0) throw new Error('no cgroup hierarchy is mounted under /sys/fs/cgroup on this host; dockerd needs one');
  const unified = mounts.find((m) => m.mountPoint === CGROUP_ROOT);
  if (unified) return [`mount -t cgroup2 cgroup2 ${CGROUP_ROOT}`];
  const cmds = [`mount -t tmpfs -o mode=755 cgroup ${CGROUP_ROOT}`];
  for (const m of mounts) {
    cmds.push(`mkdir -p ${shellQuote(m.mountPoint)}`);
    if (m.fsType === 'cgroup2') cmds.push(`mount -t cgroup2 cgroup2 ${shellQuote(m.mountPoint)}`);
    else {
      // A named hierarchy without controllers must be asked for with "none", or the kernel tries
      // to bind every unattached controller to it.
      const onlyName = m.controllers.every((c) => c.startsWith('name='));
      const opts = (onlyName ? ['none', ...m.controllers] : m.controllers).join(',');
      cmds.push(`mount -t cgroup -o ${opts} cgroup ${shellQuote(m.mountPoint)}`);
    }
  }
  for (const e of readdirSync(CGROUP_ROOT)) {
    const p = join(CGROUP_ROOT, e);
    if (lstatSync(p).isSymbolicLink()) cmds.push(`ln -s ${shellQuote(readlinkSync(p))} ${shellQuote(p)}`);
  }
  return cmds;
}

/**
 * The --cgroup-parent of a node. With cgroup v1 a relative one keeps containers below the cgroup of
 * whoever started the cluster (its memory accounting included). With cgroup v2 a cgroup that holds
 * processes cannot also have children with controllers enabled, so nodes use a top-level cgroup,
 * as dockerd's own default (/docker) does.
 */
export function cgroupParentFor(name: string, mounts: CgroupMount[]): string {
  return mounts.some((m) => m.mountPoint === CGROUP_ROOT && m.fsType === 'cgroup2') ? `/${name}` : name;
}

/**
 * The directories, one per hierarchy, that hold the containers of a daemon started as `pid` with
 * cgroup parent `parent`. runc resolves a relative parent against its own cgroup, which it
 * inherits from that daemon.
 */
export function containerCgroupDirs(pid: number, parent: string, mounts: CgroupMount[]): string[] {
  if (parent.startsWith('/')) {
    return mounts.flatMap((m) => {
      const inside = posix.relative(m.root, parent);
      return inside.startsWith('..') ? [] : [posix.join(m.mountPoint, inside)];
    });
  }
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [, , ctrl, path] = /^(\d+):([^:]*):(.*)$/.exec(l) ?? [];
      return { controllers: ctrl ? ctrl.split(',') : [], path: path ?? '/' };
    });
  const dirs: string[] = [];
  for (const m of mounts) {
    const line =
      m.fsType === 'cgroup2'
        ? lines.find((l) => l.controllers.length === 0)
        : lines.find((l) => l.controllers.length > 0 && l.controllers.every((c) => m.controllers.includes(c)));
    if (!line) continue;
    const inside = posix.relative(m.root, line.path);
    if (inside.startsWith('..')) continue; // the daemon's cgroup is not visible through this mount
    dirs.push(posix.join(m.mountPoint, inside, parent));
  }
  return dirs;
}

/**
 * Directories named `name` anywhere in the first levels of every hierarchy: finds a node's
 * container cgroups even when the state file never got to record them.
 */
export function findCgroupDirsNamed(parent: string, mounts: CgroupMount[], maxDepth = 4): string[] {
  const name = posix.basename(parent);
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === name) found.push(join(dir, e.name));
      else if (depth < maxDepth) walk(join(dir, e.name), depth + 1);
    }
  };
  for (const m of mounts) walk(m.mountPoint, 1);
  return found;
}

/** Remove cgroup directories bottom-up (rmdir is the only way to delete a cgroup). Returns those left. */
export function removeCgroupTrees(dirs: string[]): string[] {
  const left: string[] = [];
  const remove = (d: string): boolean => {
    let ok = true;
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) ok = remove(join(d, e.name)) && ok;
      rmdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      left.push(d);
      return false;
    }
    return ok;
  };
  for (const d of dirs) remove(d);
  return left.filter((d) => existsSync(d));
}
