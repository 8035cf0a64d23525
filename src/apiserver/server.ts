import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import jsonpatch from 'fast-json-patch';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import YAML from 'yaml';
import { authorize, type TokenAuth, type User, type Verb } from './auth.js';
import { ApiError, alreadyExists, badRequest, conflict, gone, invalid, notFound, pathNotFound } from './errors.js';
import { decodeK8sProtobuf } from './protobuf.js';
import { hashOf, openapiV2, openapiV2Protobuf, openapiV3 } from './openapi.js';
import { apiResource, builtins, crdProblems, defFromCrd, toTable, VERBS_NS, type ResDef, type VersionDef } from './resources.js';
import { applyDefaults, prune, toCauses, validateMetadata, type Cause } from './schema.js';
import { apply as ssaApply, conflictMessage, trackUpdate } from './ssa.js';
import { AlreadyExistsError, type Obj, type Store, type StoreEvent } from './store.js';
import type { ApiRequestRecord } from './index.js';
import {
  deepEqual, fieldMatches, isObj, mergePatch, matches, nowIso, parseFieldSelector, parseLabelSelector,
  SelectorError, strategicMerge, type FieldReq, type Requirement,
} from './util.js';

export const MAX_BODY = 3 * 1024 * 1024;
const SERVER_VERSION = {
  major: '1', minor: '32', gitVersion: 'v1.32.0-nbswarm', gitCommit: 'nbswarm', gitTreeState: 'clean',
  buildDate: '2026-11-25T00:00:00Z', goVersion: 'n/a', compiler: 'node', platform: `${process.platform}/${process.arch}`,
};

/** The request/response surface shared by node:http and node:http2's compatibility API. */
export interface Req extends AsyncIterable<Buffer> {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  on(ev: 'close', cb: () => void): unknown;
}
export interface Res {
  writeHead(code: number, headers?: Record<string, string | string[]>): unknown;
  write(chunk: string | Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  setHeader(name: string, value: string | string[]): unknown;
  headersSent: boolean;
  on(ev: 'close', cb: () => void): unknown;
}

interface Ctx {
  req: Req;
  res: Res;
  user: User;
  def: ResDef;
  version: VersionDef;
  apiVersion: string;
  ns: string;
  name: string;
  sub: string;
  q: URLSearchParams;
  warnings: string[];
}

export interface ServerOptions {
  store: Store;
  auth: TokenAuth;
  bookmarkIntervalMs: number;
  /** Upper bound for a watch without timeoutSeconds; each gets a random length in [max/2, max), like kube's min-request-timeout. */
  maxWatchSeconds: number;
  /** Events older than this are deleted, as kube's --event-ttl (default 1 h) does. */
  eventTtlSeconds: number;
  log: (msg: string, meta?: object) => void;
  onRequest?: (r: ApiRequestRecord) => void;
}

const GEN_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** Request metrics in a private registry, so an operator in the same process keeps its own. */
class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'apiserver_request_total', help: 'API requests by verb, resource and code', labelNames: ['verb', 'resource', 'code'], registers: [this.registry] });
  readonly latency = new Histogram({ name: 'apiserver_request_duration_seconds', help: 'API request latency (watches excluded)', labelNames: ['verb'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] });
  readonly watches = new Gauge({ name: 'apiserver_registered_watchers', help: 'Open watch streams', registers: [this.registry] });
}

export class ApiHandler {
  readonly metrics = new Metrics();
  private defs = new Map<string, ResDef>(); // key `${group}/${resource}`
  private openapiCache = new Map<string, { body: Obj; hash: string }>();
  private activeWatches = new Set<() => void>();
  private nsSweeps = new Set<string>();
  private closed = false;
  private eventGc: NodeJS.Timeout;

  constructor(private readonly o: ServerOptions) {
    for (const d of builtins()) this.defs.set(`${d.group}/${d.resource}`, d);
    for (const crd of o.store.iterate('apiextensions.k8s.io/customresourcedefinitions', '')) this.registerCrd(crd);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'nbswarm']) {
      if (!o.store.get('/namespaces', '', ns)) {
        o.store.write('ADDED', '/namespaces', '', ns, {
          apiVersion: 'v1', kind: 'Namespace',
          metadata: { name: ns, uid: randomUUID(), creationTimestamp: nowIso(), labels: { 'kubernetes.io/metadata.name': ns } },
          spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' },
        });
      }
    }
    this.eventGc = setInterval(() => this.expireEvents(), Math.min(60_000, o.eventTtlSeconds * 500));
    this.eventGc.unref();
    // Resume sweeps of namespaces whose deletion was interrupted by a restart.
    for (const ns of o.store.iterate('/namespaces', '')) if (ns.metadata.deletionTimestamp) this.sweepNamespace(ns.metadata.name);
  }

  /** Deletes Events past their TTL, so an operator's progress reports do not pile up forever. */
  expireEvents(now = Date.now()): number {
    const cutoff = now - this.o.eventTtlSeconds * 1000;
    const store = this.o.store;
    let n = 0;
    try {
      const old: Obj[] = [];
      for (const e of store.iterate('/events', null)) {
        const t = Date.parse(e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.metadata?.creationTimestamp ?? '');
        if (!Number.isNaN(t) && t < cutoff) old.push(e);
      }
      for (const e of old) {
        store.write('DELETED', '/events', e.metadata.namespace ?? '', e.metadata.name, e, e);
        n++;
      }
    } catch (e) {
      this.o.log('event expiry failed', { error: String(e) });
    }
    return n;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.eventGc);
    for (const stop of this.activeWatches) stop();
  }

  private registerCrd(crd: Obj): void {
    // A CRD whose names clash with another one is stored but not served.
    if (crd.status?.conditions?.some((c: Obj) => c.type === 'NamesAccepted' && c.status === 'False')) return;
    try {
      const d = defFromCrd(crd);
      this.defs.set(`${d.group}/${d.resource}`, d);
    } catch (e) {
      this.o.log('cannot serve CRD', { crd: crd.metadata?.name, error: String(e) });
    }
    this.openapiCache.clear();
  }

  private unregisterCrd(crd: Obj): void {
    const key = `${crd.spec.group}/${crd.spec.names.plural}`;
    if (this.defs.get(key)?.crdName === crd.metadata.name) this.defs.delete(key);
    this.openapiCache.clear();
  }

  async handle(req: Req, res: Res, authUser?: User | null): Promise<void> {
    const warnings: string[] = [];
    const started = process.hrtime.bigint();
    const info = { verb: (req.method ?? 'GET').toLowerCase(), resource: '', code: 200 };
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = (code: number, headers?: Record<string, string | string[]>) => {
      info.code = code;
      return origWriteHead(code, headers);
    };
    res.on('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.requests.inc({ verb: info.verb, resource: info.resource, code: String(info.code) });
      if (info.verb !== 'watch') this.metrics.latency.observe({ verb: info.verb }, seconds);
      this.o.onRequest?.({ verb: info.verb, path: req.url ?? '', code: info.code, durationMs: seconds * 1000, user: authUser?.name });
    });
    (req as Req & { nbInfo?: typeof info }).nbInfo = info;
    try {
      await this.route(req, res, authUser, warnings);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
      if (!(e instanceof ApiError)) this.o.log('internal error', { url: req.url, error: String((e as Error)?.stack ?? e) });
      try {
        if (!res.headersSent) this.send(res, err.code, err.toStatus(), warnings);
        else res.end();
      } catch {
        // the client went away; nothing left to tell it
      }
    }
  }

  /**
   * Answers once every write made so far is committed: a write is acknowledged only when durable,
   * and a read never shows a write before it is. A failed commit turns the answer into a 500.
   */
  private send(res: Res, code: number, body: unknown, warnings: string[] = []): void {
    this.sendText(res, code, (isObj(body) && this.o.store.textOf(body)) || JSON.stringify(body), warnings);
  }

  /** Replies with JSON text once every write so far is committed. */
  private sendText(res: Res, code: number, text: string, warnings: string[] = []): void {
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json', 'cache-control': 'no-cache, private' };
    if (warnings.length) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    this.o.store.afterCommit(() => this.reply(res, code, headers, text), (e) => {
      this.o.log('commit failed', { error: String(e) });
      const err = new ApiError(500, 'InternalError', `Internal error occurred: commit failed: ${e.message}`);
      this.reply(res, 500, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' }, JSON.stringify(err.toStatus()));
    });
  }

  private reply(res: Res, code: number, headers: Record<string, string | string[]>, text: string): void {
    try {
      // One write of headers and body with a known length (HTTP/1.1 needs no chunked framing).
      headers['content-length'] = String(Buffer.byteLength(text));
      res.writeHead(code, headers);
      res.end(text);
    } catch {
      // the client went away while the commit ran
    }
  }

  private async route(req: Req, res: Res, authUser: User | null | undefined, warnings: string[]): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = (req.method ?? 'GET').toUpperCase();
    if (/^\/(healthz|readyz|livez)(\/.*)?$/.test(path)) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (path === '/version') return this.send(res, 200, SERVER_VERSION);
    if (!authUser) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(await this.metrics.registry.metrics());
      return;
    }
    const user = authUser;
    let seg: string[];
    try {
      seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw badRequest(`invalid URL escape in ${JSON.stringify(path)}`);
    }
    const accept = String(req.headers.accept ?? '');

    if (path === '/api' || path === '/apis') {
      // Aggregated discovery (one request instead of one per group/version), when the client asks.
      const m = /application\/json;g=apidiscovery\.k8s\.io;v=(v2beta1|v2);as=APIGroupDiscoveryList/.exec(accept.replace(/\s+/g, ''));
      if (m) {
        res.writeHead(200, { 'content-type': `application/json;g=apidiscovery.k8s.io;v=${m[1]};as=APIGroupDiscoveryList`, 'cache-control': 'no-cache, private' });
        res.end(JSON.stringify(this.aggregated(path === '/api', m[1])));
        return;
      }
    }
    if (path === '/api') return this.send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '' }] });
    if (path === '/apis') return this.send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups() });
    if (path === '/openapi/v2') {
      if (/protobuf/.test(accept) && !/application\/json/.test(accept)) {
        // kube-openapi answers protobuf as octet-stream: kubectl 1.27 cannot parse the '@' media type.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(openapiV2Protobuf(openapiV2(this.allGv())));
        return;
      }
      return this.send(res, 200, openapiV2(this.allGv()));
    }
    if (path === '/openapi/v3') {
      const paths: Obj = {};
      for (const gv of this.gvList()) paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${this.openapiFor(gv).hash}` };
      return this.send(res, 200, { paths });
    }
    if (seg[0] === 'openapi' && seg[1] === 'v3') {
      const gv = seg.slice(2).join('/');
      if (!this.gvList().includes(gv)) throw pathNotFound();
      const doc = this.openapiFor(gv);
      res.writeHead(200, { 'content-type': 'application/json', etag: `"${doc.hash}"`, 'cache-control': url.searchParams.get('hash') === doc.hash ? 'public, immutable' : 'no-cache, private' });
      res.end(JSON.stringify(doc.body));
      return;
    }

    let group: string, version: string, rest: string[];
    if (seg[0] === 'api') {
      if (seg[1] !== 'v1') throw pathNotFound();
      group = '';
      version = 'v1';
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 2) {
      group = seg[1];
      if (seg.length === 2) {
        const g = this.groups().find((x) => x.name === group);
        if (!g) throw pathNotFound();
        return this.send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      }
      version = seg[2];
      rest = seg.slice(3);
    } else throw pathNotFound();

    if (rest.length === 0) {
      const list = this.resourcesIn(group, version);
      if (!list.length) throw pathNotFound();
      return this.send(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: list.flatMap(apiResource) });
    }

    const q = url.searchParams;
    let watch = bool(q.get('watch'));
    if (rest[0] === 'watch') {
      watch = true;
      rest = rest.slice(1);
    }
    let ns = '', resource: string, name = '', sub = '';
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      [, ns, resource, name = '', sub = ''] = rest;
      if (rest.length > 5) throw pathNotFound();
    } else {
      [resource, name = '', sub = ''] = rest;
      if (rest.length > 3) throw pathNotFound();
    }
    const def = this.defs.get(`${group}/${resource}`);
    const vdef = def?.versions.find((v) => v.name === version && v.served);
    if (!def || !vdef) throw pathNotFound();
    if (ns && !def.namespaced) throw pathNotFound();
    if (sub === 'finalize' && resource === 'namespaces') sub = 'status';
    if (sub && !(sub === 'status' && vdef.statusSubresource)) throw pathNotFound();

    const info = (req as Req & { nbInfo?: { verb: string; resource: string } }).nbInfo;
    if (info) info.resource = def.group ? `${def.resource}.${def.group}` : def.resource;
    const ctx: Ctx = { req, res, user, def, version: vdef, apiVersion: group ? `${group}/${version}` : version, ns, name, sub, q, warnings };
    let verb: Verb;
    switch (method) {
      case 'GET': verb = name ? (watch ? 'watch' : 'get') : watch ? 'watch' : 'list'; break;
      case 'POST': verb = 'create'; break;
      case 'PUT': verb = 'update'; break;
      case 'PATCH': verb = 'patch'; break;
      case 'DELETE': verb = name ? 'delete' : 'deletecollection'; break;
      default: throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
    if (def.review) {
      if (verb !== 'create') throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return this.doReview(ctx);
    }
    if (!authorize(user, verb, def.namespaced, ns)) {
      const what = `${def.resource}${sub ? `/${sub}` : ''}`;
      const where = def.namespaced ? (ns ? ` in the namespace "${ns}"` : ' at the cluster scope') : ' at the cluster scope';
      throw new ApiError(403, 'Forbidden', `${def.group ? `${def.resource}.${def.group}` : def.resource}${name ? ` "${name}"` : ''} is forbidden: User "${user.name}" cannot ${verb} resource "${what}" in API group "${def.group}"${where}`, { name: name || undefined, group: def.group || undefined, kind: def.resource });
    }
    if (verb === 'create' && name) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if ((verb === 'update' || verb === 'patch') && !name) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if (def.namespaced && !ns && (verb === 'create' || verb === 'update' || verb === 'patch' || verb === 'delete' || verb === 'get')) throw pathNotFound();

    if (info) info.verb = verb;
    switch (verb) {
      case 'get': return this.doGet(ctx);
      case 'list': return this.doList(ctx);
      case 'watch':
        // Replay and go-live must see only committed history: pending events reach watchers after their commit.
        while (this.o.store.pending) await this.o.store.settled();
        // Its CRD may have gone in that commit; its watches were closed then.
        if (this.defs.get(`${def.group}/${def.resource}`) !== def) throw pathNotFound();
        return this.doWatch(ctx);
      case 'create': return this.doCreate(ctx);
      case 'update': return this.doUpdate(ctx);
      case 'patch': return this.doPatch(ctx);
      case 'delete': return this.doDelete(ctx);
      case 'deletecollection': return this.doDeleteCollection(ctx);
    }
  }

  // ---- discovery --------------------------------------------------------------------------------

  private groups(): Obj[] {
    const byGroup = new Map<string, Set<string>>();
    const pref = new Map<string, string>();
    for (const d of this.defs.values()) {
      if (!d.group) continue;
      const set = byGroup.get(d.group) ?? new Set<string>();
      for (const v of d.versions) if (v.served) set.add(v.name);
      byGroup.set(d.group, set);
      const st = d.versions.find((v) => v.storage && v.served) ?? d.versions.find((v) => v.served);
      if (st && !pref.has(d.group)) pref.set(d.group, st.name);
    }
    return [...byGroup.entries()].filter(([, vs]) => vs.size).map(([g, vs]) => {
      const versions = [...vs].sort(kubeVersionCmp).map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
      const p = pref.get(g) ?? versions[0].version;
      return { name: g, versions, preferredVersion: { groupVersion: `${g}/${p}`, version: p } };
    });
  }

  private aggregated(core: boolean, v: string): Obj {
    const items: Obj[] = [];
    const groupsList = core ? [{ name: '', versions: [{ version: 'v1' }] }] : this.groups();
    for (const g of groupsList) {
      const versions = g.versions.map((gv: { version: string }) => ({
        version: gv.version,
        freshness: 'Current',
        resources: this.resourcesIn(g.name, gv.version).map((d) => {
          const kind = { group: d.group, version: gv.version, kind: d.kind };
          const ver = d.versions[0];
          return {
            resource: d.resource, responseKind: kind, scope: d.namespaced ? 'Namespaced' : 'Cluster', singularResource: d.singular,
            verbs: d.review ? ['create'] : VERBS_NS,
            ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
            ...(d.categories.length ? { categories: d.categories } : {}),
            ...(ver.statusSubresource ? { subresources: [{ subresource: 'status', responseKind: kind, verbs: ['get', 'patch', 'update'] }] } : {}),
          };
        }),
      }));
      items.push({ metadata: { name: g.name, creationTimestamp: null }, versions });
    }
    return { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${v}`, metadata: {}, items };
  }

  private resourcesIn(group: string, version: string): ResDef[] {
    const out: ResDef[] = [];
    for (const d of this.defs.values()) {
      if (d.group !== group) continue;
      const v = d.versions.find((x) => x.name === version && x.served);
      if (v) out.push({ ...d, versions: [v] });
    }
    return out;
  }

  private gvList(): string[] {
    const out = ['api/v1'];
    for (const g of this.groups()) for (const v of g.versions) out.push(`apis/${v.groupVersion}`);
    return out;
  }

  private allGv(): [ResDef, string][] {
    const out: [ResDef, string][] = [];
    for (const d of this.defs.values()) for (const v of d.versions) if (v.served) out.push([d, v.name]);
    return out;
  }

  private openapiFor(gv: string): { body: Obj; hash: string } {
    let c = this.openapiCache.get(gv);
    if (!c) {
      const [, group, version] = gv.startsWith('api/') ? ['', '', gv.slice(4)] : gv.split('/');
      const defs = this.resourcesIn(group, version).map((d) => [d, version] as [ResDef, string]);
      const body = openapiV3(defs);
      c = { body, hash: hashOf(body) };
      this.openapiCache.set(gv, c);
    }
    return c;
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private gr(ctx: Ctx) {
    return { group: ctx.def.group, resource: ctx.def.resource };
  }

  /** Storage → wire form for the requested version. */
  private out(ctx: Ctx, o: Obj): Obj {
    if (ctx.def.fromStorage) return ctx.def.fromStorage(o);
    if (o.apiVersion !== ctx.apiVersion) return { ...o, apiVersion: ctx.apiVersion };
    return o;
  }

  private storageVersion(def: ResDef): string {
    const v = def.versions.find((x) => x.storage) ?? def.versions[0];
    return def.group ? `${def.group}/${v.name}` : v.name;
  }

  private async body(ctx: Ctx): Promise<{ raw: string; type: string; buf: Buffer }> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of ctx.req) {
      size += c.length;
      // Past the limit keep draining (so the client can read the 413) but stop buffering; give up on absurd sizes.
      if (size > MAX_BODY * 16) throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY}`);
      if (size <= MAX_BODY) chunks.push(c);
    }
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY}`);
    const type = String(ctx.req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const buf = Buffer.concat(chunks);
    return { raw: buf.toString('utf8'), type, buf };
  }

  private parse(raw: string, type: string): unknown {
    if (!raw.trim()) throw badRequest('Object \'Kind\' is missing in \'\'');
    if (type === 'application/yaml' || type === 'application/apply-patch+yaml' || type === 'application/x-yaml' || type === 'text/yaml') {
      try {
        const docs = YAML.parseAllDocuments(raw);
        if (docs.length !== 1 || docs[0].errors.length) throw new Error(docs[0]?.errors[0]?.message ?? 'expected one YAML document');
        return docs[0].toJS({ maxAliasCount: 100 });
      } catch (e) {
        throw badRequest(`error decoding YAML: ${(e as Error).message}`);
      }
    }
    try {
      return JSON.parse(raw);
    } catch (e) {
      throw badRequest(`error decoding JSON: ${(e as Error).message}`);
    }
  }

  private async readObject(ctx: Ctx): Promise<Obj> {
    const { raw, type, buf } = await this.body(ctx);
    if (type === 'application/vnd.kubernetes.protobuf') {
      try {
        return decodeK8sProtobuf(buf);
      } catch (e) {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (${(e as Error).message})`);
      }
    }
    if (type && !['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml', '*/*'].includes(type)) {
      throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
    }
    const o = this.parse(raw, type);
    if (!isObj(o)) throw badRequest('the object provided is not a JSON object');
    return o;
  }

  private checkTypeMeta(ctx: Ctx, o: Obj): void {
    const wantKind = ctx.sub === 'status' || !ctx.def ? ctx.def.kind : ctx.def.kind;
    if (o.kind !== undefined && o.kind !== wantKind) throw badRequest(`the kind in the data (${o.kind}) does not match the expected kind (${wantKind})`);
    if (o.apiVersion !== undefined && o.apiVersion !== ctx.apiVersion) {
      throw badRequest(`the API version in the data (${o.apiVersion}) does not match the expected API version (${ctx.apiVersion})`);
    }
    if (!isObj(o.metadata ?? {})) throw badRequest('metadata must be an object');
    o.metadata ??= {};
    if (ctx.def.namespaced) {
      if (o.metadata.namespace && o.metadata.namespace !== ctx.ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      o.metadata.namespace = ctx.ns;
    }
  }

  private fieldManager(ctx: Ctx, fallback?: string): string {
    const fm = ctx.q.get('fieldManager');
    if (fm) {
      if (fm.length > 128) throw badRequest('fieldManager: Too long: must have at most 128 bytes');
      return fm;
    }
    const ua = String(ctx.req.headers['user-agent'] ?? fallback ?? 'unknown');
    return ua.split('/')[0] || 'unknown';
  }

  private dryRun(ctx: Ctx): boolean {
    const d = ctx.q.getAll('dryRun');
    if (d.some((x) => x !== 'All')) throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(d.find((x) => x !== 'All'))}: supported values: "All"`);
    return d.length > 0;
  }

  private ensureNamespace(ctx: Ctx, creating: boolean): void {
    if (!ctx.def.namespaced) return;
    const ns = this.o.store.namespace(ctx.ns);
    if (!ns) throw notFound({ group: '', resource: 'namespaces' }, ctx.ns);
    if (creating && ns.metadata.deletionTimestamp) {
      throw new ApiError(403, 'Forbidden', `${ctx.def.resource} "${ctx.name}" is forbidden: unable to create new content in namespace ${ctx.ns} because it is being terminated`, { name: ctx.name, kind: ctx.def.resource, causes: [{ reason: 'NamespaceTerminating', message: `namespace ${ctx.ns} is being terminated`, field: 'metadata.namespace' }] });
    }
  }

  /**
   * Normalises, defaults, prunes and validates an object about to be stored, and fills the
   * server-owned metadata. `prev` is the stored object (undefined on create).
   */
  private prepare(ctx: Ctx, prev: Obj | undefined, next: Obj, manager: string | null): Obj {
    const def = ctx.def;
    if (def.toStorage) next = def.toStorage(next);
    next.apiVersion = this.storageVersion(def);
    next.kind = def.kind;
    const md = next.metadata;
    const status = ctx.sub === 'status';
    if (status && prev) {
      // Writes to /status change only status (plus nothing else), as kube does.
      next = { ...structuredClone(prev), status: next.status };
      if (next.status === undefined) delete next.status;
    } else if (ctx.version.statusSubresource && !status) {
      if (prev && prev.status !== undefined) next.status = structuredClone(prev.status);
      else if (!def.builtin || def.resource === 'customresourcedefinitions') delete next.status;
    }
    const m = next.metadata;
    if (prev) {
      m.uid = prev.metadata.uid;
      m.creationTimestamp = prev.metadata.creationTimestamp;
      if (prev.metadata.deletionTimestamp) {
        m.deletionTimestamp = prev.metadata.deletionTimestamp;
        m.deletionGracePeriodSeconds = prev.metadata.deletionGracePeriodSeconds ?? 0;
      } else {
        delete m.deletionTimestamp;
        delete m.deletionGracePeriodSeconds;
      }
      if (prev.metadata.generation !== undefined) m.generation = prev.metadata.generation;
      m.name = prev.metadata.name;
      if (def.namespaced) m.namespace = prev.metadata.namespace;
      if (status) m.managedFields = prev.metadata.managedFields;
    } else {
      m.uid = randomUUID();
      m.creationTimestamp = nowIso();
      delete m.deletionTimestamp;
      delete m.deletionGracePeriodSeconds;
      if (!def.builtin || def.resource === 'customresourcedefinitions') m.generation = 1;
      else delete m.generation;
    }
    delete m.selfLink;
    if (m.labels === null) delete m.labels;
    if (m.annotations === null) delete m.annotations;
    void md;

    // Type-specific normalisation.
    if (def.resource === 'secrets' && def.group === '') {
      if (isObj(next.stringData)) {
        next.data = { ...(next.data ?? {}) };
        for (const [k, v] of Object.entries(next.stringData)) next.data[k] = Buffer.from(String(v)).toString('base64');
      }
      delete next.stringData;
      if (!next.type) next.type = 'Opaque';
      if (prev?.immutable && !deepEqual(prev.data, next.data)) throw invalid('Secret', '', m.name, [{ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' }]);
    }
    if (def.group === '' && (def.resource === 'secrets' || def.resource === 'configmaps')) {
      for (const f of ['data', 'binaryData', 'stringData']) {
        const m = next[f];
        if (m === undefined || m === null) continue;
        const b64 = f === 'binaryData' || (f === 'data' && def.resource === 'secrets');
        if (!isObj(m) || Object.values(m).some((v) => typeof v !== 'string' || (b64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)))) {
          throw badRequest(`${def.kind} in version "v1" cannot be handled as a ${def.kind}: ${f} must be a map of ${b64 ? 'base64-encoded ' : ''}strings`);
        }
      }
    }
    if (def.resource === 'namespaces' && def.group === '') {
      next.status = { ...(next.status ?? {}), phase: m.deletionTimestamp ? 'Terminating' : 'Active' };
      m.labels = { ...(m.labels ?? {}), 'kubernetes.io/metadata.name': m.name };
    }

    const causes: Cause[] = validateMetadata(next, def.namespaced, def.resource === 'namespaces' ? 'label' : 'subdomain');
    if (def.resource === 'customresourcedefinitions') {
      causes.push(...crdProblems(next));
      if (!causes.length) this.crdStatus(next);
    }
    if (!def.builtin) {
      const schema = ctx.version.schema;
      const pruned: string[] = [];
      prune(next, schema, '', pruned, true);
      if (pruned.length) {
        const fv = ctx.q.get('fieldValidation') ?? 'Warn';
        if (fv === 'Strict') throw badRequest(`${def.kind} in version "${ctx.version.name}" cannot be handled as a ${def.kind}: strict decoding error: ${pruned.map((p) => `unknown field "${p}"`).join(', ')}`);
        if (fv === 'Warn') for (const p of pruned) ctx.warnings.push(`unknown field "${p}"`);
      }
      applyDefaults(next, schema);
      const v = ctx.version.validator;
      if (v && !v(next)) causes.push(...toCauses(v.errors, next));
    }
    if (causes.length) throw invalid(def.kind, def.group, m.name ?? '', causes);

    if (prev && m.generation !== undefined) {
      const strip = (o: Obj) => {
        const { metadata: _m, status: _s, ...rest } = o;  
        return ctx.version.statusSubresource ? rest : { ...rest, status: o.status };
      };
      if (!deepEqual(strip(prev), strip(next))) m.generation = (prev.metadata.generation ?? 0) + 1;
    }
    if (manager !== null) {
      trackUpdate(prev, next, manager, ctx.apiVersion, ctx.sub || undefined, ctx.version.schema);
      if (next.metadata.managedFields?.length === 0) delete next.metadata.managedFields;
    }
    return next;
  }

  private crdStatus(crd: Obj): void {
    const now = nowIso();
    const s = crd.spec;
    const clash = [...this.defs.values()].find((d) => d.group === s.group && d.resource === s.names.plural && d.crdName !== crd.metadata.name);
    const prevConds: Obj[] = crd.status?.conditions ?? [];
    const cond = (type: string, ok: boolean, reason: string, message: string) => {
      const old = prevConds.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now, reason, message };
    };
    crd.status = {
      conditions: [
        cond('NamesAccepted', !clash, clash ? 'MultipleNamesNotAllowed' : 'NoConflicts', clash ? `"${s.names.plural}" is already in use` : 'no conflicts found'),
        cond('Established', !clash, clash ? 'NotAccepted' : 'InitialNamesAccepted', clash ? 'not all names are accepted' : 'the initial names have been accepted'),
      ],
      acceptedNames: clash ? {} : { plural: s.names.plural, singular: s.names.singular ?? s.names.kind.toLowerCase(), kind: s.names.kind, listKind: s.names.listKind ?? `${s.names.kind}List`, ...(s.names.shortNames ? { shortNames: s.names.shortNames } : {}), ...(s.names.categories ? { categories: s.names.categories } : {}) },
      storedVersions: [...new Set([...(crd.status?.storedVersions ?? []), (s.versions as Obj[]).find((v) => v.storage)?.name])].filter(Boolean),
    };
  }

  /** Stores `next` (or nothing on dry-run / no-op) and returns what the client sees. */
  private commit(ctx: Ctx, prev: Obj | undefined, next: Obj, dry: boolean): Obj {
    const store = this.o.store;
    const { def } = ctx;
    const ns = def.namespaced ? next.metadata.namespace : '';
    if (dry) {
      next.metadata.resourceVersion = prev?.metadata.resourceVersion ?? '';
      return next;
    }
    if (prev) {
      const cur = store.get(def.gr, ns, next.metadata.name);
      if (!cur || cur.metadata.resourceVersion !== prev.metadata.resourceVersion) throw conflict(this.gr(ctx), next.metadata.name);
      const a = { ...prev, metadata: { ...prev.metadata, managedFields: undefined, resourceVersion: undefined } };
      const b = { ...next, metadata: { ...next.metadata, managedFields: undefined, resourceVersion: undefined } };
      if (deepEqual(a, b)) return prev; // a no-op write keeps the resourceVersion, as in kube
      if (next.metadata.deletionTimestamp && !(next.metadata.finalizers?.length)) {
        const gone = store.write('DELETED', def.gr, ns, next.metadata.name, next, prev);
        this.afterDelete(def, gone);
        return gone;
      }
      const saved = store.write('MODIFIED', def.gr, ns, next.metadata.name, next, prev);
      if (def.resource === 'customresourcedefinitions') this.registerCrd(saved);
      return saved;
    }
    let saved: Obj;
    try {
      saved = store.write('ADDED', def.gr, ns, next.metadata.name, next);
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw alreadyExists(this.gr(ctx), next.metadata.name);
      throw e;
    }
    if (def.resource === 'customresourcedefinitions') this.registerCrd(saved);
    return saved;
  }

  private afterDelete(def: ResDef, obj: Obj): void {
    if (def.resource === 'customresourcedefinitions' && def.group === 'apiextensions.k8s.io') {
      // Instances go with their definition, each with a DELETED event for its watchers.
      const gr = `${obj.spec.group}/${obj.spec.names.plural}`;
      const items = [...this.o.store.iterate(gr, null)];
      for (const it of items) this.o.store.write('DELETED', gr, it.metadata.namespace ?? '', it.metadata.name, it, it);
      this.unregisterCrd(obj);
      this.o.store.closeWatchers(gr);
    }
  }

  private getStored(ctx: Ctx): Obj {
    const o = this.o.store.get(ctx.def.gr, ctx.def.namespaced ? ctx.ns : '', ctx.name);
    if (!o) throw notFound(this.gr(ctx), ctx.name);
    return o;
  }

  // ---- verbs --------------------------------------------------------------------------------------

  private wantsTable(ctx: Ctx): boolean {
    const a = String(ctx.req.headers.accept ?? '');
    const first = a.split(',')[0] ?? '';
    return /as=Table/.test(first) && /g=meta\.k8s\.io/.test(first);
  }

  private wantsMeta(ctx: Ctx): boolean {
    const first = String(ctx.req.headers.accept ?? '').split(',')[0] ?? '';
    return /as=PartialObjectMetadata/.test(first);
  }

  private doGet(ctx: Ctx): void {
    const o = this.out(ctx, this.getStored(ctx));
    if (this.wantsTable(ctx)) return this.send(ctx.res, 200, toTable(ctx.def, ctx.version.name, [o], ctx.q.get('includeObject') ?? 'Metadata', { resourceVersion: o.metadata.resourceVersion }), ctx.warnings);
    if (this.wantsMeta(ctx)) return this.send(ctx.res, 200, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata });
    this.send(ctx.res, 200, o, ctx.warnings);
  }

  private selectors(ctx: Ctx): { labels: Requirement[]; fields: FieldReq[] } {
    try {
      const labels = parseLabelSelector(ctx.q.get('labelSelector'));
      const fields = parseFieldSelector(ctx.q.get('fieldSelector'));
      const allowed = new Set(['metadata.name', 'metadata.namespace', ...(ctx.def.fieldPaths ?? []), ...(ctx.version.selectableFields ?? [])]);
      for (const f of fields) {
        if (!allowed.has(f.path)) throw new SelectorError(`field label not supported: ${f.path}`);
      }
      return { labels, fields };
    } catch (e) {
      if (e instanceof SelectorError) throw badRequest(e.message);
      throw e;
    }
  }

  private doList(ctx: Ctx): void {
    const { labels, fields } = this.selectors(ctx);
    const store = this.o.store;
    const limit = Math.max(0, Number(ctx.q.get('limit') ?? 0) || 0);
    const cont = ctx.q.get('continue');
    let after: [string, string] = ['', ''];
    let listRv = store.currentRv;
    if (cont) {
      try {
        const t = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8'));
        after = [String(t.ns), String(t.name)];
        listRv = Number(t.rv);
        if (!Number.isFinite(listRv)) throw new Error('bad rv');
      } catch {
        throw badRequest('continue key is not valid: illegal base64 data or JSON');
      }
      if (listRv < store.compactedRv) {
        throw gone('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
    }
    const rvParam = ctx.q.get('resourceVersion');
    const match = ctx.q.get('resourceVersionMatch');
    if (rvParam && rvParam !== '0' && !cont) {
      const n = Number(rvParam);
      if (!Number.isInteger(n)) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rvParam)}: must be an integer`);
      if (match === 'Exact' && n !== store.currentRv) {
        if (n < store.compactedRv) throw gone(`too old resource version: ${n} (${store.compactedRv})`);
        throw new ApiError(400, 'BadRequest', `resourceVersionMatch=Exact for an older resourceVersion (${n}) is not supported here`);
      }
      if (match !== 'NotOlderThan' && n < store.compactedRv && match === 'Exact') throw gone(`too old resource version: ${n} (${store.compactedRv})`);
    }
    const table = this.wantsTable(ctx);
    const meta = this.wantsMeta(ctx);
    // A plain list whose rows are stored in the requested version is their stored text spliced
    // together: parsing and re-serialising 10,000 objects was most of a full list's server time.
    const spliced = !labels.length && !fields.length && !ctx.def.fromStorage && !table && !meta;
    const rowHead = `{"apiVersion":${JSON.stringify(ctx.apiVersion)},`;
    const items: Obj[] = [];
    const texts: string[] = [];
    let count = 0;
    let next: string | undefined;
    const nsFilter = ctx.def.namespaced ? (ctx.ns || null) : '';
    let lastKey: [string, string] | null = null;
    for (const row of store.iterateRows(ctx.def.gr, nsFilter, after)) {
      let text: string | undefined;
      let view: Obj | undefined;
      if (spliced && row.data.startsWith(rowHead)) text = row.data;
      else {
        const o = JSON.parse(row.data) as Obj;
        if (!matches(labels, o.metadata.labels)) continue;
        view = this.out(ctx, o);
        if (fields.length && !fieldMatches(fields, view)) continue;
      }
      if (limit && count >= limit) {
        if (lastKey) next = Buffer.from(JSON.stringify({ rv: listRv, ns: lastKey[0], name: lastKey[1] })).toString('base64url');
        break;
      }
      count++;
      if (spliced) texts.push(text ?? JSON.stringify(view));
      else items.push(view!);
      lastKey = [row.ns, row.name];
    }
    const metadata: Obj = { resourceVersion: String(listRv), ...(next ? { continue: next } : {}) };
    if (table) return this.send(ctx.res, 200, toTable(ctx.def, ctx.version.name, items, ctx.q.get('includeObject') ?? 'Metadata', metadata), ctx.warnings);
    if (meta) {
      return this.send(ctx.res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: items.map((i) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: i.metadata })) });
    }
    if (!spliced) return this.send(ctx.res, 200, { apiVersion: ctx.apiVersion, kind: ctx.def.listKind, metadata, items }, ctx.warnings);
    const head = JSON.stringify({ apiVersion: ctx.apiVersion, kind: ctx.def.listKind, metadata });
    this.sendText(ctx.res, 200, `${head.slice(0, -1)},"items":[${texts.join(',')}]}`, ctx.warnings);
  }

  private doWatch(ctx: Ctx): void {
    const { labels, fields: f0 } = this.selectors(ctx);
    const fields = [...f0];
    if (ctx.name) fields.push({ path: 'metadata.name', neg: false, value: ctx.name });
    const store = this.o.store;
    const rvParam = ctx.q.get('resourceVersion') ?? '';
    const bookmarks = bool(ctx.q.get('allowWatchBookmarks'));
    const sendInitial = bool(ctx.q.get('sendInitialEvents'));
    const timeout = Number(ctx.q.get('timeoutSeconds') ?? 0);
    const table = this.wantsTable(ctx);
    const includeObject = ctx.q.get('includeObject') ?? 'Metadata';
    const nsFilter = ctx.def.namespaced ? ctx.ns : '';
    let start: number | null = null;
    if (rvParam !== '' && rvParam !== '0') {
      start = Number(rvParam);
      if (!Number.isInteger(start) || start < 0) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rvParam)}: must be an integer`);
    }
    const raw = ctx.res;
    raw.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    // Clients (fetch-based ones like client-node) resolve the watch call on the response headers;
    // HTTP/1.1 would otherwise hold them back until the first event.
    (raw as { flushHeaders?: () => void }).flushHeaders?.();
    let stop: () => void = () => {};
    // A write to a stream the client already closed must end this watch, never throw out of a timer.
    const res = {
      write: (chunk: string): boolean => {
        try {
          return raw.write(chunk);
        } catch {
          stop();
          return false;
        }
      },
      end: () => raw.end(),
      on: (ev: 'close', cb: () => void) => raw.on(ev, cb),
    };
    (raw as unknown as { on(ev: 'error', cb: () => void): void }).on('error', () => stop());
    let first = true;
    const emit = (type: string, o: Obj, ev?: StoreEvent) => {
      if (ev && !table) {
        // 100 watchers of one resource need one JSON.stringify per event, not 100.
        ev.wire ??= new Map();
        const k = `${type}|${ctx.apiVersion}`;
        let line = ev.wire.get(k);
        if (line === undefined) {
          const text = this.o.store.textOf(o);
          line = (text !== undefined ? `{"type":${JSON.stringify(type)},"object":${text}}` : JSON.stringify({ type, object: o })) + '\n';
          ev.wire.set(k, line);
        }
        return res.write(line);
      }
      let obj: Obj = o;
      if (table && type !== 'ERROR' && type !== 'BOOKMARK') {
        obj = toTable(ctx.def, ctx.version.name, [o], includeObject, { resourceVersion: o.metadata.resourceVersion }, first);
        first = false;
      }
      return res.write(JSON.stringify({ type, object: obj }) + '\n');
    };
    const visible = (o: Obj) => {
      if (ctx.def.namespaced && nsFilter && o.metadata.namespace !== nsFilter) return false;
      if (!matches(labels, o.metadata.labels)) return false;
      return !fields.length || fieldMatches(fields, this.out(ctx, o));
    };
    const bookmark = (extra?: Obj) => {
      const o: Obj = { kind: ctx.def.kind, apiVersion: ctx.apiVersion, metadata: { resourceVersion: String(store.committedRv), ...(extra ? { annotations: extra } : {}) } };
      res.write(JSON.stringify({ type: 'BOOKMARK', object: o }) + '\n');
    };
    // Replay first, then go live: both run in this synchronous block, so no write can slip between.
    if (start === null) {
      // No resourceVersion (or "0"): synthetic ADDED events for the current state, as kube sends.
      for (const o of store.iterate(ctx.def.gr, ctx.def.namespaced ? (nsFilter || null) : '')) if (visible(o)) emit('ADDED', this.out(ctx, o));
      if (sendInitial && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      const hist = start > store.currentRv ? 'future' : store.since(ctx.def.gr, start);
      if (hist === 'future') {
        // An RV this store never issued (e.g. from before a data-dir reset): make the client relist.
        emit('ERROR', gone(`too large resource version: ${start}, current: ${store.currentRv}`).toStatus());
        res.end();
        return;
      }
      if (hist === 'expired') {
        emit('ERROR', gone(`too old resource version: ${start} (${store.compactedRv + 1})`).toStatus());
        res.end();
        return;
      }
      for (const ev of hist) {
        if (ev.type !== 'DELETED' && !visible(ev.object)) continue;
        if (ev.type === 'DELETED' && !visible(ev.object)) continue;
        emit(ev.type, this.out(ctx, ev.object));
      }
      if (sendInitial && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    }
    const onEvent = (ev: StoreEvent) => {
      if (ctx.def.namespaced && nsFilter && ev.ns !== nsFilter) return;
      const now = ev.type !== 'DELETED' && visible(ev.object);
      const before = ev.prev ? visible(ev.prev) : false;
      if (ev.type === 'DELETED') {
        if (visible(ev.object) || before) emit('DELETED', this.out(ctx, ev.object), ev);
      } else if (ev.type === 'ADDED') {
        if (now) emit('ADDED', this.out(ctx, ev.object), ev);
      } else if (now && before) emit('MODIFIED', this.out(ctx, ev.object), ev);
      else if (now) emit('ADDED', this.out(ctx, ev.object), ev);
      else if (before) emit('DELETED', this.out(ctx, ev.object), ev);
    };
    this.metrics.watches.inc();
    const remove = store.addWatcher({ gr: ctx.def.gr, ns: ctx.def.namespaced ? nsFilter : '', send: onEvent, close: () => stop() });
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks) timers.push(setInterval(() => bookmark(), this.o.bookmarkIntervalMs));
    const max = this.o.maxWatchSeconds;
    const limit = timeout > 0 ? Math.min(timeout, max) * 1000 : (max / 2 + (Math.random() * max) / 2) * 1000;
    let done = false;
    stop = () => {
      if (done) return;
      done = true;
      this.metrics.watches.dec();
      remove();
      for (const t of timers) clearInterval(t);
      this.activeWatches.delete(stop);
      try {
        raw.end();
      } catch {
        // the client is already gone
      }
    };
    timers.push(setTimeout(stop, limit));
    this.activeWatches.add(stop);
    res.on('close', stop);
    ctx.req.on('close', stop);
    if (this.closed) stop();
  }

  /** `kubectl auth can-i` and `kubectl auth whoami`: answered for the caller, nothing stored. */
  private async doReview(ctx: Ctx): Promise<void> {
    const body = await this.readObject(ctx);
    const user = ctx.user;
    const info = { username: user.name, groups: [`nbswarm:${user.role}`, 'system:authenticated'] };
    if (ctx.def.kind === 'SelfSubjectReview') {
      return this.send(ctx.res, 201, { apiVersion: ctx.apiVersion, kind: 'SelfSubjectReview', metadata: { creationTimestamp: null }, status: { userInfo: info } });
    }
    const attrs: Obj = body.spec?.resourceAttributes ?? {};
    let allowed = false;
    let reason = '';
    const verb = String(attrs.verb ?? '');
    const def = [...this.defs.values()].find((d) => d.group === (attrs.group ?? '') && d.resource === attrs.resource);
    if (def || attrs.resource === '*') {
      const namespaced = def ? def.namespaced : true;
      const verbs: Verb[] = verb === '*' ? ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'] : [verb as Verb];
      allowed = verbs.every((v) => authorize(user, v, namespaced, namespaced ? String(attrs.namespace ?? '') : ''));
      reason = allowed ? `nbswarm role ${user.role} allows it` : '';
    } else if (body.spec?.nonResourceAttributes) {
      allowed = true;
    }
    this.send(ctx.res, 201, { apiVersion: ctx.apiVersion, kind: 'SelfSubjectAccessReview', metadata: { creationTimestamp: null }, spec: body.spec ?? {}, status: { allowed, ...(reason ? { reason } : {}) } });
  }

  private async doCreate(ctx: Ctx): Promise<void> {
    const body = await this.readObject(ctx);
    this.checkTypeMeta(ctx, body);
    const dry = this.dryRun(ctx);
    const md = body.metadata;
    if (!md.name && md.generateName) {
      md.name = String(md.generateName) + Array.from({ length: 5 }, () => GEN_CHARS[Math.floor(Math.random() * GEN_CHARS.length)]).join('');
    }
    ctx.name = md.name ?? '';
    this.ensureNamespace(ctx, true);
    const next = this.prepare(ctx, undefined, body, this.fieldManager(ctx));
    const saved = this.commit(ctx, undefined, next, dry);
    this.send(ctx.res, 201, this.out(ctx, saved), ctx.warnings);
  }

  private async doUpdate(ctx: Ctx): Promise<void> {
    const body = await this.readObject(ctx);
    this.checkTypeMeta(ctx, body);
    if (body.metadata.name && body.metadata.name !== ctx.name) throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${ctx.name})`);
    body.metadata.name = ctx.name;
    const dry = this.dryRun(ctx);
    const prev = this.o.store.get(ctx.def.gr, ctx.def.namespaced ? ctx.ns : '', ctx.name);
    if (!prev) {
      throw notFound(this.gr(ctx), ctx.name); // CRs and the types here do not allow create-on-update
    }
    const rv = body.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== prev.metadata.resourceVersion) throw conflict(this.gr(ctx), ctx.name);
    if (ctx.def.gr === 'apiextensions.k8s.io/customresourcedefinitions' && body.spec?.names?.plural !== prev.spec.names.plural) {
      throw invalid(ctx.def.kind, ctx.def.group, ctx.name, [{ reason: 'FieldValueInvalid', message: 'Invalid value: field is immutable', field: 'spec.names.plural' }]);
    }
    const next = this.prepare(ctx, prev, body, this.fieldManager(ctx));
    const saved = this.commit(ctx, prev, next, dry);
    this.send(ctx.res, 200, this.out(ctx, saved), ctx.warnings);
  }

  private async doPatch(ctx: Ctx): Promise<void> {
    const { raw, type } = await this.body(ctx);
    const dry = this.dryRun(ctx);
    const supported = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];
    if (!supported.includes(type)) {
      throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${supported.join(', ')}`);
    }
    const patch = this.parse(raw, type);
    const store = this.o.store;
    const prevRaw = store.get(ctx.def.gr, ctx.def.namespaced ? ctx.ns : '', ctx.name);
    if (type === 'application/apply-patch+yaml') return this.doApply(ctx, prevRaw, patch, dry);
    if (!prevRaw) throw notFound(this.gr(ctx), ctx.name);
    const prev = this.out(ctx, prevRaw);
    let next: unknown;
    if (type === 'application/json-patch+json') {
      if (!Array.isArray(patch)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
      try {
        next = jsonpatch.applyPatch(structuredClone(prev), patch as jsonpatch.Operation[], true, false).newDocument;
      } catch (e) {
        const msg = (e as Error).message.split('\n')[0];
        if ((e as { name?: string }).name === 'TEST_OPERATION_FAILED') throw invalid(ctx.def.kind, ctx.def.group, ctx.name, [{ reason: 'FieldValueInvalid', message: `testing value failed`, field: '' }]);
        throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${msg}`);
      }
    } else {
      if (!isObj(patch)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
      next = type === 'application/strategic-merge-patch+json' && ctx.def.builtin ? strategicMerge(prev, patch) : mergePatch(prev, patch);
    }
    if (!isObj(next)) throw badRequest('the patch did not produce an object');
    if (!isObj(next.metadata ?? {})) throw badRequest('metadata must be an object');
    next.metadata ??= {};
    if (next.metadata.name !== undefined && next.metadata.name !== ctx.name) throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${ctx.name})`);
    next.metadata.name = ctx.name;
    this.checkTypeMeta(ctx, next);
    const pr = (patch as Obj)?.metadata?.resourceVersion;
    if (typeof pr === 'string' && pr && pr !== prevRaw.metadata.resourceVersion) throw conflict(this.gr(ctx), ctx.name);
    const prepared = this.prepare(ctx, prevRaw, next, this.fieldManager(ctx));
    const saved = this.commit(ctx, prevRaw, prepared, dry);
    this.send(ctx.res, 200, this.out(ctx, saved), ctx.warnings);
  }

  private doApply(ctx: Ctx, prevRaw: Obj | undefined, patch: unknown, dry: boolean): void {
    if (!isObj(patch)) throw badRequest('the apply patch must be an object');
    const manager = ctx.q.get('fieldManager');
    if (!manager) throw badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
    if (patch.apiVersion !== ctx.apiVersion || patch.kind !== ctx.def.kind) {
      throw badRequest(`invalid object type: ${patch.apiVersion ?? ''}, Kind=${patch.kind ?? ''}; expected ${ctx.apiVersion}, Kind=${ctx.def.kind}`);
    }
    if (!isObj(patch.metadata ?? {})) throw badRequest('metadata must be an object');
    patch.metadata ??= {};
    if (patch.metadata.name !== undefined && patch.metadata.name !== ctx.name) throw badRequest(`the name of the object (${patch.metadata.name}) does not match the name on the URL (${ctx.name})`);
    patch.metadata.name = ctx.name;
    if (ctx.def.namespaced) {
      if (patch.metadata.namespace && patch.metadata.namespace !== ctx.ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      patch.metadata.namespace = ctx.ns;
    }
    delete patch.metadata.managedFields;
    const rv = patch.metadata.resourceVersion;
    delete patch.metadata.resourceVersion;
    if (prevRaw && rv && rv !== prevRaw.metadata.resourceVersion) throw conflict(this.gr(ctx), ctx.name);
    if (!prevRaw) this.ensureNamespace(ctx, true);
    const force = bool(ctx.q.get('force'));
    const live = prevRaw ? this.out(ctx, prevRaw) : undefined;
    const r = ssaApply(live, patch, manager, ctx.apiVersion, force, ctx.sub || undefined, ctx.version.schema);
    if ('conflicts' in r) {
      throw new ApiError(409, 'Conflict', conflictMessage(r.conflicts, ctx.apiVersion), {
        name: ctx.name, group: ctx.def.group || undefined, kind: ctx.def.resource,
        causes: r.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${ctx.apiVersion}`, field: c.field })),
      });
    }
    const next = r.object;
    next.apiVersion = ctx.apiVersion;
    next.kind = ctx.def.kind;
    const managed = next.metadata.managedFields;
    const prepared = this.prepare(ctx, prevRaw, next, null);
    prepared.metadata.managedFields = ctx.sub === 'status' && prevRaw ? managed : managed;
    const saved = this.commit(ctx, prevRaw, prepared, dry);
    this.send(ctx.res, prevRaw ? 200 : 201, this.out(ctx, saved), ctx.warnings);
  }

  private async deleteOptions(ctx: Ctx): Promise<Obj> {
    const { raw, type } = await this.body(ctx);
    if (!raw.trim()) return {};
    const o = this.parse(raw, type || 'application/json');
    return isObj(o) ? o : {};
  }

  private deleteOne(ctx: Ctx, prev: Obj, opts: Obj, dry: boolean): Obj {
    const store = this.o.store;
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== prev.metadata.uid) throw conflict(this.gr(ctx), prev.metadata.name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${prev.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== prev.metadata.resourceVersion) throw conflict(this.gr(ctx), prev.metadata.name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${prev.metadata.resourceVersion}`);
    const ns = ctx.def.namespaced ? prev.metadata.namespace : '';
    const isNs = ctx.def.gr === '/namespaces';
    if (isNs && ['default', 'kube-system', 'kube-public'].includes(prev.metadata.name)) {
      throw new ApiError(403, 'Forbidden', `namespaces "${prev.metadata.name}" is forbidden: this namespace may not be deleted`, { name: prev.metadata.name, kind: 'namespaces' });
    }
    if (prev.metadata.finalizers?.length || isNs) {
      if (prev.metadata.deletionTimestamp) return prev;
      const next = structuredClone(prev);
      next.metadata.deletionTimestamp = nowIso();
      next.metadata.deletionGracePeriodSeconds = 0;
      if (isNs) next.status = { ...(next.status ?? {}), phase: 'Terminating' };
      if (dry) return next;
      const saved = store.write('MODIFIED', ctx.def.gr, ns, prev.metadata.name, next, prev);
      if (isNs) this.sweepNamespace(prev.metadata.name);
      return saved;
    }
    if (dry) return prev;
    const gone = store.write('DELETED', ctx.def.gr, ns, prev.metadata.name, structuredClone(prev), prev);
    this.afterDelete(ctx.def, gone);
    return gone;
  }

  /** Deletes everything in a terminating namespace, then the namespace once nothing is left. */
  private sweepNamespace(name: string): void {
    if (this.nsSweeps.has(name)) return;
    this.nsSweeps.add(name);
    const run = () => {
      try {
        sweep();
      } catch (e) {
        this.o.log('namespace cleanup failed; retrying', { namespace: name, error: String(e) });
        if (!this.closed) setTimeout(run, 1000).unref();
      }
    };
    const sweep = () => {
      if (this.closed) return;
      const store = this.o.store;
      let left = 0;
      for (const def of this.defs.values()) {
        if (!def.namespaced || def.fromStorage) continue;
        for (const o of [...store.iterate(def.gr, name)]) {
          left++;
          if (o.metadata.finalizers?.length) {
            if (!o.metadata.deletionTimestamp) store.write('MODIFIED', def.gr, name, o.metadata.name, { ...o, metadata: { ...o.metadata, deletionTimestamp: nowIso(), deletionGracePeriodSeconds: 0 } }, o);
          } else store.write('DELETED', def.gr, name, o.metadata.name, o, o);
        }
      }
      const ns = store.get('/namespaces', '', name);
      if (!ns) {
        this.nsSweeps.delete(name);
        return;
      }
      const still = [...this.defs.values()].some((d) => d.namespaced && !d.fromStorage && store.hasAny(d.gr, name));
      if (!still) {
        store.write('DELETED', '/namespaces', '', name, ns, ns);
        this.nsSweeps.delete(name);
      } else setTimeout(run, left ? 500 : 0).unref();
    };
    setImmediate(run);
  }

  private async doDelete(ctx: Ctx): Promise<void> {
    const opts = await this.deleteOptions(ctx);
    const dry = this.dryRun(ctx) || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All'));
    const prev = this.getStored(ctx);
    const r = this.deleteOne(ctx, prev, opts, dry);
    this.send(ctx.res, 200, this.out(ctx, r), ctx.warnings);
  }

  private async doDeleteCollection(ctx: Ctx): Promise<void> {
    const opts = await this.deleteOptions(ctx);
    const dry = this.dryRun(ctx) || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All'));
    const { labels, fields } = this.selectors(ctx);
    const items: Obj[] = [];
    for (const o of [...this.o.store.iterate(ctx.def.gr, ctx.def.namespaced ? (ctx.ns || null) : '')]) {
      if (!matches(labels, o.metadata.labels) || (fields.length && !fieldMatches(fields, this.out(ctx, o)))) continue;
      if (ctx.def.gr === '/namespaces') continue;
      items.push(this.out(ctx, this.deleteOne(ctx, o, {}, dry)));
    }
    this.send(ctx.res, 200, { apiVersion: ctx.apiVersion, kind: ctx.def.listKind, metadata: { resourceVersion: String(this.o.store.currentRv) }, items }, ctx.warnings);
  }
}

/** Go's strconv.ParseBool truthy values (clients send `true`, `True`, `1`). */
function bool(v: string | null): boolean {
  return v !== null && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v);
}

function kubeVersionCmp(a: string, b: string): number {
  const rank = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [3, 0, 0, v] as const;
    return [m[2] === 'alpha' ? 2 : m[2] === 'beta' ? 1 : 0, -Number(m[1]), -Number(m[3] ?? 0), v] as const;
  };
  const ra = rank(a), rb = rank(b);
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return (ra[i] as number) - (rb[i] as number);
  return a < b ? -1 : a > b ? 1 : 0;
}
