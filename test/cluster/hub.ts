/**
 * The hub's namespace: a network namespace on the cluster's bridge where a test runs what would sit
 * beside the manager on a real deployment (JupyterHub, its proxy, the API server, the operator),
 * and from which it reaches the nodes.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { Cluster } from './cluster.js';
import { runCapture, type RunResult } from '../../bench/lib/exec.js';
import { connectVia, forwardVia, httpRequestVia, type HttpResult, type LoopbackForward } from './tunnel.js';
import { waitUntil } from './wait.js';

export class HubNamespace {
  constructor(private readonly cluster: Cluster) {}

  get netns(): string {
    return this.cluster.state.hub.netns;
  }
  get ip(): string {
    return this.cluster.state.hub.ip;
  }
  /** Unix socket of the agent that opens connections from this namespace. */
  get agentSocket(): string {
    return this.cluster.state.hub.agentSocket;
  }

  /** A TCP connection to host:port opened from the hub's namespace (paused until piped or resumed). */
  connect(host: string, port: number, timeoutMs?: number) {
    return connectVia(this.agentSocket, host, port, timeoutMs);
  }

  request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
    return httpRequestVia(this.agentSocket, url, opts);
  }

  httpGet(url: string, timeoutMs = 3000): Promise<HttpResult> {
    return httpRequestVia(this.agentSocket, url, { timeoutMs });
  }

  /** Poll until `url` answers 2xx (and `accept(body)` when given) from the hub's namespace. */
  waitForHttp(url: string, opts: { timeoutMs?: number; everyMs?: number; accept?: (body: string) => boolean } = {}): Promise<HttpResult> {
    return waitUntil(
      `${url} to answer from ${this.netns}`,
      async () => {
        const r = await this.httpGet(url, 2000);
        return r.status >= 200 && r.status < 300 && (!opts.accept || opts.accept(r.body)) ? r : undefined;
      },
      opts.timeoutMs ?? 30000,
      opts.everyMs ?? 100,
    );
  }

  /** A 127.0.0.1 port in the caller's namespace relayed to host:port from the hub's namespace. */
  forward(host: string, port: number): Promise<LoopbackForward> {
    return forwardVia(this.agentSocket, host, port);
  }

  /** Start a process in the hub's namespaces (network, mount, hostname); stop() kills it if it still runs. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const anchor = this.cluster.requireAnchor('hub');
    const cwd = typeof opts.cwd === 'string' ? opts.cwd : process.cwd();
    return spawn('nsenter', ['-t', String(anchor.pid), '-m', '-u', '-n', `--wd=${cwd}`, '--', cmd, ...args], { ...opts, cwd: undefined });
  }

  exec(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
    const anchor = this.cluster.requireAnchor('hub');
    return runCapture('nsenter', ['-t', String(anchor.pid), '-m', '-u', '-n', `--wd=${process.cwd()}`, '--', cmd, ...args], opts);
  }
}
