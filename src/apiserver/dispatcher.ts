/**
 * The request dispatcher: health and version, authentication, discovery and OpenAPI, then for
 * resource requests the registry lookup, authorization and the verb's handler. Every failure
 * becomes a Status; internal errors and 5xx are logged.
 */
import { errorFields, type Logger } from '../log.js';
import type { Authenticator, User } from './auth/tokens.js';
import { forbidden, pathAttributes } from './auth/authorizer.js';
import { ApiError, internalError, methodNotAllowed, pathNotFound } from './errors.js';
import { Discovery, SERVER_VERSION } from './discovery/discovery.js';
import { openapiV2Protobuf } from './discovery/openapi-protobuf.js';
import { create } from './handlers/create.js';
import { deleteCollection, deleteOne } from './handlers/delete.js';
import { get, list } from './handlers/get.js';
import { patch } from './handlers/patch.js';
import { review } from './handlers/review.js';
import { notRun } from './registry/unserved.js';
import type { Handler, RequestScope, Services } from './handlers/scope.js';
import { update } from './handlers/update.js';
import { watch } from './handlers/watch.js';
import type { ServerLimits } from './limits.js';
import type { Metrics } from './metrics.js';
import type { Req, Res } from './request/http.js';
import { InflightLimiter } from './request/inflight.js';
import { cleanPath, parseRequestInfo, type NonResourceRequestInfo, type ResourceRequestInfo, type Verb } from './request/info.js';

/** One handler per verb (kube's endpoints/handlers). */
export const VERB_HANDLERS: Readonly<Record<Verb, Handler>> = {
  get,
  list,
  watch,
  create,
  update,
  patch,
  delete: deleteOne,
  deletecollection: deleteCollection,
};

/** Verbs that act on one named object, and those that never take a name. */
const NAMED: ReadonlySet<Verb> = new Set(['get', 'update', 'patch', 'delete']);
const UNNAMED: ReadonlySet<Verb> = new Set(['create']);

/** A request slower than this is logged as a warning (watches excepted). */
const SLOW_REQUEST_MS = 1000;

/** What a request was, for the request metrics, and what is undone once its reply is done. */
interface Outcome {
  verb: string;
  resource: string;
  code: number;
  user?: string;
  /** Counts the request out of its user's allowance (set by admit). */
  leave?: () => void;
  /** The request timeout (set by admit; watches have none). */
  deadline?: NodeJS.Timeout;
}

interface NonResourceRoute {
  path: RegExp;
  serve(this: Dispatcher, req: Req, res: Res, info: NonResourceRequestInfo, url: URL): void;
}

export class Dispatcher {
  private readonly discovery: Discovery;
  private readonly inflight: InflightLimiter;

  /** Paths that are not resources (decoded; matched in order). */
  private static readonly routes: NonResourceRoute[] = [
    {
      path: /^\/apis?$/,
      serve(req, res, info) {
        this.serveRoot(req, res, info.path === '/api');
      },
    },
    {
      path: /^\/openapi\/v2$/,
      serve(req, res) {
        this.serveOpenapiV2(req, res);
      },
    },
    {
      path: /^\/openapi\/v3$/,
      serve(_req, res) {
        this.json(res, 200, this.discovery.openapiV3Index());
      },
    },
    {
      path: /^\/openapi\/v3\/.+$/,
      serve(_req, res, info, url) {
        this.serveOpenapiV3(res, info.segments.slice(2).join('/'), url);
      },
    },
    {
      path: /^\/api\/[^/]+$/,
      serve(_req, res, info) {
        this.json(res, 200, this.discovery.resourceList('', info.segments[1]));
      },
    },
    {
      path: /^\/apis\/[^/]+$/,
      serve(_req, res, info) {
        this.json(res, 200, this.discovery.group(info.segments[1]));
      },
    },
    {
      path: /^\/apis\/[^/]+\/[^/]+$/,
      serve(_req, res, info) {
        this.json(res, 200, this.discovery.resourceList(info.segments[1], info.segments[2]));
      },
    },
  ];

  constructor(
    private readonly services: Services,
    private readonly authenticator: Authenticator,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly limits: Pick<ServerLimits, 'requestTimeoutSeconds' | 'maxInflightPerUser' | 'maxWatchesPerUser'>,
  ) {
    this.discovery = new Discovery(services.registry);
    this.inflight = new InflightLimiter(limits.maxInflightPerUser, limits.maxWatchesPerUser);
  }

  async handle(req: Req, res: Res): Promise<void> {
    const warnings: string[] = [];
    const started = process.hrtime.bigint();
    const outcome: Outcome = { verb: (req.method ?? 'GET').toLowerCase(), resource: '', code: 200 };
    const writeHead = res.writeHead.bind(res);
    res.writeHead = (code: number, headers?: Record<string, string | string[]>) => {
      outcome.code = code;
      return writeHead(code, headers);
    };
    // One listener undoes all a request holds once its reply is done (each listener on a stream costs, every request).
    res.on('close', () => {
      outcome.leave?.();
      clearTimeout(outcome.deadline);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.requests.inc({ verb: outcome.verb, resource: outcome.resource, code: String(outcome.code) });
      if (outcome.verb !== 'watch') this.metrics.latency.observe({ verb: outcome.verb }, seconds);
      this.logRequest(req, outcome, seconds * 1000);
    });
    try {
      await this.route(req, res, outcome, warnings);
    } catch (e) {
      const err = e instanceof ApiError ? e : internalError((e as Error)?.message ?? String(e));
      if (err.code >= 500) {
        this.log.error('request failed', { verb: outcome.verb, resource: outcome.resource || undefined, path: req.url, code: err.code, ...errorFields(e) });
        if (!(e instanceof ApiError)) this.log.debug('request failed: stack', { path: req.url, stack: String((e as Error)?.stack ?? e) });
      }
      try {
        if (!res.headersSent) this.services.respond.sendError(res, err, warnings);
        else res.end();
      } catch {
        // the client went away; nothing left to tell it
      }
    }
  }

  /**
   * The request log: one debug line per request, a warning for a slow one (watches last by
   * design), an error for a 5xx (the failure itself was logged with its cause in handle()).
   */
  private logRequest(req: Req, o: Outcome, ms: number): void {
    const level = o.code >= 500 ? 'error' : o.verb !== 'watch' && ms > SLOW_REQUEST_MS ? 'warn' : 'debug';
    // winston formats a line before its transports drop it: the per-request debug line is built only when it is wanted.
    if (level === 'debug' && !this.log.isDebugEnabled()) return;
    const fields = { verb: o.verb, path: req.url, code: o.code, durationMs: Math.round(ms * 10) / 10, user: o.user };
    if (level === 'error') this.log.error('request answered with a server error', fields);
    else if (level === 'warn') this.log.warn('slow request', fields);
    else this.log.debug('request', fields);
  }

  private async route(req: Req, res: Res, outcome: Outcome, warnings: string[]): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://x');
    const path = cleanPath(url.pathname);
    if (/^\/(healthz|readyz|livez)(\/.*)?$/.test(path)) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (path === '/version') return this.json(res, 200, SERVER_VERSION);
    const user = this.authenticator.authenticate(req.headers.authorization);
    if (!user) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    outcome.user = user.name;
    if (path === '/metrics') {
      this.authorizePath(user, path, req.method);
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(await this.metrics.registry.metrics());
      return;
    }
    const info = parseRequestInfo(req.method ?? 'GET', path, url.searchParams);
    this.admit(req, res, user, info.isResourceRequest && info.verb === 'watch', outcome);
    if (!info.isResourceRequest) {
      const decoded = `/${info.segments.join('/')}`;
      const route = Dispatcher.routes.find((r) => r.path.test(decoded));
      if (!route) throw pathNotFound();
      this.authorizePath(user, decoded, req.method);
      return route.serve.call(this, req, res, info, url);
    }
    return this.serveResource(req, res, user, info, url.searchParams, outcome, warnings);
  }

  private serveResource(
    req: Req,
    res: Res,
    user: User,
    info: ResourceRequestInfo,
    query: URLSearchParams,
    outcome: Outcome,
    warnings: string[],
  ): void | Promise<void> {
    const resolved = this.services.registry.resolve(info.group, info.version, info.resource);
    if (!resolved) throw pathNotFound();
    const { kind, version } = resolved;
    if (info.namespace && !kind.namespaced) throw pathNotFound();
    const own = info.subresource ? kind.subresources?.[info.subresource] : undefined;
    if (info.subresource && !own && !(info.subresource === 'status' && version.statusSubresource)) throw pathNotFound();
    outcome.resource = kind.group ? `${kind.resource}.${kind.group}` : kind.resource;
    const { verb } = info;
    if (!verb) throw methodNotAllowed();
    const scope: RequestScope = {
      req,
      res,
      user,
      info,
      kind,
      version,
      apiVersion: info.group ? `${info.group}/${info.version}` : info.version,
      namespace: info.namespace,
      name: info.name,
      subresource: info.subresource,
      query,
      warnings,
      services: this.services,
    };
    if (kind.review) {
      if (verb !== 'create') throw methodNotAllowed();
      return review(scope);
    }
    const attrs = {
      user,
      verb,
      resourceRequest: true,
      group: kind.group,
      resource: kind.resource,
      subresource: info.subresource,
      name: info.name,
      namespace: info.namespace,
      namespaced: kind.namespaced,
    };
    if (!this.services.authorizer.authorize(attrs).allowed) throw forbidden(attrs);
    if (kind.unserved && (verb === 'create' || verb === 'update' || verb === 'patch')) throw notRun(kind);
    if (own) {
      if (!info.name || !own.verbs.includes(verb)) throw methodNotAllowed();
      if (kind.namespaced && !info.namespace) throw pathNotFound();
      outcome.verb = verb;
      return own.handler(scope);
    }
    if ((UNNAMED.has(verb) && info.name) || ((verb === 'update' || verb === 'patch') && !info.name)) throw methodNotAllowed();
    // Named verbs on a namespaced kind need the namespace in the path.
    if (kind.namespaced && !info.namespace && (NAMED.has(verb) || verb === 'create')) throw pathNotFound();
    outcome.verb = verb;
    return VERB_HANDLERS[verb](scope);
  }

  /** Non-resource paths (discovery, OpenAPI, /metrics) are authorized by path, the verb being the method. */
  private authorizePath(user: User, path: string, method = 'GET'): void {
    const attrs = pathAttributes(user, method.toLowerCase(), path);
    if (!this.services.authorizer.authorize(attrs).allowed) throw forbidden(attrs);
  }

  /**
   * Counts the request against its user's allowance (429 past it) until its reply is done, and
   * holds every request but a watch to the request timeout: a reply not started by then is a 504,
   * one a client is too slow to take is cut off.
   */
  private admit(req: Req, res: Res, user: User, watch: boolean, outcome: Outcome): void {
    outcome.leave = this.inflight.enter(user.name, watch);
    if (watch) return;
    // A body still arriving at the timeout gets its own 408 (BodyReader); this comes just after.
    outcome.deadline = setTimeout(
      () => {
        if (!res.headersSent) {
          const err = new ApiError(504, 'Timeout', `Timeout: request did not complete within the allotted timeout of ${this.limits.requestTimeoutSeconds}s`);
          err.closeConnection = true;
          this.services.respond.sendError(res, err, [], true);
        } else req.destroy();
      },
      this.limits.requestTimeoutSeconds * 1000 + 1000,
    );
    outcome.deadline.unref();
  }

  /** A JSON reply, or 404 when there is nothing to send. */
  private json(res: Res, code: number, body: object | undefined): void {
    if (body === undefined) throw pathNotFound();
    this.services.respond.send(res, code, body);
  }

  private serveRoot(req: Req, res: Res, core: boolean): void {
    // Aggregated discovery (one request instead of one per group/version), when the client asks.
    const accept = String(req.headers.accept ?? '').replace(/\s+/g, '');
    const m = /application\/json;g=apidiscovery\.k8s\.io;v=(v2beta1|v2);as=APIGroupDiscoveryList/.exec(accept);
    if (m) {
      res.writeHead(200, { 'content-type': `application/json;g=apidiscovery.k8s.io;v=${m[1]};as=APIGroupDiscoveryList`, 'cache-control': 'no-cache, private' });
      res.end(JSON.stringify(this.discovery.aggregated(core, m[1])));
      return;
    }
    this.json(res, 200, core ? this.discovery.coreVersions() : this.discovery.groupList());
  }

  private serveOpenapiV2(req: Req, res: Res): void {
    const accept = String(req.headers.accept ?? '');
    if (/protobuf/.test(accept) && !/application\/json/.test(accept)) {
      // kube-openapi answers protobuf as octet-stream: kubectl 1.27 cannot parse the '@' media type.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(openapiV2Protobuf(this.discovery.openapiV2()));
      return;
    }
    this.json(res, 200, this.discovery.openapiV2());
  }

  private serveOpenapiV3(res: Res, gv: string, url: URL): void {
    const doc = this.discovery.openapiV3(gv);
    if (!doc) throw pathNotFound();
    // A request naming the current hash may be cached for good: the document under a hash never changes.
    const cache = url.searchParams.get('hash') === doc.hash ? 'public, immutable' : 'no-cache, private';
    res.writeHead(200, { 'content-type': 'application/json', etag: `"${doc.hash}"`, 'cache-control': cache });
    res.end(JSON.stringify(doc.body));
  }
}
