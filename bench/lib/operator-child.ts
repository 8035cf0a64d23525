/**
 * The operator in its own process (P4): its RSS is then the operator's alone, not the bench
 * harness's. Same startOperator, same policy, same counting proxy as the in-process runs.
 *   fork('operator-child.js', [kubeconfigPath, kind, dockerSocket, policyJson])
 * IPC: {op:'stats'} → operator stats (perKey dropped), {op:'mem'} → memory after a full GC, {op:'stop'}.
 */
import { forkRpcChild } from './child-rpc.js';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Policy } from '../../src/config/types.js';
import type { BackendKind } from '../../src/backends/types.js';

export interface RemoteOperator {
  pid: number;
  stats(): Promise<any>;
  mem(): Promise<{ rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number; spaces: Record<string, number> }>;
  stop(): Promise<void>;
}

export async function startOperatorChild(opts: { kubeconfigPath: string; policy: Policy; kind: BackendKind; dockerSocket: string }): Promise<RemoteOperator> {
  const { child, call, stop } = await forkRpcChild(
    fileURLToPath(import.meta.url),
    [opts.kubeconfigPath, opts.kind, opts.dockerSocket, JSON.stringify(opts.policy)],
    ['ignore', 'ignore', 'inherit', 'ipc'],
    'operator child',
  );
  return {
    pid: child.pid!,
    stats: () => call('stats'),
    mem: () => call('mem'),
    stop: () => stop('stop', 10_000),
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
        // Committed size of each V8 heap space: which part of the heap the RSS is.
        const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, x.space_size]));
        process.send!({ id: m.id, result: { ...process.memoryUsage(), spaces } });
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
