/**
 * What every scenario of one bench run shares: the run id (the label on every Docker object it makes,
 * so cleanup never touches another run's), the API server child, the two counting Docker proxies (the
 * operator's and the raw baseline's), the operator when one runs, the namespaces created, and what
 * must be stopped however the run ends (the teardown).
 */
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../../src/api/types.js';
import type { BackendKind } from '../../src/backends/types.js';
import type { BenchArgs } from '../args.js';
import type { RemoteProxy } from './proxy-child.js';
import { Kube, ReadyTracker } from './kube.js';
import * as raw from './raw-docker.js';
import { Teardown } from './teardown.js';
import { mapLimit, sleep } from './stats.js';
import { benchPolicy, startOperatorInProcess, type ApiHandle, type RunningOperator } from './stack.js';

/** Progress on stderr (stdout carries the JSON report). */
export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** Everything one bench run shares. */
export class BenchContext {
  readonly runId = `${Date.now().toString(36).slice(-5)}${randomBytes(2).toString('hex')}`;
  /** Docker object prefix for this run's operator: its orphan GC never touches another run's objects. */
  readonly prefix = `nbb${this.runId}`;
  readonly docker = new Docker({ socketPath: '/var/run/docker.sock' });
  imageRef = raw.BENCH_IMAGE;
  imageId = '';
  api!: ApiHandle;
  kube!: Kube;
  opProxy!: RemoteProxy;
  rawProxy!: RemoteProxy;
  rawDocker!: Docker;
  operator?: RunningOperator;
  private stopOperatorNow?: () => Promise<void>;
  namespaces: string[] = [];
  readonly teardown = new Teardown(log);
  swarm = false;
  constructor(readonly args: BenchArgs) {}

  get runLabels(): Record<string, string> {
    return { [raw.BENCH_RUN_LABEL]: this.runId };
  }

  ns(name: string): string {
    const n = `b${this.runId}-${name}`.toLowerCase();
    this.namespaces.push(n);
    return n;
  }

  async ensureOperator(kind: BackendKind): Promise<RunningOperator> {
    if (this.operator?.kind === kind) return this.operator;
    await this.stopOperator();
    const policy = await benchPolicy(kind, this.prefix, this.args.resyncSeconds);
    const op = await startOperatorInProcess({ kubeconfigPath: this.api.kubeconfigPath, policy, kind, dockerSocket: this.opProxy.socketPath });
    this.stopOperatorNow = this.teardown.add(`the operator (${kind})`, () => op.close());
    this.operator = op;
    return op;
  }

  async stopOperator(): Promise<void> {
    const stop = this.stopOperatorNow;
    this.operator = this.stopOperatorNow = undefined;
    await stop?.();
  }

  async concurrency(): Promise<number> {
    return (await benchPolicy('service', this.prefix, 1)).concurrency;
  }

  /**
   * Remove every container carrying label `key=value` and wait until none is left. Swarm stops a
   * removed service's task with a 10 s grace period (busybox httpd ignores SIGTERM); the harness
   * kills them itself so teardown does not dominate the run time. Not part of any measurement.
   */
  async containersGone(key: string, value: string, timeoutMs = 120_000): Promise<void> {
    const filters = JSON.stringify({ label: [`${key}=${value}`] });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const cs = await this.docker.listContainers({ all: true, filters });
      if (cs.length === 0) return;
      await mapLimit(cs, 8, (c) =>
        this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      );
      await sleep(100);
    }
    throw new Error(`containers labelled ${key}=${value} still there after ${timeoutMs} ms`);
  }
}

/** hostUrl as published; the bench connects to loopback only (network rule). */
export function loopback(hostUrl: string): string {
  const u = new URL(hostUrl);
  if (u.hostname === '0.0.0.0' || u.hostname === '' || u.hostname === 'localhost') u.hostname = '127.0.0.1';
  return u.toString();
}

/** Delete through the API (the operator's finalizer removes the Docker objects), then make sure nothing is left. */
export async function deleteAll(ctx: BenchContext, ns: string, names: string[]): Promise<void> {
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const present = () => names.filter((nm) => tracker.present.has(nm)).length;
  await mapLimit(names, 32, (nm) => ctx.kube.remove(ns, nm));
  try {
    await tracker.until(`${names.length} resources deleted`, () => present() === 0, 300_000);
  } catch (err) {
    log(`cleanup: ${(err as Error).message}; removing by label`);
  } finally {
    tracker.stop();
  }
  await raw.cleanupByLabel(ctx.docker, LABELS.namespace, ns);
  await ctx.containersGone(LABELS.namespace, ns, 300_000);
}
