/**
 * Shared set-up for the operator integration suites: a real embedded API server (own temp data
 * dir, random port), the CRD installed through the API, a real dockerd backend, the operator
 * in-process (so tests read its instrumentation), and real kubectl. Docker objects are named with
 * a per-run policy prefix; cleanup removes only objects and volumes carrying that prefix.
 */
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { ANNOTATIONS } from '../../src/api/names.js';
import { GROUP, LABELS, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { createBackend, type BackendOptions } from '../../src/backends/docker.js';
import type { Backend, BackendKind } from '../../src/backends/types.js';
import { defaultPolicy } from '../../src/config/policy.js';
import type { Policy } from '../../src/config/types.js';
import { installCrd } from '../../src/controller/crd.js';
import { createLogger } from '../../src/log.js';
import { startOperator, type OperatorHandle } from '../../src/controller/operator.js';
import { TEST_IMAGE, TEST_RUN_ID, requireDocker, sleep, waitFor } from '../helpers/docker.js';

export const NS = 'default';
export const HTTPD = ['httpd', '-f', '-p', '{port}', '-h', '/www'];

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectlRaw(kubeconfig: string, args: string[], input?: string, timeoutMs = 60_000): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export interface Env {
  kind: BackendKind;
  api: RunningApiServer;
  kc: KubeConfig;
  kubeconfig: string;
  docker: Docker;
  policy: Policy;
  backend: Backend;
  op: OperatorHandle;
  prefix: string;
  custom: CustomObjectsApi;
  kubectl(args: string[], input?: string): Promise<string>;
  restartOperator(): Promise<OperatorHandle>;
  /**
   * Stops the operator and the API server. `leaveDockerObjects`: keep the services and containers
   * the operator made, for a private cluster that is destroyed next with its daemons and data
   * (removing 120 services one by one from a 1-node cluster took ~60 s).
   */
  close(opts?: { leaveDockerObjects?: boolean }): Promise<void>;
}

export function testPolicy(kind: BackendKind, prefix: string, over: Partial<Policy> = {}): Policy {
  const p = defaultPolicy();
  return {
    ...p,
    prefix,
    backend: kind,
    pullPolicy: 'never',
    allowedImages: ['local/*'],
    defaultImage: TEST_IMAGE,
    defaultMode: 'custom',
    volumes: [{ name: '{prefix}-{username}-home', target: '/home/jovyan', type: 'volume' }],
    resources: { defaults: { cpu: '0.5', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    resyncSeconds: 600,
    concurrency: 4,
    sourceImages: { repository: `local/${prefix}-built` },
    ...over,
  };
}

export interface EnvOptions {
  /** A private dockerd (e.g. a test/cluster node) instead of the machine's. */
  docker?: Docker;
  probe?: (url: string) => Promise<boolean>;
  /** Per-call Docker deadlines (the fault tests make them short). */
  deadlines?: BackendOptions['deadlines'];
}

export async function setupEnv(kind: BackendKind, policyOver: Partial<Policy> = {}, envOpts: EnvOptions = {}): Promise<Env> {
  const docker = envOpts.docker ?? (await requireDocker({ swarm: kind === 'service' })).docker;
  const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-op-'));
  const api = await startApiServer({ dataDir, port: 0, bookmarkIntervalMs: 2000 });
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  await installCrd(kc);
  const prefix = `t${TEST_RUN_ID.replace(/[^a-z0-9]/g, '').slice(-8)}${kind[0]}${Math.floor(Math.random() * 1000)}`;
  const policy = testPolicy(kind, prefix, policyOver);
  const backend = await createBackend(kind, { docker, pullPolicy: 'never', deadlines: envOpts.deadlines });
  const log = createLogger({ level: process.env.NBSWARM_TEST_LOG ?? 'error' });
  const start = () =>
    startOperator({
      kubeconfig: kc,
      policy,
      backend,
      log,
      backoff: { baseMs: 200, maxMs: 4000 },
      renewSeconds: 1,
      leaseDurationSeconds: 3,
      probe: envOpts.probe,
    });
  const env: Env = {
    kind,
    api,
    kc,
    kubeconfig: api.kubeconfigPath,
    docker,
    policy,
    backend,
    op: await start(),
    prefix,
    custom: kc.makeApiClient(CustomObjectsApi),
    async kubectl(args, input) {
      const r = await kubectlRaw(api.kubeconfigPath, args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
      return r.stdout;
    },
    async restartOperator() {
      await env.op.stop();
      env.op = await start();
      return env.op;
    },
    async close(opts = {}) {
      await env.op.stop().catch(() => undefined);
      if (!opts.leaveDockerObjects) await cleanupPrefix(docker, prefix);
      await backend.close();
      await api.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await env.op.whenLeader();
  return env;
}

/** Remove everything this run's operator made: services/containers, then volumes and built images. */
export async function cleanupPrefix(docker: Docker, prefix: string): Promise<void> {
  const ignore = () => undefined;
  const filters = JSON.stringify({ label: [`${LABELS.managedBy}=nbswarm`] });
  try {
    const services = (await docker.listServices({ filters } as any)) as unknown as any[];
    await Promise.all(services.filter((s) => String(s.Spec?.Name ?? '').startsWith(prefix + '-')).map((s) => docker.getService(s.ID).remove().catch(ignore)));
  } catch {
    // no swarm
  }
  for (let i = 0; i < 50; i++) {
    const cs = (await docker.listContainers({ all: true })).filter((c) => c.Names.some((n) => n.replace(/^\//, '').startsWith(prefix + '-')));
    if (!cs.length) break;
    await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(ignore)));
    await sleep(200);
  }
  const vols = await docker.listVolumes();
  await Promise.all((vols.Volumes ?? []).filter((v) => v.Name.startsWith(prefix + '-')).map((v) => docker.getVolume(v.Name).remove().catch(ignore)));
  const images = await docker.listImages();
  // By tag and without force: a tag of the shared test image is only untagged, never deleted.
  const tags = images.flatMap((im) => (im.RepoTags ?? []).filter((t) => t.startsWith(`local/${prefix}`)));
  for (const t of tags) await docker.getImage(t).remove().catch(ignore);
}

export function nbsYaml(name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}): string {
  return YAML.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name, namespace: NS, ...meta }, spec });
}

/**
 * Asks the operator to reconcile `name` again (a new value of nbswarm.io/reconcile) and waits until
 * a reconcile has started since; what it did is for the caller to check.
 */
export async function reconcileAgain(env: Env, name: string, namespace = NS): Promise<void> {
  const before = reconcilesOf(env, name, namespace);
  await env.kubectl(['annotate', '--overwrite', '-n', namespace, 'nbs', name, `${ANNOTATIONS.reconcile}=${Date.now()}`]);
  await waitFor(`a reconcile of ${namespace}/${name} after ${ANNOTATIONS.reconcile} changed`, async () => reconcilesOf(env, name, namespace) > before, 10_000);
}

/** Reconciles the operator's queue has started for one server so far. */
export function reconcilesOf(env: Env, name: string, namespace = NS): number {
  return env.op.stats().queue.perKey[`${namespace}/${name}`]?.reconciles ?? 0;
}

export async function getNbs(env: Env, name: string): Promise<NotebookServer> {
  return (await env.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: NS, name })) as NotebookServer;
}

export async function patchSpec(env: Env, name: string, spec: Record<string, unknown>): Promise<NotebookServer> {
  return (await env.custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, plural: PLURAL, namespace: NS, name, body: { spec } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )) as NotebookServer;
}

/** Ready (via kubectl wait) and converged on the current generation. */
export async function waitReady(env: Env, name: string, timeout = '90s'): Promise<NotebookServer> {
  // kubectl gets its own --timeout plus a margin, so that is the limit and not the helper's default.
  const seconds = Number(/^(\d+)s$/.exec(timeout)?.[1] ?? 90);
  const args = ['wait', '-n', NS, `nbs/${name}`, '--for=condition=Ready', `--timeout=${seconds}s`];
  const r = await kubectlRaw(env.kubeconfig, args, undefined, (seconds + 15) * 1000);
  if (r.code !== 0) {
    const o = await getNbs(env, name).catch(() => undefined);
    throw new Error(
      `kubectl ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}; last status: ${o?.status?.phase ?? '(none)'}: ${o?.status?.message ?? ''}`,
    );
  }
  return waitFor(`${name} observedGeneration`, async () => {
    const o = await getNbs(env, name);
    return o.status?.observedGeneration === o.metadata.generation && o.status?.phase === 'Running' ? o : undefined;
  });
}

/** In `phase` and converged on its current generation, one later than `before`'s when given (a spec change acted on). */
export async function waitPhase(env: Env, name: string, phase: string, timeoutMs = 60_000, before?: NotebookServer): Promise<NotebookServer> {
  let last: NotebookServer | undefined;
  const newer = (o: NotebookServer) => !before || o.metadata.generation! > before.metadata.generation!;
  try {
    return await waitFor(
      `${name} phase ${phase}${before ? ` after generation ${before.metadata.generation}` : ''}`,
      async () => {
        const o = (last = await getNbs(env, name));
        return o.status?.phase === phase && o.status?.observedGeneration === o.metadata.generation && newer(o) ? o : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${last?.status?.phase ?? '(none)'}: ${last?.status?.message ?? ''}`);
  }
}

/** The env of the running container of a server (Swarm: its task's container). */
export async function containerEnv(env: Env, uid: string): Promise<string[]> {
  const found = await env.backend.find(uid);
  if (found.length !== 1 || !found[0].containerId) throw new Error(`expected one running object for ${uid}, found ${found.length}`);
  const c: any = await env.docker.getContainer(found[0].containerId).inspect();
  return c.Config.Env as string[];
}

export async function dockerExec(docker: Docker, containerId: string, cmd: string[], user?: string): Promise<string> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, User: user });
  const stream = (await exec.start({ hijack: true, stdin: false })) as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
  // Demultiplex Docker's 8-byte frame headers.
  const buf = Buffer.concat(chunks);
  let out = '';
  for (let i = 0; i + 8 <= buf.length;) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  const info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`exec ${cmd.join(' ')} exited ${info.ExitCode}: ${out}`);
  return out;
}
