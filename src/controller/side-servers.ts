/** What `up` and `operator` serve besides the operator: /metrics, /stats and /healthz, and the status page. */
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { DockerMetrics } from '../backends/docker-metrics.js';
import type { Backend } from '../backends/types.js';
import type { Logger } from '../log.js';
import { limitConnections } from '../connection-limits.js';
import { listenOrExplain, PortInUseError } from '../port-holder.js';
import { feedStatusPage, startStatusPage, type StatusPage } from '../statuspage/index.js';
import type { OperatorHandle } from './operator.js';
import { portNumber, StartupError } from './startup.js';

/**
 * Connections the metrics port holds at once. A scraper or two and someone with curl need a
 * handful; the cap keeps a local flood of connections from taking the descriptors the operator's
 * Docker calls and watches need (they share the process).
 */
export const METRICS_MAX_CONNECTIONS = 100;
/** A request's headers are due within this; the whole request within METRICS_REQUEST_TIMEOUT_MS. */
export const METRICS_HEADERS_TIMEOUT_MS = 10_000;
export const METRICS_REQUEST_TIMEOUT_MS = 30_000;
/** A connection with nothing sent either way for this long is closed (a scrape takes milliseconds). */
export const METRICS_IDLE_TIMEOUT_MS = 10_000;

/**
 * /metrics (the operator's and Docker's), /stats and /healthz on 127.0.0.1:port. Bound before the
 * operator starts, so a taken port is a start-up error naming its holder; /stats answers 503 until
 * the operator runs. Loopback only, but any local process can connect: it holds at most
 * METRICS_MAX_CONNECTIONS, and a client that sends no request is cut off.
 */
export async function serveMetrics(
  registry: Registry,
  op: () => OperatorHandle | undefined,
  port: number,
  log: Logger,
  limits: { maxConnections?: number; idleTimeoutMs?: number } = {},
): Promise<http.Server> {
  // node:http enforces the request timeouts every connectionsCheckingInterval (a quarter of the
  // shortest here); they start with a request's first byte, so a connection that sends nothing is
  // closed by the idle timeout instead.
  const timeouts = {
    headersTimeout: METRICS_HEADERS_TIMEOUT_MS,
    requestTimeout: METRICS_REQUEST_TIMEOUT_MS,
    connectionsCheckingInterval: METRICS_HEADERS_TIMEOUT_MS / 4,
  };
  const srv = http.createServer(timeouts, (req, res) => {
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
  srv.setTimeout(limits.idleTimeoutMs ?? METRICS_IDLE_TIMEOUT_MS);
  // Every client is on loopback, mostly 127.0.0.1 itself: one address may hold them all.
  const total = limits.maxConnections ?? METRICS_MAX_CONNECTIONS;
  limitConnections(srv, { total, perClient: total }, { log, what: 'the metrics port' });
  await listenOrExplain(srv, port, '127.0.0.1', '--metrics-port');
  log.info(`metrics on http://127.0.0.1:${port}/metrics`);
  return srv;
}

export interface StatusPageFlags {
  statusPort: string;
  statusAddress: string;
  statusTokenFile?: string;
  statusTlsCert?: string;
  statusTlsKey?: string;
}

export function addStatusPageOptions(cmd: Command): Command {
  return cmd
    .option('--status-port <port>', `serve the status page on this port (0 = off)`, String(DEFAULT_STATUS_PORT))
    .option('--status-address <ip>', 'status page listen address; beyond loopback it asks for a token', '127.0.0.1')
    .option('--status-token-file <file>', 'tokens (one per line) that open the status page besides kubeconfig credentials the API server accepts')
    .option('--status-tls-cert <file>', 'PEM certificate: serve the status page over HTTPS (with --status-tls-key)')
    .option('--status-tls-key <file>', 'PEM private key of --status-tls-cert');
}

/** The default status page port; when another process holds it (and no port was asked for), any free port. */
const DEFAULT_STATUS_PORT = 6480;

export async function bindStatusPage(
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
export class Extras {
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
