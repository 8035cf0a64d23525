/**
 * `nbswarm up` (embedded API server + CRD + operator on the local Docker) and
 * `nbswarm operator --kubeconfig …` (operator only, any Kubernetes API server).
 * Start-up failures print one line with a hint and exit 2 — no stack traces for expected problems.
 */
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/types.js';
import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { BackendError, type Backend } from '../backends/types.js';
import { connectDocker, createBackend } from '../backends/docker.js';
import { instrumentDocker, type DockerMetrics } from '../backends/docker-metrics.js';
import { PolicyError, enabledModes, loadPolicy } from '../config/policy.js';
import type { Policy } from '../config/types.js';
import type { RunningApiServer } from '../apiserver/index.js';
import { addLogOptions, explain, loggerFromOptions, type LogOptions } from '../commands/options.js';
import { installCrd } from './crd.js';
import type { Logger } from '../log.js';
import { startOperator, type OperatorHandle } from './operator.js';
import { makeApiClient } from './kube.js';
import { describePortInUse, listenOrExplain, PortInUseError } from '../port-holder.js';
import { feedStatusPage, startStatusPage, type StatusPage } from '../statuspage/index.js';
import { upBanner } from '../up-banner.js';

export class StartupError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

function fail(err: unknown): never {
  let line: string;
  if (err instanceof PolicyError) line = `nbswarm: ${err.message}`;
  else line = explain(err).line;
  process.stderr.write(line + '\n');
  process.exit(2);
}

function readPolicy(file: string | undefined, backend?: string): Policy {
  const overrides: Partial<Policy> = {};
  if (backend) overrides.backend = backend as Policy['backend'];
  return loadPolicy({ file, env: process.env, overrides });
}

/** The Docker connection with every API call counted into `registry`, and the backend on it. */
async function connectBackend(policy: Policy, log: Logger, registry: Registry): Promise<{ backend: Backend; docker: Docker; docker$: DockerMetrics }> {
  const docker = connectDocker();
  const docker$ = instrumentDocker(docker, registry);
  try {
    const backend = await createBackend(policy.backend, {
      docker,
      pullPolicy: policy.pullPolicy,
      log,
      registry: policy.registry,
      builderImage: policy.sourceImages.builderImage,
    });
    return { backend, docker, docker$ };
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new StartupError(`cannot use Docker: ${(err as Error).message}`, 'is dockerd running and is /var/run/docker.sock (or DOCKER_HOST) reachable?');
  }
}

/** Ask the daemon once, so "Docker unreachable" is a start-up error, not a stream of reconcile errors. */
async function checkBackend(backend: Backend): Promise<void> {
  try {
    await backend.listManaged();
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new StartupError(`Docker did not answer: ${(err as Error).message}`, 'start dockerd, or set DOCKER_HOST');
  }
}

/** One list call, so a wrong kubeconfig or a missing CRD is a clear start-up error rather than retries forever. */
async function preflightApi(kc: KubeConfig, namespace?: string): Promise<void> {
  const api = makeApiClient(kc, CustomObjectsApi);
  const server = kc.getCurrentCluster()?.server ?? '(no server in kubeconfig)';
  try {
    if (namespace) await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, limit: 1 });
    else await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 });
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404)
      throw new StartupError(`the API server at ${server} does not serve ${PLURAL}.${GROUP}`, 'install the CRD: kubectl apply -f crds/notebookserver.yaml');
    if (code === 401 || code === 403)
      throw new StartupError(
        `the API server at ${server} refused to list ${PLURAL} (HTTP ${code})`,
        'the kubeconfig user needs list/watch on notebookservers and patch on notebookservers/status',
      );
    throw new StartupError(
      `cannot reach the API server at ${server}: ${(err as Error).message.split('\n')[0]}`,
      'is the API server running, and is this the right kubeconfig?',
    );
  }
}

/**
 * /metrics (the operator's and Docker's), /stats and /healthz on 127.0.0.1:port. Bound before the
 * operator starts, so a taken port is a start-up error naming its holder; /stats answers 503 until
 * the operator runs.
 */
async function serveMetrics(registry: Registry, op: () => OperatorHandle | undefined, port: number, log: Logger): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        })
        .catch(() => {
          res.writeHead(500);
          res.end();
        });
    } else if (req.url === '/healthz' || req.url === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    } else if (req.url === '/stats' || req.url?.startsWith('/stats?')) {
      const running = op();
      if (!running) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('the operator is starting');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      // The per-key table (one entry per resource) only when asked: a scrape must stay cheap at 10,000 resources.
      const stats = running.stats();
      const perKey = new URL(req.url, 'http://x').searchParams.has('perKey');
      res.end(JSON.stringify({ ...stats, queue: perKey ? { ...stats.queue, perKey: stats.queue.perKey } : stats.queue, memory: process.memoryUsage() }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await listenOrExplain(srv, port, '127.0.0.1', '--metrics-port');
  log.info(`metrics on http://127.0.0.1:${port}/metrics`);
  return srv;
}

/** Runs every step in order, also after one fails (a failed start still frees what it took); the first error is thrown at the end. */
async function stopInOrder(steps: Array<() => Promise<unknown> | undefined>): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

function onSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) {
      log.warn(`second ${sig}: exiting now`);
      process.exit(130);
    }
    stopping = true;
    log.info(`${sig}: stopping`);
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error('stop failed', { error: (err as Error).message });
        process.exit(1);
      });
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

/**
 * --kubeconfig, else $KUBECONFIG, else the pod's service account (what the Deployment in
 * manifests/kubernetes relies on): never client-node's silent fallback to http://localhost:8080.
 */
function loadKubeconfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  const fromEnv = process.env.KUBECONFIG;
  if (!file && !fromEnv) {
    if (process.env.KUBERNETES_SERVICE_HOST) {
      kc.loadFromCluster();
      return kc;
    }
    throw new StartupError(
      'no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set and this is not a Kubernetes pod',
      'pass --kubeconfig FILE (the file `nbswarm up` printed, or one for your cluster)',
    );
  }
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault(); // KUBECONFIG may list several files; merged as kubectl merges them
  } catch (err) {
    throw new StartupError(
      `cannot read kubeconfig ${file ?? fromEnv}: ${(err as Error).message}`,
      'pass the file `nbswarm up` printed, or one for your cluster',
    );
  }
  return kc;
}

type EmbeddedServer = RunningApiServer;

async function startEmbedded(dataDir: string, port: number, address: string, log: Logger): Promise<EmbeddedServer> {
  try {
    // Loaded here, not at start-up: `nbswarm operator` never needs the server's modules.
    const { startApiServer } = await import('../apiserver/index.js');
    return await startApiServer({ dataDir, port, host: address, log });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new StartupError(describePortInUse(port, address), 'pass another --port, or stop that process');
    throw new StartupError(`cannot start the embedded API server: ${(err as Error).message}`, `check that ${dataDir} is writable`);
  }
}

/**
 * The lease identity of `up`'s operator: the same for every start on one data directory, so `up`
 * restarted after a crash (kill -9 leaves the lease held) leads at once instead of waiting out the
 * lease of its dead predecessor. Only one `up` serves a data directory (its SQLite database).
 */
export function upIdentity(dataDir: string): string {
  return `${hostname()}-up-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}`;
}

interface StatusPageFlags {
  statusPort: string;
  statusAddress: string;
  statusTokenFile?: string;
  statusTlsCert?: string;
  statusTlsKey?: string;
}

function addStatusPageOptions(cmd: Command): Command {
  return cmd
    .option('--status-port <port>', `serve the status page on this port (0 = off)`, String(DEFAULT_STATUS_PORT))
    .option('--status-address <ip>', 'status page listen address; beyond loopback it asks for a token', '127.0.0.1')
    .option('--status-token-file <file>', 'tokens (one per line) that open the status page besides kubeconfig credentials the API server accepts')
    .option('--status-tls-cert <file>', 'PEM certificate: serve the status page over HTTPS (with --status-tls-key)')
    .option('--status-tls-key <file>', 'PEM private key of --status-tls-cert');
}

/** The default status page port; when another process holds it (and no port was asked for), any free port. */
const DEFAULT_STATUS_PORT = 6480;

function portNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new StartupError(`${flag} must be a port number (0-65535), not "${value}"`, `e.g. ${flag} 9090`);
  return n;
}

async function bindStatusPage(
  o: StatusPageFlags,
  explicitPort: boolean,
  kc: () => KubeConfig | undefined,
  namespace: string | undefined,
  log: Logger,
): Promise<{ page: StatusPage; url: string } | undefined> {
  const port = portNumber(o.statusPort, '--status-port');
  if (port === 0) return undefined;
  if (!!o.statusTlsCert !== !!o.statusTlsKey) throw new StartupError('--status-tls-cert and --status-tls-key go together', 'pass both, or neither');
  let tls: { cert: string; key: string } | undefined;
  try {
    tls = o.statusTlsCert ? { cert: readFileSync(o.statusTlsCert, 'utf8'), key: readFileSync(o.statusTlsKey!, 'utf8') } : undefined;
  } catch (err) {
    throw new StartupError(`cannot read the status page's TLS files: ${(err as Error).message}`, 'pass readable PEM files');
  }
  let tokenFileOk = true;
  if (o.statusTokenFile) {
    try {
      readFileSync(o.statusTokenFile);
    } catch {
      tokenFileOk = false;
    }
    if (!tokenFileOk) throw new StartupError(`cannot read --status-token-file ${o.statusTokenFile}`, 'pass a readable file with one token per line');
  }
  const config = { address: o.statusAddress, port, tokenFile: o.statusTokenFile, tls, kubeconfig: kc, namespace, log };
  try {
    return await startStatusPage(config);
  } catch (err) {
    if (explicitPort || !(err instanceof PortInUseError)) throw err;
    log.warn(`status page: ${err.message}; using another port`);
    return startStatusPage({ ...config, port: 0 });
  }
}

/** What `up` and `operator` run besides the operator: the metrics port and the status page. */
class Extras {
  metrics?: http.Server;
  status?: { page: StatusPage; url: string };
  stopFeed?: () => Promise<void>;

  /** Feed the status page (when one is bound) from the running operator, Docker and the API. */
  async feed(
    op: OperatorHandle,
    backend: Backend,
    connected: { docker: Docker; docker$: DockerMetrics },
    kubeconfig: KubeConfig,
    namespace: string | undefined,
    log: Logger,
  ): Promise<void> {
    if (!this.status) return;
    this.stopFeed = await feedStatusPage(this.status.page, {
      operator: op,
      backend,
      docker: connected.docker,
      kubeconfig,
      namespace,
      dockerReachable: connected.docker$.reachable,
      log: log.child({ component: 'statuspage' }),
    });
  }

  async close(): Promise<void> {
    await this.stopFeed?.().catch(() => undefined);
    await this.status?.page.close().catch(() => undefined);
    await new Promise<void>((r) => (this.metrics ? this.metrics.close(() => r()) : r()));
  }
}

export function registerOperatorCommands(program: Command): void {
  const up = program
    .command('up')
    .description('run everything on this host: embedded API server, the NotebookServer CRD, and the operator on the local Docker')
    .option('--data-dir <dir>', 'where the API server keeps its database, TLS and kubeconfig', './.nbswarm')
    .option('--port <port>', 'API server port', '6443')
    .option('--address <ip>', 'API server listen address', '127.0.0.1')
    .option('--policy <file>', 'operator policy (YAML); default $NBSWARM_POLICY or built-in defaults')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0');
  addStatusPageOptions(up);
  addLogOptions(up);
  up.action(
    async (o: { dataDir: string; port: string; address: string; policy?: string; backend?: string; metricsPort: string } & StatusPageFlags & LogOptions) => {
      const log = loggerFromOptions(o);
      let srv: EmbeddedServer | undefined;
      let op: OperatorHandle | undefined;
      let backend: Backend | undefined;
      const extras = new Extras();
      const stopEverything = () => stopInOrder([() => extras.close(), () => op?.stop(), () => backend?.close(), () => srv?.close()]);
      try {
        const policy = readPolicy(o.policy, o.backend);
        const registry = new Registry();
        const metricsPort = portNumber(o.metricsPort, '--metrics-port');
        if (metricsPort) extras.metrics = await serveMetrics(registry, () => op, metricsPort, log);
        // The status page binds now; the kubeconfig it checks tokens against exists once the API server runs.
        const kc = new KubeConfig();
        const loaded = () => (kc.getCurrentCluster() ? kc : undefined);
        extras.status = await bindStatusPage(o, up.getOptionValueSource('statusPort') !== 'default', loaded, undefined, log.child({ component: 'statuspage' }));
        const connected = await connectBackend(policy, log, registry);
        backend = connected.backend;
        await checkBackend(backend);
        const dataDir = resolve(o.dataDir);
        srv = await startEmbedded(dataDir, Number(o.port), o.address, log.child({ component: 'apiserver' }));
        kc.loadFromFile(srv.kubeconfigPath);
        const crd = await installCrd(kc, { modes: enabledModes(policy) });
        log.info(`CRD notebookservers.nbswarm.io ${crd}`);
        const opLog = log.child({ component: 'operator' });
        op = await startOperator({ kubeconfig: kc, policy, backend, log: opLog, registry, statusUrl: extras.status?.url, identity: upIdentity(dataDir) });
        await extras.feed(op, backend, connected, kc, undefined, log);
        process.stdout.write(upBanner({ apiUrl: srv.url, backend: backend.kind, kubeconfigPath: srv.kubeconfigPath, statusPageUrl: extras.status?.url }));
        onSignals(stopEverything, log);
      } catch (err) {
        await stopEverything().catch(() => undefined);
        fail(err);
      }
    },
  );

  const operator = program
    .command('operator')
    .description('run the operator against a Kubernetes API server (embedded or real) given a kubeconfig')
    .option('--kubeconfig <file>', 'kubeconfig of the API server to watch (default: $KUBECONFIG; inside a Kubernetes pod, its service account)')
    .option('--policy <file>', 'operator policy (YAML)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease (default "nbswarm": keep it where tenants cannot write)')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0');
  addStatusPageOptions(operator);
  addLogOptions(operator);
  operator.action(
    async (
      o: { kubeconfig?: string; policy?: string; namespace?: string; leaseNamespace?: string; backend?: string; metricsPort: string } & StatusPageFlags &
        LogOptions,
    ) => {
      const log = loggerFromOptions(o);
      let backend: Backend | undefined;
      let op: OperatorHandle | undefined;
      const extras = new Extras();
      const stopEverything = () => stopInOrder([() => extras.close(), () => op?.stop(), () => backend?.close()]);
      try {
        const policy = readPolicy(o.policy, o.backend);
        const kc = loadKubeconfig(o.kubeconfig);
        const registry = new Registry();
        const metricsPort = portNumber(o.metricsPort, '--metrics-port');
        if (metricsPort) extras.metrics = await serveMetrics(registry, () => op, metricsPort, log);
        extras.status = await bindStatusPage(
          o,
          operator.getOptionValueSource('statusPort') !== 'default',
          () => kc,
          o.namespace,
          log.child({ component: 'statuspage' }),
        );
        await preflightApi(kc, o.namespace);
        const connected = await connectBackend(policy, log, registry);
        backend = connected.backend;
        await checkBackend(backend);
        op = await startOperator({
          kubeconfig: kc,
          policy,
          backend,
          log: log.child({ component: 'operator' }),
          namespace: o.namespace,
          leaseNamespace: o.leaseNamespace,
          registry,
          statusUrl: extras.status?.url,
        });
        await extras.feed(op, backend, connected, kc, o.namespace, log);
        if (extras.status) log.info(`status page on ${extras.status.url}`);
        onSignals(stopEverything, log);
      } catch (err) {
        await stopEverything().catch(() => undefined);
        fail(err);
      }
    },
  );
}
