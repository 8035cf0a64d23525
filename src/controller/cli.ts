/**
 * `nbswarm up` (embedded API server + CRD + operator on the local Docker) and
 * `nbswarm operator --kubeconfig …` (operator only, any Kubernetes API server).
 * Start-up failures print one line with a hint and exit 2 — no stack traces for expected problems.
 */
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/types.js';
import type { Command } from 'commander';
import http from 'node:http';
import { resolve } from 'node:path';
import { BackendError, type Backend } from '../backends/types.js';
import { createBackend } from '../backends/docker.js';
import { PolicyError, loadPolicy } from '../config/policy.js';
import type { Policy } from '../config/types.js';
import type { RunningApiServer } from '../apiserver/index.js';
import { installCrd } from './crd.js';
import { createLogger, type Logger } from '../log.js';
import { startOperator, type OperatorHandle } from './operator.js';
import { makeApiClient } from './kube.js';
import { describePortInUse } from '../port-holder.js';
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
  if (err instanceof StartupError || err instanceof BackendError) line = `nbswarm: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}`;
  else if (err instanceof PolicyError) line = `nbswarm: ${err.message}`;
  else line = `nbswarm: ${(err as Error)?.message ?? String(err)}`;
  process.stderr.write(line + '\n');
  process.exit(2);
}

function readPolicy(file: string | undefined, backend?: string): Policy {
  const overrides: Partial<Policy> = {};
  if (backend) overrides.backend = backend as Policy['backend'];
  return loadPolicy({ file, env: process.env, overrides });
}

async function connectBackend(policy: Policy, log: Logger): Promise<Backend> {
  try {
    return await createBackend(policy.backend, {
      pullPolicy: policy.pullPolicy,
      log,
      registry: policy.registry,
      builderImage: policy.sourceImages.builderImage,
    });
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
    if (code === 404) throw new StartupError(`the API server at ${server} does not serve ${PLURAL}.${GROUP}`, 'install the CRD: kubectl apply -f crds/notebookserver.yaml');
    if (code === 401 || code === 403) throw new StartupError(`the API server at ${server} refused to list ${PLURAL} (HTTP ${code})`, 'the kubeconfig user needs list/watch on notebookservers and patch on notebookservers/status');
    throw new StartupError(`cannot reach the API server at ${server}: ${(err as Error).message.split('\n')[0]}`, 'is the API server running, and is this the right kubeconfig?');
  }
}

function serveMetrics(op: OperatorHandle, port: number, log: Logger): http.Server {
  const srv = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      op.metricsRegistry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': op.metricsRegistry.contentType });
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
      res.writeHead(200, { 'content-type': 'application/json' });
      // The per-key table (one entry per resource) only when asked: a scrape must stay cheap at 10,000 resources.
      const stats = op.stats();
      const perKey = new URL(req.url, 'http://x').searchParams.has('perKey');
      res.end(JSON.stringify({ ...stats, queue: perKey ? { ...stats.queue, perKey: stats.queue.perKey } : stats.queue, memory: process.memoryUsage() }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  srv.listen(port, '127.0.0.1', () => log.info('metrics on http://127.0.0.1:' + port + '/metrics'));
  return srv;
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
    throw new StartupError('no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set and this is not a Kubernetes pod', 'pass --kubeconfig FILE (the file `nbswarm up` printed, or one for your cluster)');
  }
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault(); // KUBECONFIG may list several files; merged as kubectl merges them
  } catch (err) {
    throw new StartupError(`cannot read kubeconfig ${file ?? fromEnv}: ${(err as Error).message}`, 'pass the file `nbswarm up` printed, or one for your cluster');
  }
  return kc;
}

type EmbeddedServer = RunningApiServer;

async function startEmbedded(dataDir: string, port: number, address: string): Promise<EmbeddedServer> {
  try {
    // Loaded here, not at start-up: `nbswarm operator` never needs the server's modules.
    const { startApiServer } = await import('../apiserver/index.js');
    return await startApiServer({ dataDir, port, host: address });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new StartupError(describePortInUse(port, address), 'pass another --port, or stop that process');
    throw new StartupError(`cannot start the embedded API server: ${(err as Error).message}`, `check that ${dataDir} is writable`);
  }
}

export function registerOperatorCommands(program: Command): void {
  program
    .command('up')
    .description('run everything on this host: embedded API server, the NotebookServer CRD, and the operator on the local Docker')
    .option('--data-dir <dir>', 'where the API server keeps its database, TLS and kubeconfig', './.nbswarm')
    .option('--port <port>', 'API server port', '6443')
    .option('--address <ip>', 'API server listen address', '127.0.0.1')
    .option('--policy <file>', 'operator policy (YAML); default $NBSWARM_POLICY or built-in defaults')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0')
    .action(async (o: { dataDir: string; port: string; address: string; policy?: string; backend?: string; metricsPort: string }) => {
      const log = createLogger();
      let srv: EmbeddedServer | undefined;
      let op: OperatorHandle | undefined;
      let backend: Backend | undefined;
      try {
        const policy = readPolicy(o.policy, o.backend);
        backend = await connectBackend(policy, log);
        await checkBackend(backend);
        const dataDir = resolve(o.dataDir);
        srv = await startEmbedded(dataDir, Number(o.port), o.address);
        const kc = new KubeConfig();
        kc.loadFromFile(srv.kubeconfigPath);
        const crd = await installCrd(kc);
        log.info(`CRD notebookservers.nbswarm.io ${crd}`);
        op = await startOperator({ kubeconfig: kc, policy, backend, log });
        const metrics = Number(o.metricsPort) ? serveMetrics(op, Number(o.metricsPort), log) : undefined;
        process.stdout.write(upBanner({ apiUrl: srv.url, backend: backend.kind, kubeconfigPath: srv.kubeconfigPath }));
        const s = srv;
        const b = backend;
        const opRef = op;
        onSignals(async () => {
          metrics?.close();
          await opRef.stop();
          await b.close();
          await s.close();
        }, log);
      } catch (err) {
        await op?.stop().catch(() => undefined);
        await backend?.close().catch(() => undefined);
        await srv?.close().catch(() => undefined);
        fail(err);
      }
    });

  program
    .command('operator')
    .description('run the operator against a Kubernetes API server (embedded or real) given a kubeconfig')
    .option('--kubeconfig <file>', 'kubeconfig of the API server to watch (default: $KUBECONFIG; inside a Kubernetes pod, its service account)')
    .option('--policy <file>', 'operator policy (YAML)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease (default: --namespace or "default")')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0')
    .action(async (o: { kubeconfig?: string; policy?: string; namespace?: string; leaseNamespace?: string; backend?: string; metricsPort: string }) => {
      const log = createLogger();
      let backend: Backend | undefined;
      try {
        const policy = readPolicy(o.policy, o.backend);
        const kc = loadKubeconfig(o.kubeconfig);
        await preflightApi(kc, o.namespace);
        backend = await connectBackend(policy, log);
        await checkBackend(backend);
        const op = await startOperator({ kubeconfig: kc, policy, backend, log, namespace: o.namespace, leaseNamespace: o.leaseNamespace });
        const metrics = Number(o.metricsPort) ? serveMetrics(op, Number(o.metricsPort), log) : undefined;
        const b = backend;
        onSignals(async () => {
          metrics?.close();
          await op.stop();
          await b.close();
        }, log);
      } catch (err) {
        await backend?.close().catch(() => undefined);
        fail(err);
      }
    });
}
