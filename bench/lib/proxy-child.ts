/**
 * The counting proxy in its own process, so the operator's CPU and RSS measured in the bench
 * process are not inflated by the proxy's own work. The parent talks to it over the fork IPC channel.
 */
import { forkRpcChild } from './child-rpc.js';
import { fileURLToPath } from 'node:url';
import { startCountingProxy, type CallCounts } from './docker-proxy.js';

type Req = { id: number; op: 'counts' | 'reset' | 'close' | 'trace-start' | 'trace-stop' };

export interface RemoteProxy {
  readonly socketPath: string;
  readonly pid: number;
  counts(): Promise<CallCounts & { cpuMs: number }>;
  reset(): Promise<void>;
  startTrace(): Promise<void>;
  stopTrace(): Promise<Array<[number, string]>>;
  close(): Promise<void>;
}

export async function startProxyProcess(socketPath: string, upstream = '/var/run/docker.sock'): Promise<RemoteProxy> {
  const { child, call, stop } = await forkRpcChild(
    fileURLToPath(import.meta.url),
    [socketPath, upstream],
    ['ignore', 'inherit', 'inherit', 'ipc'],
    'proxy process',
  );
  return {
    socketPath,
    pid: child.pid!,
    counts: () => call('counts'),
    reset: () => call('reset'),
    startTrace: () => call('trace-start'),
    stopTrace: () => call('trace-stop'),
    close: () => stop('close', 3000),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.send) {
  const [socketPath, upstream] = process.argv.slice(2);
  startCountingProxy(socketPath!, upstream)
    .then((proxy) => {
      process.on('message', async (m: Req) => {
        if (m.op === 'counts') {
          const u = process.cpuUsage();
          process.send!({ id: m.id, result: { ...proxy.counts(), cpuMs: (u.user + u.system) / 1000 } });
        } else if (m.op === 'reset') {
          proxy.reset();
          process.send!({ id: m.id, result: true });
        } else if (m.op === 'trace-start') {
          proxy.startTrace();
          process.send!({ id: m.id, result: true });
        } else if (m.op === 'trace-stop') {
          process.send!({ id: m.id, result: proxy.stopTrace() });
        } else if (m.op === 'close') {
          await proxy.close();
          process.send!({ id: m.id, result: true });
          process.exit(0);
        }
      });
      // The proxy must not outlive the bench if the parent dies.
      process.on('disconnect', () => process.exit(0));
      process.send!({ ready: true });
    })
    .catch((err) => {
      process.send!({ error: String(err) });
      process.exit(1);
    });
}
