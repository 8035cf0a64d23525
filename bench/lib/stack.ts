/**
 * The system under test, assembled the way `nbswarm up` does it but with the seams the bench needs:
 *  - the embedded API server in a child process (so its RSS/CPU are its own, not the operator's);
 *  - the operator in-process (startOperator), its backend pointed at the counting proxy;
 *  - the CRD from crds/ installed through the API like kubectl would.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { terminate } from './child-rpc.js';
import { procCpuMs, procRss } from './proc.js';
import type { Policy } from '../../src/config/types.js';
import type { BackendKind } from '../../src/backends/types.js';

export interface ApiHandle {
  /** Path of an admin kubeconfig for the server. */
  kubeconfigPath: string;
  pid: number;
  dataDir: string;
  rssBytes(): number;
  cpuMs(): number;
  stop(): Promise<void>;
}

/** Start the embedded API server in a child process (bench/lib/apiserver-child.js). */
export async function startApiChild(opts: { dataDir?: string } = {}): Promise<ApiHandle> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'nbswarm-bench-api-'));
  const own = !opts.dataDir;
  const entry = fileURLToPath(new URL('./apiserver-child.js', import.meta.url));
  // NBSWARM_BENCH_API_CPU_PROF=<dir>: profile the API server (node --cpu-prof) to explain its figures.
  const prof = process.env.NBSWARM_BENCH_API_CPU_PROF;
  const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const child: ChildProcess = fork(entry, [dataDir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv });
  const kubeconfig = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('API server child did not start within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`API server child exited (${code}) before it was ready`)));
    child.once('message', (m: any) => {
      clearTimeout(t);
      if (m?.kubeconfig) resolve(m.kubeconfig);
      else reject(new Error(`API server child: ${m?.error ?? 'no kubeconfig'}`));
    });
  });
  const kubeconfigPath = join(dataDir, 'bench-kubeconfig.yaml');
  writeFileSync(kubeconfigPath, kubeconfig);
  return {
    kubeconfigPath,
    pid: child.pid!,
    dataDir,
    rssBytes: () => procRss(child.pid!),
    cpuMs: () => procCpuMs(child.pid!),
    stop: async () => {
      await terminate(child, 5000);
      if (own) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Policy for the bench: the defaults, the test image allowed, no pulls, and no extras the raw baseline lacks. */
export async function benchPolicy(kind: BackendKind, prefix: string, resyncSeconds: number): Promise<Policy> {
  const { defaultPolicy } = await import('../../src/config/policy.js');
  const p = defaultPolicy();
  p.prefix = prefix;
  p.backend = kind;
  p.allowedImages = ['local/*'];
  p.defaultImage = 'local/busybox:test';
  p.pullPolicy = 'never';
  // The raw baseline mounts no volume and sets no limits; the operator is measured like for like.
  p.volumes = [];
  p.resources = { defaults: {}, limits: {} };
  p.resyncSeconds = resyncSeconds;
  return p;
}

export interface OperatorHandle {
  stop(): Promise<void>;
  stats(): any;
}

export interface RunningOperator {
  op: OperatorHandle;
  kind: BackendKind;
  close(): Promise<void>;
}

/** startOperator in this process, its backend talking to Docker through `dockerSocket` (the counting proxy). */
export async function startOperatorInProcess(opts: {
  kubeconfigPath: string;
  policy: Policy;
  kind: BackendKind;
  dockerSocket: string;
  logFile?: string;
}): Promise<RunningOperator> {
  const { createBackend } = await import('../../src/backends/docker.js');
  const { startOperator } = await import('../../src/controller/operator.js');
  const { createLogger } = await import('../../src/log.js');
  const backend = await createBackend(opts.kind, { host: opts.dockerSocket, pullPolicy: 'never' });
  const log = createLogger({ level: process.env.NBSWARM_BENCH_LOG_LEVEL ?? 'warn', json: true });
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(opts.kubeconfigPath);
  const op: OperatorHandle = await startOperator({ kubeconfig, policy: opts.policy, backend, log });
  // Leader election is part of start-up: the bench's clock includes winning the lease.
  await (op as any).whenLeader?.();
  return {
    op,
    kind: opts.kind,
    close: async () => {
      await op.stop();
      await backend.close().catch(() => undefined);
    },
  };
}

/** Accessors for the operator's stats(), tolerant of its exact nesting. */
export function queueStats(s: any): { depth: number; delayed: number; inFlight: number; reconciles: number; errors: number } {
  const q = s?.queue ?? s?.workqueue ?? s ?? {};
  return {
    depth: Number(q.depth ?? 0),
    delayed: Number(q.delayed ?? 0),
    inFlight: Number(q.inFlight ?? 0),
    reconciles: Number(q.reconcilesTotal ?? s?.reconciler?.reconciles ?? 0),
    errors: Number(q.errorsTotal ?? 0),
  };
}

export function reconcilerStats(s: any): { reconciles: number; statusPatches: number; dockerWrites: number; actions: Record<string, number> } {
  const r = s?.reconciler ?? {};
  return {
    reconciles: Number(r.reconciles ?? 0),
    statusPatches: Number(r.statusPatches ?? 0),
    dockerWrites: Number(r.dockerWrites ?? 0),
    actions: r.actions ?? {},
  };
}

export function informerSynced(s: any): boolean {
  const i = s?.informer;
  if (!i) return true;
  if (typeof i.synced === 'boolean') return i.synced;
  return Number(i.lists ?? 0) > 0;
}
