import { mkdirSync, statSync } from 'node:fs';
import http2, { type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import YAML from 'yaml';
import { limitConnections } from '../connection-limits.js';
import { createLogger, errorFields, type Logger } from '../log.js';
import { loadSigningKey } from './auth/serviceaccounts.js';
import { ensureTokenFile, newToken, TokenAuth, type User } from './auth/tokens.js';
import { makeDirPrivate, writePrivateFile } from './files.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { StreamRequest, StreamResponse, type Req, type Res } from './request/http.js';
import { ApiServer } from './server.js';
import { Store } from './storage/sqlite.js';
import { ensureTls } from './tls.js';

export { parseTokenFile } from './auth/tokens.js';
export type { Role, User } from './auth/tokens.js';
export { DEFAULT_LIMITS, type ServerLimits } from './limits.js';

export interface ApiServerOptions {
  dataDir: string;
  host?: string;
  /** 0 = a random free port. Default 6443. */
  port?: number;
  /** Token file (see auth.ts for the format). Default `<dataDir>/tokens.csv`, created with an admin token. */
  tokenFile?: string;
  /** How many changes the watch history keeps; older resourceVersions get 410 Gone. Default 10000. */
  watchWindow?: number;
  /** How often watches that asked for bookmarks get one. Default 15 s. */
  bookmarkIntervalMs?: number;
  /** Longest a watch stays open before the server ends it (clients re-watch). Default 3600 s. */
  maxWatchSeconds?: number;
  /** Events older than this are deleted (kube's --event-ttl). Default 3600 s. */
  eventTtlSeconds?: number;
  /**
   * SQLite synchronous mode. NORMAL (default): an acknowledged write survives kill -9 of the server
   * (WAL written at commit) but not an OS crash or power loss. FULL: also fsyncs the WAL at each
   * group commit (as etcd fsyncs each batch); the fsync waits on the writer thread, so creates
   * run at 95–107% of NORMAL's rate where an fsync takes ~0.4 ms (bench/apiserver, P6).
   * CLI: `--synchronous` / NBSWARM_SYNCHRONOUS.
   */
  synchronous?: 'NORMAL' | 'FULL';
  /** Where the server logs (`nbswarm up` passes the operator's). Default: warnings and errors to stderr. */
  log?: Logger;
  /** What one request, user, watch or connection may take; unset ones are DEFAULT_LIMITS (limits.ts, README "Limits"). */
  limits?: Partial<ServerLimits>;
}

export interface RunningApiServer {
  url: string;
  host: string;
  port: number;
  caPem: string;
  dataDir: string;
  adminToken: string;
  /** Admin kubeconfig written in dataDir. */
  kubeconfigPath: string;
  close(): Promise<void>;
}

export function buildKubeconfig(opts: { server: string; caPem: string; user: string; token: string; namespace?: string }): string {
  const name = 'nbswarm';
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: opts.server, 'certificate-authority-data': Buffer.from(opts.caPem).toString('base64') } }],
    users: [{ name: opts.user, user: { token: opts.token } }],
    contexts: [{ name, context: { cluster: name, user: opts.user, ...(opts.namespace ? { namespace: opts.namespace } : {}) } }],
    'current-context': name,
    preferences: {},
  });
}

export async function startApiServer(opts: ApiServerOptions): Promise<RunningApiServer> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? createLogger({ level: 'warn', stderr: true });
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  makeDirPrivate(dataDir, log);
  // Wildcard listeners are reached by this machine's name too, so it goes into the certificate.
  const wildcard = host === '0.0.0.0' || host === '::';
  const tls = ensureTls(dataDir, wildcard ? ['127.0.0.1', hostname()] : [host]);
  const tokenFile = resolve(opts.tokenFile ?? join(dataDir, 'tokens.csv'));
  let adminToken = ensureTokenFile(tokenFile);
  const extra = new Map<string, User>();
  if (!adminToken) {
    // A user-provided token file without an admin: keep a private admin token in the data dir.
    adminToken = newToken();
    extra.set(adminToken, { name: 'admin', role: 'admin', namespaces: null });
  }
  const auth = new TokenAuth(tokenFile, extra, log);
  if ((statSync(tokenFile).mode & 0o077) !== 0) log.warn('the token file can be read by other users', { file: tokenFile, hint: `chmod 600 ${tokenFile}` });
  const store = new Store(join(dataDir, 'state.db'), opts.watchWindow ?? 10000, opts.synchronous ?? 'NORMAL');
  const api = new ApiServer({
    storage: store,
    authenticator: auth,
    log,
    limits,
    caPem: tls.caPem,
    serviceAccountKey: loadSigningKey(join(dataDir, 'service-account.key')),
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 15000,
    maxWatchSeconds: opts.maxWatchSeconds ?? 3600,
    eventTtlSeconds: opts.eventTtlSeconds ?? 3600,
  });

  const headersMs = limits.headersTimeoutSeconds * 1000;
  const server = http2.createSecureServer({
    key: tls.keyPem,
    cert: tls.certPem,
    allowHTTP1: true,
    settings: { maxConcurrentStreams: 1000 },
    // A connection must finish its TLS handshake as soon as its headers would be due.
    handshakeTimeout: headersMs,
  });
  // HTTP/1.1 (node:http's timeouts): headers within headersTimeout, the whole request within the
  // request timeout, and a connection idle between requests is closed. They are enforced every
  // connectionsCheckingInterval, so that is kept well under the shortest of them.
  Object.assign(server, {
    headersTimeout: headersMs,
    requestTimeout: Math.max(headersMs, limits.requestTimeoutSeconds * 1000),
    keepAliveTimeout: limits.idleTimeoutSeconds * 1000,
    connectionsCheckingInterval: Math.max(250, Math.min(30_000, headersMs / 4)),
  });
  // HTTP/2: a session without streams for the idle timeout is closed (GOAWAY). node:http2's own
  // session timeout counts frames, so it would also end a quiet watch.
  server.on('session', (session: ServerHttp2Session) => closeWhenIdle(session, limits.idleTimeoutSeconds * 1000));
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (s: TLSSocket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // Responses are whole (one write each); Nagle would hold one back until the client's delayed ACK.
    s.setNoDelay(true);
  });
  const failed = (e: unknown) => log.error('request failed', errorFields(e));
  server.on('request', (req, res) => {
    // HTTP/1.1 only: HTTP/2 streams are answered from 'stream' below.
    if (req.httpVersionMajor >= 2) return;
    api.handle(req as unknown as Req, res as unknown as Res).catch(failed);
  });
  // The 'request' listener made node:http2 answer every HTTP/2 stream through its compatibility
  // objects as well; the server serves the streams itself (see StreamRequest).
  server.removeAllListeners('stream');
  server.on('stream', (stream, headers) => {
    api.handle(new StreamRequest(stream, headers), new StreamResponse(stream)).catch(failed);
  });
  server.on('sessionError', () => {});
  server.on('tlsClientError', () => {});
  limitConnections(
    server,
    { total: limits.maxConnections, perClient: limits.maxConnectionsPerClient },
    { log, what: 'the API server', refused: (why) => api.metrics.refusedConnections.inc({ reason: why }) },
  );
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 6443, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `https://${urlHost}:${port}`;
  const kubeconfigPath = join(dataDir, 'admin.kubeconfig');
  writePrivateFile(kubeconfigPath, buildKubeconfig({ server: url, caPem: tls.caPem, user: 'admin', token: adminToken }));
  log.info('api server listening', { url, dataDir });
  let closed: Promise<void> | null = null;
  return {
    url,
    host,
    port,
    caPem: tls.caPem,
    dataDir,
    adminToken,
    kubeconfigPath,
    close() {
      closed ??= (async () => {
        api.close();
        await new Promise<void>((ok) => {
          server.close(() => ok());
          for (const s of sockets) s.destroy();
        });
        await store.close();
      })();
      return closed;
    },
  };
}

/** Closes an HTTP/2 session once it has had no stream for `idleMs`. */
function closeWhenIdle(session: ServerHttp2Session, idleMs: number): void {
  let streams = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (streams === 0 && !session.closed && !session.destroyed) session.close();
    }, idleMs);
    timer.unref();
  };
  session.on('stream', (stream) => {
    streams++;
    clearTimeout(timer);
    stream.once('close', () => {
      if (--streams === 0) arm();
    });
  });
  session.once('close', () => clearTimeout(timer));
  arm();
}
