/**
 * Finding and stopping the processes a cluster started, by PID only. A process belongs to a cluster
 * when it lives in one of the cluster's network namespaces or in one of its nodes' cgroups; a PID
 * recorded earlier is trusted only while its start time still matches (PIDs are reused).
 */
import { readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcessRef {
  pid: number;
  /** Field 22 of /proc/PID/stat: clock ticks since boot at which the process started. */
  startTime: string;
}

interface ProcStat {
  state: string;
  startTime: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: fields[19] };
}

/** A reference to a running process, or undefined when there is none with that PID. */
export function processRef(pid: number): ProcessRef | undefined {
  const st = readStat(pid);
  return st && !isDead(st) ? { pid, startTime: st.startTime } : undefined;
}

function isDead(st: ProcStat): boolean {
  return st.state === 'Z' || st.state === 'X';
}

/** True while the very process `ref` names runs (not a later process that reuses its PID). */
export function isRunning(ref: ProcessRef | undefined): boolean {
  if (!ref) return false;
  const st = readStat(ref.pid);
  return !!st && !isDead(st) && st.startTime === ref.startTime;
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** PIDs of the live processes whose namespace of `kind` is the one with inode `inode`. */
export function pidsInNamespace(kind: 'net' | 'mnt', inode: number): number[] {
  const want = `${kind}:[${inode}]`;
  return allPids().filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/${kind}`) === want;
    } catch {
      return false; // gone, or a zombie that has released its namespaces
    }
  });
}

/** Every PID in a cgroup directory and the cgroups below it (v1 and v2 both list cgroup.procs). */
export function pidsInCgroupTree(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const line of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (line) out.push(Number(line));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // removed while we walked it
    }
  };
  walk(dir);
  return out;
}

/** Kill with SIGKILL and wait until every one has exited (zombies count as exited). Returns the survivors. */
export async function killAndWait(pids: Iterable<number>, timeoutMs = 5000): Promise<number[]> {
  const targets = new Map<number, string>();
  for (const pid of pids) {
    const st = readStat(pid);
    if (!st || isDead(st)) continue;
    targets.set(pid, st.startTime);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited in between
    }
  }
  const alive = () => [...targets].filter(([pid, start]) => isRunning({ pid, startTime: start })).map(([pid]) => pid);
  const deadline = Date.now() + timeoutMs;
  let left = alive();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    left = alive();
  }
  return left;
}

/** Resident memory of a process in bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A process's command name (`/proc/PID/comm`), '' when it is gone. */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The PIDs of a process's children (those of every one of its threads). */
export function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** The command line of a process, for reports ("dockerd --config-file …"). */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}
