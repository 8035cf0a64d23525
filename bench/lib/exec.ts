/**
 * Running a program to completion with errors that name the command: the system tools the test
 * cluster drives (ip, nsenter, …) and the bench's child runs.
 */
import { execFile } from 'node:child_process';

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
