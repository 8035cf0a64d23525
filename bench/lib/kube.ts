/**
 * A lean Kubernetes API client for the bench: HTTPS with keep-alive from a kubeconfig (parsed by
 * @kubernetes/client-node, so the same auth works against the embedded server or a real cluster).
 * The bench drives the API as a client would (create, watch for Ready) without client-node's
 * per-call overhead skewing the latency figures.
 */
import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { replyText } from '../../src/util/http-reply.js';
import { sleep } from './stats.js';

export type Obj = Record<string, any>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`);
  }
}

export class Kube {
  private constructor(
    readonly server: URL,
    private readonly base: https.RequestOptions,
    readonly agent: https.Agent | http.Agent,
  ) {}

  static async fromKubeconfig(kubeconfig: string, opts: { maxSockets?: number } = {}): Promise<Kube> {
    const kc = new KubeConfig();
    if (kubeconfig.trimStart().startsWith('apiVersion') || kubeconfig.includes('\n')) kc.loadFromString(kubeconfig);
    else kc.loadFromFile(kubeconfig);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const base: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(base);
    const server = new URL(cluster.server);
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets ?? 64 };
    const agent =
      server.protocol === 'https:'
        ? new https.Agent({ ...agentOpts, ca: base.ca, cert: base.cert, key: base.key, rejectUnauthorized: base.rejectUnauthorized })
        : new http.Agent(agentOpts);
    return new Kube(server, base, agent);
  }

  /** A second client on the same server with its own connection pool (for watchers). */
  clone(maxSockets = 4): Kube {
    const agentOpts = { keepAlive: true, maxSockets };
    const agent =
      this.server.protocol === 'https:'
        ? new https.Agent({ ...agentOpts, ca: this.base.ca, cert: this.base.cert, key: this.base.key, rejectUnauthorized: this.base.rejectUnauthorized })
        : new http.Agent(agentOpts);
    return new Kube(this.server, this.base, agent);
  }

  private mod() {
    return this.server.protocol === 'https:' ? https : http;
  }

  private opts(method: string, path: string, headers: Record<string, string | number> = {}): https.RequestOptions {
    return {
      protocol: this.server.protocol,
      hostname: this.server.hostname,
      port: this.server.port,
      method,
      path,
      agent: this.agent,
      headers: { ...(this.base.headers ?? {}), accept: 'application/json', ...headers },
    };
  }

  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Obj> {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers: Record<string, string | number> = data ? { 'content-type': contentType, 'content-length': data.length } : {};
    return new Promise((resolve, reject) => {
      const req = this.mod().request(this.opts(method, path, headers), (res) => {
        replyText(res).then((text) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(new ApiError(status, text, `${method} ${path}`));
          try {
            resolve(text ? JSON.parse(text) : {});
          } catch (err) {
            reject(err);
          }
        }, reject);
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  nsPath(namespace: string, name?: string): string {
    return `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}${name ? `/${name}` : ''}`;
  }

  async ensureNamespace(name: string): Promise<void> {
    try {
      await this.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) throw err;
    }
  }

  /** Install (or keep) a CRD and wait until the group/version serves its plural. */
  async ensureCrd(crd: object, timeoutMs = 20_000): Promise<void> {
    try {
      await this.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) throw err;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const list = await this.request('GET', `/apis/${GROUP}/${VERSION}`);
        if ((list.resources ?? []).some((r: Obj) => r.name === PLURAL)) return;
      } catch {
        /* not served yet */
      }
      if (Date.now() > deadline) throw new Error(`CRD ${PLURAL}.${GROUP} not served within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  create(namespace: string, obj: Obj): Promise<Obj> {
    return this.request('POST', this.nsPath(namespace), obj);
  }

  async remove(namespace: string, name: string): Promise<void> {
    try {
      await this.request('DELETE', this.nsPath(namespace, name));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }

  get(namespace: string, name: string): Promise<Obj> {
    return this.request('GET', this.nsPath(namespace, name));
  }

  list(namespace?: string, query = ''): Promise<Obj> {
    const p = namespace ? this.nsPath(namespace) : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
    return this.request('GET', p + (query ? `?${query}` : ''));
  }

  /**
   * GET a list and time it without parsing: first byte and last byte after the request was sent
   * (what the API server and the wire take; Kubernetes' API latency SLO is the server's side).
   */
  listRaw(namespace: string): Promise<{ firstByteMs: number; lastByteMs: number; bytes: number; text: string }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let first = 0;
      const req = this.mod().request(this.opts('GET', this.nsPath(namespace)), (res) => {
        res.once('data', () => (first = performance.now() - t0));
        replyText(res).then((text) => {
          const lastByteMs = performance.now() - t0;
          if ((res.statusCode ?? 0) !== 200) return reject(new ApiError(res.statusCode ?? 0, text, `GET ${this.nsPath(namespace)}`));
          resolve({ firstByteMs: first, lastByteMs, bytes: text.length, text });
        }, reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  mergePatch(namespace: string, name: string, patch: Obj): Promise<Obj> {
    return this.request('PATCH', this.nsPath(namespace, name), patch, 'application/merge-patch+json');
  }

  /**
   * Stream a watch; `onEvent` gets each event with the local receive time. The returned function
   * ends it. `onEnd` is called if the server closes the stream.
   *
   * A line's receive time is taken when its bytes arrive, and the line is parsed afterwards, once
   * every connection with bytes waiting has been read (setImmediate): P4's 100 watchers share this
   * one thread, and parsing each event as it arrived charged the watcher read last with the
   * JSON.parse of the 99 read before it — the bench's own CPU, which 100 separate clients would
   * spend in parallel, not the server's delivery time.
   */
  watch(path: string, onEvent: (ev: { type: string; object: Obj }, receivedAt: number) => void, onEnd?: (err?: Error) => void): Promise<() => void> {
    return new Promise((resolve, reject) => {
      let started = false;
      const req = this.mod().request(this.opts('GET', path), (res) => {
        if ((res.statusCode ?? 0) !== 200) {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => reject(new ApiError(res.statusCode ?? 0, b, `watch ${path}`)));
          return;
        }
        started = true;
        resolve(() => {
          req.destroy();
        });
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = performance.now();
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) arrived(() => onEvent(JSON.parse(line), at));
          }
        });
        res.on('end', () => onEnd?.());
        res.on('error', (e) => onEnd?.(e));
      });
      req.on('error', (e) => (started ? onEnd?.(e) : reject(e)));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Watch lines that arrived and wait to be parsed, in order of arrival (see Kube.watch). */
const arrivedLines: Array<() => void> = [];

function arrived(parse: () => void): void {
  if (arrivedLines.push(parse) > 1) return;
  setImmediate(() => {
    for (const parse of arrivedLines.splice(0)) parse();
  });
}

/** A NotebookServer the bench creates: the test image's own httpd on 8888 (mode custom, no command). */
export function benchServer(name: string, opts: { user?: string; stopped?: boolean; image?: string; labels?: Record<string, string> } = {}): NotebookServer {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, labels: opts.labels },
    spec: {
      user: opts.user ?? name,
      image: opts.image ?? 'local/busybox:test',
      // The test image's own server, the same argv the raw baseline runs (its CMD).
      mode: 'custom',
      command: ['httpd', '-f', '-p', '8888', '-h', '/www'],
      stopped: opts.stopped ?? false,
    },
  } as NotebookServer;
}

export function isReady(obj: Obj): boolean {
  const conds: Obj[] = obj?.status?.conditions ?? [];
  return conds.some((c) => c.type === 'Ready' && c.status === 'True') && !!obj?.status?.endpoint?.hostUrl;
}

/**
 * Tracks, through one watch, when each object of a namespace first became Ready (with an endpoint)
 * and when it was deleted, so hundreds of objects can be waited on without polling the API.
 */
export class ReadyTracker {
  readonly readyAt = new Map<string, { at: number; hostUrl: string; obj: Obj }>();
  readonly deletedAt = new Map<string, number>();
  readonly failed = new Map<string, string>();
  readonly phase = new Map<string, string>();
  /** Names seen and not deleted. */
  readonly present = new Set<string>();
  /** When set, every event is appended as [Date.now(), name, type, phase, message]. */
  timeline?: Array<[number, string, string, string, string]>;
  /** MODIFIED events seen (each is one API write by someone: the operator's status patches). */
  modified = 0;
  private waiters: Array<() => void> = [];
  private stopWatch?: () => void;
  private closed = false;
  lastRv = '';

  constructor(
    private readonly kube: Kube,
    private readonly namespace: string,
  ) {}

  async start(): Promise<void> {
    const list = await this.kube.list(this.namespace);
    for (const o of list.items ?? []) this.observe('ADDED', o, performance.now());
    this.lastRv = list.metadata?.resourceVersion ?? '';
    await this.open();
  }

  private async open(): Promise<void> {
    const path = `${this.kube.nsPath(this.namespace)}?watch=1&allowWatchBookmarks=true${this.lastRv ? `&resourceVersion=${this.lastRv}` : ''}`;
    this.stopWatch = await this.kube.watch(
      path,
      (ev, at) => this.observe(ev.type, ev.object, at),
      () => {
        // Servers end watches after a timeout; reopen from the last resourceVersion seen.
        if (!this.closed) void this.open().catch(() => undefined);
      },
    );
  }

  private observe(type: string, obj: Obj, at: number): void {
    const rv = obj?.metadata?.resourceVersion;
    if (rv) this.lastRv = rv;
    if (type === 'BOOKMARK' || type === 'ERROR') return;
    const name: string = obj?.metadata?.name;
    if (!name) return;
    if (type === 'MODIFIED') this.modified++;
    this.timeline?.push([Date.now(), name, type, String(obj?.status?.phase ?? ''), String(obj?.status?.message ?? '').slice(0, 120)]);
    if (type === 'DELETED') this.present.delete(name);
    else this.present.add(name);
    if (type !== 'DELETED' && obj?.status?.phase) this.phase.set(name, obj.status.phase);
    if (type === 'DELETED') {
      this.phase.delete(name);
      this.deletedAt.set(name, at);
      this.readyAt.delete(name);
    } else if (isReady(obj)) {
      if (!this.readyAt.has(name)) this.readyAt.set(name, { at, hostUrl: obj.status.endpoint.hostUrl, obj });
      this.failed.delete(name);
    } else if (obj?.status?.phase === 'Failed') {
      this.failed.set(name, obj.status.message ?? 'Failed');
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolve when `pred()` holds, re-checked on every event; reject after timeoutMs. */
  async until(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  stop(): void {
    this.closed = true;
    this.stopWatch?.();
  }
}
