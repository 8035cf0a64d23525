/**
 * Parent side of the bench's helper processes (the counting proxy): fork a module, wait
 * for its `{ready}` (or `{error}`) message, then call it with `{id, op}` → `{id, result}`.
 * Separate processes keep their RSS and CPU out of the bench's own.
 */
import { fork, type ChildProcess, type StdioOptions } from 'node:child_process';

export interface RpcChild {
  child: ChildProcess;
  call(op: string): Promise<any>;
  /** Ask the child to stop with `op` (no reply awaited), wait up to graceMs, then SIGKILL. */
  stop(op: string, graceMs: number): Promise<void>;
}

export async function forkRpcChild(modulePath: string, args: string[], stdio: StdioOptions, what: string): Promise<RpcChild> {
  const child = fork(modulePath, args, { stdio });
  let next = 1;
  const pending = new Map<number, (v: any) => void>();
  child.on('message', (m: any) => {
    if (m?.id && pending.has(m.id)) {
      pending.get(m.id)!(m.result);
      pending.delete(m.id);
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
    child.once('message', (m: any) => (m?.ready ? resolve() : reject(new Error(String(m?.error)))));
  });
  const call = (op: string) =>
    new Promise<any>((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      child.send({ id, op });
    });
  const stop = async (op: string, graceMs: number) => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.send({ id: 0, op });
    await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return { child, call, stop };
}

/** SIGTERM a child process, give it graceMs to exit, then SIGKILL; resolves once it is told to go. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
