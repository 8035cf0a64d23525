/**
 * What every verb handler gets (kube's RequestScope): the request, who sent it, the resolved
 * kind and version, and the server's services; plus the checks several verbs share.
 */
import type { Authorizer } from '../auth/authorizer.js';
import { badRequest, notFound } from '../errors.js';
import { decodeObjectMeta } from '../registry/object-meta.js';
import type { KindRegistry } from '../registry/registry.js';
import type { RequestTarget, RestStore, WriteRequest } from '../registry/rest.js';
import type { ByteBudget } from '../limits.js';
import type { BodyReader } from '../request/body.js';
import type { Req, Res } from '../request/http.js';
import type { ResourceRequestInfo } from '../request/info.js';
import type { Responder } from '../request/respond.js';
import { parseFieldSelector, parseLabelSelector, SelectorError, type FieldReq, type Requirement } from '../request/selectors.js';
import type { Store } from '../storage/sqlite.js';
import type { JsonObject, KubeObject, StoredObject } from '../types.js';
import { isObject } from '../../util/json.js';
import type { Watches } from './watch-buffers.js';

/** The server's parts the handlers use. */
export interface Services {
  storage: Store;
  bodies: BodyReader;
  /** Bytes of list replies in flight, all requests together (429 past it). */
  lists: ByteBudget;
  rest: RestStore;
  registry: KindRegistry;
  authorizer: Authorizer;
  respond: Responder;
  watches: Watches;
}

export interface RequestScope extends RequestTarget {
  req: Req;
  res: Res;
  info: ResourceRequestInfo;
  query: URLSearchParams;
  services: Services;
}

export type Handler = (s: RequestScope) => void | Promise<void>;

/** Storage → wire form for the requested version. */
export function toWire(s: RequestScope, o: StoredObject): StoredObject {
  if (s.kind.fromStorage) return s.kind.fromStorage(o) as StoredObject;
  if (o.apiVersion !== s.apiVersion) return { ...o, apiVersion: s.apiVersion };
  return o;
}

/** The stored object the request names, or 404. */
export function getStored(s: RequestScope): StoredObject {
  const o = s.services.rest.get(s.kind, s.namespace, s.name);
  if (!o) throw notFound(s.kind, s.name);
  return o;
}

/**
 * Checks an object's apiVersion and kind against the URL and makes `metadata` an object with the
 * URL's namespace.
 */
export function checkTypeMeta(s: RequestScope, o: JsonObject): KubeObject {
  if (o.kind !== undefined && o.kind !== s.kind.kind)
    throw badRequest(`the kind in the data (${String(o.kind)}) does not match the expected kind (${s.kind.kind})`);
  if (o.apiVersion !== undefined && o.apiVersion !== s.apiVersion) {
    throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${s.apiVersion})`);
  }
  decodeMetadata(s, o);
  const obj = o as KubeObject;
  if (s.kind.namespaced) checkNamespace(s, obj);
  return obj;
}

/**
 * checkMetadata, then ObjectMeta's field types (400 naming the field) and its unknown fields,
 * dropped as fieldValidation says (kube's decoder does both before anything reads the object).
 */
export function decodeMetadata(s: RequestScope, o: JsonObject): asserts o is KubeObject {
  checkMetadata(o);
  const unknown = decodeObjectMeta(o.metadata as JsonObject);
  if (!unknown.length) return;
  const mode = fieldValidation(s);
  if (mode === 'Strict') throw badRequest(`strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`);
  if (mode === 'Warn') for (const f of unknown) s.warnings.push(`unknown field "${f}"`);
}

/** `metadata` must be an object; a missing one becomes {}. */
export function checkMetadata(o: JsonObject): asserts o is KubeObject {
  if (!isObject(o.metadata ?? {})) throw badRequest('metadata must be an object');
  o.metadata ??= {};
}

/** The body's namespace, when it has one, must be the URL's; the URL's is filled in. */
export function checkNamespace(s: RequestScope, o: KubeObject): void {
  if (o.metadata.namespace && o.metadata.namespace !== s.namespace)
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  o.metadata.namespace = s.namespace;
}

/** The body's name, when it has one, must be the URL's; the URL's is filled in. */
export function checkName(s: RequestScope, o: KubeObject): void {
  if (o.metadata.name !== undefined && o.metadata.name !== s.name)
    throw badRequest(`the name of the object (${String(o.metadata.name)}) does not match the name on the URL (${s.name})`);
  o.metadata.name = s.name;
}

/** The fieldManager query parameter, else the client's name from its User-Agent. */
export function fieldManager(s: RequestScope): string {
  const fm = s.query.get('fieldManager');
  if (fm) {
    if (fm.length > 128) throw badRequest('fieldManager: Too long: must have at most 128 bytes');
    return fm;
  }
  const ua = String(s.req.headers['user-agent'] ?? 'unknown');
  return ua.split('/')[0] || 'unknown';
}

/** dryRun=All (the only value kube knows) on the query. */
export function dryRun(s: RequestScope): boolean {
  const d = s.query.getAll('dryRun');
  const bad = d.find((x) => x !== 'All');
  if (bad !== undefined) throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(bad)}: supported values: "All"`);
  return d.length > 0;
}

/** The fieldValidation query parameter: Strict, Warn (the default) or Ignore. */
export function fieldValidation(s: RequestScope): 'Strict' | 'Warn' | 'Ignore' {
  const v = s.query.get('fieldValidation') ?? 'Warn';
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw badRequest(`fieldValidation: Unsupported value: ${JSON.stringify(v)}: supported values: "Ignore", "Strict", "Warn"`);
}

/** Members a body named twice: a 400 under fieldValidation=Strict, warnings under Warn (kube's strict decoding). */
export function checkDuplicates(s: RequestScope, duplicates: string[]): void {
  if (!duplicates.length) return;
  const mode = fieldValidation(s);
  if (mode === 'Strict') throw badRequest(`strict decoding error: ${duplicates.map((d) => `duplicate field "${d}"`).join(', ')}`);
  if (mode === 'Warn') for (const d of duplicates) s.warnings.push(`duplicate field "${d}"`);
}

/** The write the request makes, for the registry's write path. */
export function writeRequest(s: RequestScope, dry: boolean): WriteRequest {
  return {
    kind: s.kind,
    version: s.version,
    apiVersion: s.apiVersion,
    namespace: s.namespace,
    name: s.name,
    subresource: s.subresource,
    user: s.user,
    dryRun: dry,
    fieldValidation: fieldValidation(s),
    warnings: s.warnings,
    verb: s.info.verb,
  };
}

/** A body that must be one object (create, update), its duplicated members reported as fieldValidation says. */
export async function readObjectBody(s: RequestScope): Promise<JsonObject> {
  const { value, duplicates } = await s.services.bodies.readObject(s.req);
  checkDuplicates(s, duplicates);
  return value;
}

/** The request's label and field selectors; a field the kind cannot select by is a 400. */
export function selectors(s: RequestScope): { labels: Requirement[]; fields: FieldReq[] } {
  try {
    const labels = parseLabelSelector(s.query.get('labelSelector'));
    const fields = parseFieldSelector(s.query.get('fieldSelector'));
    const allowed = new Set(['metadata.name', 'metadata.namespace', ...(s.kind.fieldPaths ?? []), ...(s.version.selectableFields ?? [])]);
    for (const f of fields) {
      if (!allowed.has(f.path)) throw new SelectorError(`field label not supported: ${f.path}`);
    }
    return { labels, fields };
  } catch (e) {
    if (e instanceof SelectorError) throw badRequest(e.message);
    throw e;
  }
}

/** The Accept header's first type asks for a meta.k8s.io Table. */
export function wantsTable(s: RequestScope): boolean {
  const first = String(s.req.headers.accept ?? '').split(',')[0] ?? '';
  return /as=Table/.test(first) && /g=meta\.k8s\.io/.test(first);
}

/** The Accept header's first type asks for PartialObjectMetadata. */
export function wantsMetadataOnly(s: RequestScope): boolean {
  const first = String(s.req.headers.accept ?? '').split(',')[0] ?? '';
  return /as=PartialObjectMetadata/.test(first);
}

/** `namespace` for storage reads: '' for cluster-scoped kinds, null for every namespace. */
export function namespaceFilter(s: RequestScope): string | null {
  return s.kind.namespaced ? s.namespace || null : '';
}
