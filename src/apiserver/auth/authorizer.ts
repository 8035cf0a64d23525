/**
 * Authorization: whether a user may do what a request asks (kube's authorizer.Attributes →
 * Decision). The role authorizer here knows three roles; an RBAC authorizer reading Roles and
 * Bindings implements the same interface.
 */
import { ApiError, qualifiedResource } from '../errors.js';
import type { Verb } from '../request/info.js';
import type { User } from './tokens.js';

export interface Attributes {
  user: User;
  /** A request verb (get, list, …, deletecollection), or any other verb a review asks about. */
  verb: Verb | string;
  /** false: a path such as /metrics or /openapi/v3 (only `path` and `verb` mean anything). */
  resourceRequest: boolean;
  path?: string;
  group: string;
  resource: string;
  subresource: string;
  name: string;
  /** '' for cluster-scoped resources and for requests across all namespaces. */
  namespace: string;
  /** Whether the resource lives in namespaces at all. */
  namespaced: boolean;
}

export interface Decision {
  allowed: boolean;
  /** Why it was allowed (SelfSubjectAccessReview shows it); '' when there is nothing to say. */
  reason: string;
}

export interface Authorizer {
  authorize(a: Attributes): Decision;
}

const READ: ReadonlySet<string> = new Set<Verb>(['get', 'list', 'watch']);

/**
 * The token file's roles: admin may do everything in its namespaces (all of them: everything),
 * hub reads and writes namespaced objects in its namespaces and reads cluster-scoped ones,
 * viewer only reads. Every authenticated user may read non-resource paths.
 */
export class RoleAuthorizer implements Authorizer {
  authorize(a: Attributes): Decision {
    if (!a.resourceRequest) return { allowed: true, reason: '' };
    const allowed = this.allows(a.user, a.verb, a.namespaced, a.namespace);
    return { allowed, reason: allowed ? `nbswarm role ${a.user.role} allows it` : '' };
  }

  private allows(user: User, verb: string, namespaced: boolean, namespace: string): boolean {
    const read = READ.has(verb);
    if (user.role === 'admin' && user.namespaces === null) return true;
    if (user.role === 'viewer' && !read) return false;
    if (!namespaced) return read;
    if (user.namespaces === null) return true;
    return namespace !== '' && user.namespaces.includes(namespace);
  }
}

/** The groups a user is reported in (SelfSubjectReview, and the subjects RBAC will bind). */
export function userGroups(user: User): string[] {
  return [`nbswarm:${user.role}`, 'system:authenticated'];
}

/** The 403 kube answers a denied request with. */
export function forbidden(a: Attributes): ApiError {
  const what = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}`;
  const where = a.namespaced && a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
  const gr = { group: a.group, resource: a.resource };
  return new ApiError(403, 'Forbidden', `${qualifiedResource(gr)}${a.name ? ` "${a.name}"` : ''} is forbidden: User "${a.user.name}" cannot ${a.verb} resource "${what}" in API group "${a.group}"${where}`, {
    name: a.name || undefined, group: a.group || undefined, kind: a.resource,
  });
}
