/**
 * nbswarm as it runs beside a Swarm manager, on the multi-node test cluster: the embedded API
 * server (`nbswarm serve`) and operators (`nbswarm operator`, one per namespace and policy) as
 * separate processes in the cluster's hub namespace, where they reach the nodes' addresses, talking
 * to the manager through its socket (DOCKER_HOST). The test process reaches the API server
 * through a loopback forward and reads each operator's /stats through the hub namespace.
 */
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { GROUP, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import type { Policy } from '../../src/config/types.js';
import { installCrd } from '../../src/controller/crd.js';
import { makeApiClient } from '../../src/controller/kube.js';
import type { Cluster } from '../cluster/cluster.js';
import type { LoopbackForward } from '../cluster/tunnel.js';
import { kubectlRaw } from '../integration/operator-harness.js';

const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A process started in the hub namespace, with its output in a log file. */
export class HubProcess {
  readonly exited: Promise<number | null>;
  constructor(
    readonly child: ChildProcess,
    readonly log: string,
  ) {
    const out = createWriteStream(log, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(lines?: number): string {
    return `--- ${this.log}:\n${tail(this.log, lines)}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export interface OperatorSpec {
  name: string;
  namespace: string;
  policy: Partial<Policy>;
}

export interface OperatorStats {
  leader: boolean;
  queue: { depth?: number; processing?: number; [k: string]: unknown };
  reconciler: { reconciles: number; statusPatches: number; dockerWrites: number; actions: Record<string, number> };
}

export class OperatorProcess {
  proc?: HubProcess;
  constructor(
    private readonly stack: Stack,
    readonly spec: OperatorSpec,
    readonly metricsPort: number,
    private readonly policyFile: string,
  ) {}

  async start(): Promise<void> {
    const s = this.stack;
    const log = join(s.dir, `operator-${this.spec.name}.log`);
    const child = s.cluster.hub.spawn(
      process.execPath,
      [
        CLI,
        'operator',
        '--kubeconfig',
        s.hubKubeconfig,
        '--policy',
        this.policyFile,
        '--namespace',
        this.spec.namespace,
        '--metrics-port',
        String(this.metricsPort),
      ],
      {
        env: { ...process.env, DOCKER_HOST: s.cluster.dockerHost, NBSWARM_LOG_LEVEL: process.env.NBSWARM_TEST_LOG ?? 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.proc = new HubProcess(child, log);
    await this.waitLeader();
  }

  /** /stats of the running operator (through the hub namespace). */
  async stats(): Promise<OperatorStats> {
    const r = await this.stack.cluster.hub.httpGet(`http://127.0.0.1:${this.metricsPort}/stats`, 3000);
    if (r.status !== 200) throw new Error(`operator ${this.spec.name} /stats answered ${r.status}`);
    return JSON.parse(r.body) as OperatorStats;
  }

  private async waitLeader(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.proc?.running) throw new Error(`operator ${this.spec.name} exited (${this.proc?.child.exitCode})\n${this.proc?.tail()}`);
      const st = await this.stats().catch(() => undefined);
      if (st?.leader) return;
      if (Date.now() > deadline) throw new Error(`operator ${this.spec.name} did not lead within ${timeoutMs} ms\n${this.proc?.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async restart(): Promise<void> {
    await this.proc?.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}

export class Stack {
  readonly dir = mkdtempSync(join(tmpdir(), 'nbswarm-mn-'));
  api?: HubProcess;
  /** https://10.x.0.2:PORT: what processes in the hub namespace and containers on the nodes use. */
  apiUrl = '';
  /** Kubeconfig naming apiUrl (hub namespace, containers). */
  hubKubeconfig = '';
  /** Kubeconfig naming the loopback forward (this process, kubectl). */
  kubeconfig = '';
  kc = new KubeConfig();
  custom!: CustomObjectsApi;
  operators: OperatorProcess[] = [];
  private forwardHandle?: LoopbackForward;
  private nextMetricsPort = 19101;

  constructor(readonly cluster: Cluster) {}

  async start(): Promise<void> {
    const port = 16443;
    const log = join(this.dir, 'apiserver.log');
    const child = this.cluster.hub.spawn(
      process.execPath,
      [CLI, 'serve', '--address', this.cluster.hub.ip, '--port', String(port), '--data-dir', join(this.dir, 'api')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env },
      },
    );
    this.api = new HubProcess(child, log);
    const started = await new Promise<{ url: string; kubeconfig: string }>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`nbswarm serve did not start within 30 s\n${this.api!.tail()}`)), 30_000);
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        const line = buf.split('\n').find((l) => l.startsWith('{') && l.includes('"kubeconfig"'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as { url: string; kubeconfig: string });
        }
      });
      child.once('exit', (code) => reject(new Error(`nbswarm serve exited with ${code}\n${this.api!.tail()}`)));
    });
    this.apiUrl = started.url;
    this.hubKubeconfig = started.kubeconfig;
    this.forwardHandle = await this.cluster.hub.forward(this.cluster.hub.ip, port);
    const doc = YAML.parse(readFileSync(started.kubeconfig, 'utf8'));
    for (const c of doc.clusters) c.cluster.server = `https://127.0.0.1:${this.forwardHandle.port}`;
    this.kubeconfig = join(this.dir, 'local.kubeconfig');
    writeFileSync(this.kubeconfig, YAML.stringify(doc));
    this.kc.loadFromFile(this.kubeconfig);
    // One keep-alive pool, as the hub's spawner (urllib3) and kubectl have: client-node's own
    // client makes a TLS handshake per request (P8's 200 creates: 8.0 s with it, 3.0-3.3 s without).
    this.custom = makeApiClient(this.kc, CustomObjectsApi);
    await installCrd(this.kc);
  }

  /** Start an operator for one namespace with `policy` (over the defaults). */
  async operator(spec: OperatorSpec): Promise<OperatorProcess> {
    const file = join(this.dir, `policy-${spec.name}.yaml`);
    writeFileSync(file, YAML.stringify(spec.policy));
    await this.kubectl(['create', 'namespace', spec.namespace]).catch(() => undefined);
    const op = new OperatorProcess(this, spec, this.nextMetricsPort++, file);
    await op.start();
    this.operators.push(op);
    return op;
  }

  async kubectl(args: string[], input?: string): Promise<string> {
    const r = await kubectlRaw(this.kubeconfig, args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  async create(namespace: string, name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Promise<NotebookServer> {
    return (await this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name, namespace, ...metadata }, spec },
    })) as NotebookServer;
  }

  async get(namespace: string, name: string): Promise<NotebookServer> {
    return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name })) as NotebookServer;
  }

  async list(namespace: string): Promise<NotebookServer[]> {
    return ((await this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace })) as { items: NotebookServer[] }).items;
  }

  async patch(namespace: string, name: string, body: Record<string, unknown>): Promise<NotebookServer> {
    return (await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as NotebookServer;
  }

  /** Log tails of every process, for a failure message. */
  tails(): string {
    return [this.api?.tail(15), ...this.operators.map((o) => o.proc?.tail(15))].filter(Boolean).join('\n');
  }

  async stop(): Promise<void> {
    for (const o of this.operators) await o.stop().catch(() => undefined);
    await this.api?.stop().catch(() => undefined);
    await this.forwardHandle?.close().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
