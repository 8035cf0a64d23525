/**
 * What a request asks for, from its method and path alone (kube-apiserver's RequestInfo): the verb,
 * and for a resource request the group, version, namespace, resource, name and subresource.
 * Nothing here knows which resources exist; the dispatcher looks them up in the registry.
 */
import { badRequest, pathNotFound } from '../errors.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** Every verb, in the order discovery lists them. */
export const VERBS: readonly Verb[] = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export interface ResourceRequestInfo {
  isResourceRequest: true;
  path: string;
  /** undefined when the HTTP method means nothing here (a 405 once the resource is known to exist). */
  verb: Verb | undefined;
  apiPrefix: 'api' | 'apis';
  group: string;
  version: string;
  /** '' for cluster-scoped requests and for lists across all namespaces. */
  namespace: string;
  resource: string;
  name: string;
  subresource: string;
}

/** Discovery, OpenAPI, health, version, metrics: `segments` are the decoded path parts. */
export interface NonResourceRequestInfo {
  isResourceRequest: false;
  path: string;
  segments: string[];
}

export type RequestInfo = ResourceRequestInfo | NonResourceRequestInfo;

/** Go's strconv.ParseBool truthy values (clients send `true`, `True`, `1`). */
export function parseBool(v: string | null): boolean {
  return v !== null && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v);
}

/** The path without trailing slashes (`/` for the root). */
export function cleanPath(pathname: string): string {
  return pathname.replace(/\/+$/, '') || '/';
}

/**
 * Parses a request. `path` is cleaned (see cleanPath) but still URL-encoded. Throws 400 for a bad
 * escape and 404 for paths no resource can have (too many parts).
 */
export function parseRequestInfo(method: string, path: string, query: URLSearchParams): RequestInfo {
  let segments: string[];
  try {
    segments = path.split('/').filter(Boolean);
    // A segment without an escape decodes to itself.
    if (path.includes('%')) segments = segments.map(decodeURIComponent);
  } catch {
    throw badRequest(`invalid URL escape in ${JSON.stringify(path)}`);
  }
  const [prefix] = segments;
  // /api/v1/… and /apis/<group>/<version>/…: anything shorter is discovery.
  const partsBeforeResource = prefix === 'api' ? 2 : prefix === 'apis' ? 3 : Infinity;
  if (segments.length <= partsBeforeResource) return { isResourceRequest: false, path, segments };
  const group = prefix === 'apis' ? segments[1] : '';
  const version = segments[partsBeforeResource - 1];
  let rest = segments.slice(partsBeforeResource);
  let watch = parseBool(query.get('watch'));
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let namespace = '',
    resource: string | undefined,
    name = '',
    subresource = '';
  // namespaces/<ns>/<resource>…, except the namespace's own subresources (namespaces/<ns>/status).
  const namespaceOwn = rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize');
  if (rest[0] === 'namespaces' && rest.length >= 3 && !namespaceOwn) {
    if (rest.length > 5) throw pathNotFound();
    [, namespace, resource, name = '', subresource = ''] = rest;
  } else {
    if (rest.length > 3) throw pathNotFound();
    [resource, name = '', subresource = ''] = rest;
  }
  if (!resource) throw pathNotFound();
  // The namespace controller's /finalize writes what /status does here (nothing else reads spec.finalizers).
  if (group === '' && resource === 'namespaces' && subresource === 'finalize') subresource = 'status';
  return {
    isResourceRequest: true,
    path,
    verb: verbOf(method, name !== '', watch),
    apiPrefix: prefix === 'api' ? 'api' : 'apis',
    group,
    version,
    namespace,
    resource,
    name,
    subresource,
  };
}

function verbOf(method: string, named: boolean, watch: boolean): Verb | undefined {
  switch (method.toUpperCase()) {
    case 'GET':
      return watch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return undefined;
  }
}
