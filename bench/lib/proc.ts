/** Figures of another process read from /proc (Linux), without touching the process, and the machine's load. */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

/** Resident set size of a process (bytes), NaN once it is gone. */
export function procRss(pid: number): number {
  return procStatusKb(pid, 'VmRSS') * 1024;
}

/** Peak resident set size of a process (bytes), NaN once it is gone. */
export function procRssPeak(pid: number): number {
  return procStatusKb(pid, 'VmHWM') * 1024;
}

function procStatusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** User + system CPU a process has used so far (ms), NaN once it is gone. */
export function procCpuMs(pid: number): number {
  try {
    return statCpuMs(`/proc/${pid}/stat`);
  } catch {
    return NaN;
  }
}

/** CPU this process has used so far (ms), all threads. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * CPU (ms) each thread of process `pid` has used so far, by role: `eventLoop` (the main thread), a
 * thread that named itself (`/proc/PID/task/TID/comm`, e.g. the API server's `sqlite-writer`), and
 * `helpers` for the rest (V8's GC and compiler threads, libuv's pool: Node names them all `node`).
 */
export function threadCpuMsByRole(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const role = Number(tid) === pid ? 'eventLoop' : name === 'node' ? 'helpers' : name;
      out[role] = (out[role] ?? 0) + statCpuMs(`/proc/${pid}/task/${tid}/stat`);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** User + system CPU (ms) in a /proc stat file (a process's or a thread's); throws once it is gone. */
function statCpuMs(file: string): number {
  const f = readFileSync(file, 'utf8');
  // After the command (which may hold spaces), utime and stime are the 12th and 13th fields, in USER_HZ (100/s).
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
}

/**
 * Waits until the machine's 1-minute load average is below half its cores (or `maxMs` passed), so
 * a scenario does not start in the wake of the one before; what it waited and the load it saw.
 */
export async function untilQuiet(maxMs: number): Promise<{ waitedMs: number; load: number }> {
  const t0 = Date.now();
  const quiet = cpus().length / 2;
  while (loadavg()[0]! >= quiet && Date.now() - t0 < maxMs) await new Promise((r) => setTimeout(r, 2000));
  return { waitedMs: Date.now() - t0, load: Math.round(loadavg()[0]! * 100) / 100 };
}
