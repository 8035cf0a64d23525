/**
 * The status page's HTTP server (`nbswarm up` / `nbswarm operator`, --status-port): the page and
 * its script and style, the live event stream, and the same state as JSON for scripts and
 * `nbswarm status`:
 *   GET /            the page            GET /events      server-sent events (snapshot, then changes)
 *   GET /api/state   JSON snapshot       GET /api/health  the operator's health as JSON
 *   GET /healthz     "ok" (no login)     GET|POST /login  token form (only when a login is needed)
 * It binds before the operator starts (a taken port is a start-up error naming its holder) and
 * shows "starting" until the operator's caches are attached.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { limitConnections } from '../connection-limits.js';
import type { Logger } from '../log.js';
import { listenOrExplain } from '../port-holder.js';
import { APP_CSS, APP_JS, INDEX_HTML, loginHtml } from './assets.js';
import { clientOf, SESSION_COOKIE, StatusAuth } from './auth.js';
import { HEARTBEAT_MS, MAX_CLIENTS, StatusFeed } from './hub.js';

export interface StatusPageOptions {
  address: string;
  /** 0: any free port. */
  port: number;
  auth: StatusAuth;
  log: Logger;
  /** PEM certificate and key: serve HTTPS (advised when bound beyond loopback). */
  tls?: { cert: string; key: string };
  /** The flag that set the port, named in a "port in use" error. */
  portFlag?: string;
  /** A connection with nothing sent either way for this long is closed. Default: four event-stream heartbeats. */
  idleTimeoutMs?: number;
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const MAX_LOGIN_BODY = 16 * 1024;
/** Connections the page holds at once: its event streams (MAX_CLIENTS) and the requests beside them. */
const MAX_CONNECTIONS = 4 * MAX_CLIENTS;
/** Connections one client address may hold: a browser opens about six per host; scripts a few more. */
const MAX_CONNECTIONS_PER_CLIENT = 100;
/** Four heartbeats of an event stream: only a connection that sends and gets nothing is that quiet. */
const IDLE_TIMEOUT_MS = 4 * HEARTBEAT_MS;

export class StatusPage {
  readonly feed: StatusFeed;
  private readonly server: http.Server;
  private url = '';

  constructor(private readonly o: StatusPageOptions) {
    this.feed = new StatusFeed(o.log);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        o.log.warn('status page request failed', { path: req.url, error: (err as Error).message });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    this.server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, handler) : http.createServer(handler);
    // Event streams stay open; only idle keep-alive sockets time out.
    this.server.requestTimeout = 0;
    // A connection that sends nothing (no request ever starts, so no request timeout applies) is
    // closed once idle; an event stream never goes that quiet (a heartbeat every HEARTBEAT_MS).
    this.server.setTimeout(o.idleTimeoutMs ?? IDLE_TIMEOUT_MS);
    // It shares the operator's process (and open files): a flood of connections must not take them.
    limitConnections(this.server, { total: MAX_CONNECTIONS, perClient: MAX_CONNECTIONS_PER_CLIENT }, { log: o.log, what: 'the status page' });
  }

  /** Bind the port; resolves to the page's URL. */
  async listen(): Promise<string> {
    await listenOrExplain(this.server, this.o.port, this.o.address, this.o.portFlag ?? '--status-port');
    const port = (this.server.address() as AddressInfo).port;
    const host = this.o.address.includes(':') ? `[${this.o.address}]` : this.o.address === '0.0.0.0' ? '127.0.0.1' : this.o.address;
    this.url = `${this.o.tls ? 'https' : 'http'}://${host}:${port}/`;
    return this.url;
  }

  get address(): string {
    return this.url;
  }

  async close(): Promise<void> {
    this.feed.close();
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://status');
    const path = url.pathname;
    if (path === '/healthz') return this.text(res, 200, 'ok');
    if (path === '/login') return this.login(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.text(res, 405, 'method not allowed');
    if (!(await this.o.auth.allows(req))) {
      if (this.tooManyRefusals(req, res)) return;
      if (path === '/' || path === '/index.html') {
        res.writeHead(303, { location: '/login', ...SECURITY_HEADERS });
        res.end();
        return;
      }
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="nbswarm status"', ...SECURITY_HEADERS });
      res.end(JSON.stringify({ error: 'a bearer token is needed: one the API server accepts for listing notebookservers, or one from --status-token-file' }));
      return;
    }
    switch (path) {
      case '/':
      case '/index.html':
        return this.asset(res, 'text/html; charset=utf-8', INDEX_HTML);
      case '/app.js':
        return this.asset(res, 'text/javascript; charset=utf-8', APP_JS);
      case '/app.css':
        return this.asset(res, 'text/css; charset=utf-8', APP_CSS);
      case '/events':
        if (this.feed.clientCount >= MAX_CLIENTS) return this.text(res, 503, 'too many open status pages');
        return this.feed.subscribe(res);
      case '/api/state':
        return this.json(res, await this.feed.snapshot());
      case '/api/health':
        return this.json(res, (await this.feed.healthNow()) ?? { starting: true });
      default:
        return this.text(res, 404, 'not found');
    }
  }

  /** A 429 for a client whose tokens the API server refused too often this minute (they are not checked now); false otherwise. */
  private tooManyRefusals(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const client = clientOf(req);
    const retryAfter = this.o.auth.retryAfterSeconds(client);
    if (retryAfter === undefined) return false;
    res.writeHead(429, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': String(retryAfter), ...SECURITY_HEADERS });
    res.end(`too many refused tokens from ${client}: no token is checked for it for ${retryAfter} s\n`);
    return true;
  }

  private async login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.o.auth.required) {
      res.writeHead(303, { location: '/', ...SECURITY_HEADERS });
      res.end();
      return;
    }
    if (req.method === 'GET') return this.asset(res, 'text/html; charset=utf-8', loginHtml(''));
    if (req.method !== 'POST') return this.text(res, 405, 'method not allowed');
    const body = await readBody(req, MAX_LOGIN_BODY);
    const token = body === undefined ? '' : (new URLSearchParams(body).get('token') ?? '').trim();
    if (!token || !(await this.o.auth.accepts(token, clientOf(req)))) {
      if (this.tooManyRefusals(req, res)) return;
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.end(
        loginHtml('That token was not accepted: use a token the Kubernetes API server accepts for `kubectl get nbs`, or one from the --status-token-file.'),
      );
      return;
    }
    const secure = this.o.tls ? '; Secure' : '';
    res.writeHead(303, {
      location: '/',
      'set-cookie': `${SESSION_COOKIE}=${this.o.auth.newSession()}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200${secure}`,
      ...SECURITY_HEADERS,
    });
    res.end();
  }

  private asset(res: http.ServerResponse, type: string, body: string): void {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache', ...SECURITY_HEADERS });
    res.end(body);
  }

  private json(res: http.ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...SECURITY_HEADERS });
    res.end(JSON.stringify(body));
  }

  private text(res: http.ServerResponse, code: number, body: string): void {
    res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
    res.end(body);
  }
}

/** The request body as text, or undefined when it is larger than `max` bytes. */
function readBody(req: http.IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
