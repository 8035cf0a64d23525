/**
 * The operator in its own process (P4): its RSS is then the operator's alone, not the bench
 * harness's. Same startOperator, same policy, same counting proxy as the in-process runs.
 *   fork('operator-child.js', [kubeconfigPath, kind, dockerSocket, policyJson])
 * IPC: {op:'stats'} → operator stats (perKey dropped), {op:'mem'} → memory after a full GC, {op:'stop'}.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Policy } from '../../src/config/types.js';
import type { BackendKind } from '../../src/backends/types.js';

export interface RemoteOperator {
  pid: number;
  stats(): Promise<any>;
  mem(): Promise<{ rss: number; heapUsed: number; external: number; arrayBuffers: number }>;
  stop(): Promise<void>;
}

export async function startOperatorChild(opts: { kubeconfigPath: string; policy: Policy; kind: BackendKind; dockerSocket: string }): Promise<RemoteOperator> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [opts.kubeconfigPath, opts.kind, opts.dockerSocket, JSON.stringify(opts.policy)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let next = 1;
  const pending = new Map<number, (v: any) => void>();
  child.on('message', (m: any) => {
    if (m?.id && pending.has(m.id)) {
      pending.get(m.id)!(m.result);
      pending.delete(m.id);
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`operator child exited (${code}) before it led`)));
    child.once('message', (m: any) => (m?.ready ? resolve() : reject(new Error(String(m?.error)))));
  });
  const call = (op: string) =>
    new Promise<any>((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      child.send({ id, op });
    });
  return {
    pid: child.pid!,
    stats: () => call('stats'),
    mem: () => call('mem'),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ id: 0, op: 'stop' });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.send) {
  const [kubeconfigPath, kind, dockerSocket, policyJson] = process.argv.slice(2);
  v8.setFlagsFromString('--expose-gc');
  const gc: () => void = vm.runInNewContext('gc');
  const { startOperatorInProcess } = await import('./stack.js');
  try {
    const running = await startOperatorInProcess({ kubeconfigPath: kubeconfigPath!, policy: JSON.parse(policyJson!), kind: kind as BackendKind, dockerSocket: dockerSocket! });
    process.on('message', async (m: { id: number; op: string }) => {
      if (m.op === 'stats') {
        const s = running.op.stats();
        if (s?.queue) s.queue = { ...s.queue, perKey: undefined };
        process.send!({ id: m.id, result: s });
      } else if (m.op === 'mem') {
        gc();
        process.send!({ id: m.id, result: process.memoryUsage() });
      } else if (m.op === 'stop') {
        await running.close().catch(() => undefined);
        process.exit(0);
      }
    });
    process.on('disconnect', () => process.exit(0));
    process.send({ ready: true });
  } catch (err) {
    process.send({ error: String((err as Error)?.stack ?? err) });
    process.exit(1);
  }
}
