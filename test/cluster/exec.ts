/** Running the system tools the harness drives (ip, nsenter, …) with errors that name the command. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run to completion; never rejects on a non-zero exit (see `run` for that). */
export function runCapture(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 30000, env: opts.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && typeof e.code === 'string') {
        reject(new Error(`${cmd} could not be run (${e.code}): ${e.message}${e.code === 'ENOENT' ? ` — install the package that provides ${cmd}` : ''}`));
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Run and fail with the command line and its stderr when it exits non-zero. */
export async function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  const r = await runCapture(cmd, args, opts);
  if (r.code !== 0) throw new Error(`\`${[cmd, ...args].join(' ')}\` exited with ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  return r.stdout;
}

/**
 * Start a long-lived process that outlives this one (the CLI exits after `cluster:up`): its own
 * session, output appended to `logFile`. The caller records its PID in the cluster state.
 */
export function spawnDetached(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env });
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}
