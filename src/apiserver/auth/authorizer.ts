/**
 * Authorization: whether a user may do what a request asks (kube's authorizer.Attributes →
 * Decision). rbac/authorizer.ts implements it from Roles, ClusterRoles and their bindings.
 */
import { ApiError, qualifiedResource } from '../errors.js';
import type { Verb } from '../request/info.js';
import type { PolicyRule } from './rbac/rules.js';
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

/** The attributes of a request for a path rather than a resource (/metrics, /openapi/v3, …). */
export function pathAttributes(user: User, verb: string, path: string): Attributes {
  return { user, verb, resourceRequest: false, path, group: '', resource: '', subresource: '', name: '', namespace: '', namespaced: false };
}

export interface Decision {
  allowed: boolean;
  /** Why it was allowed (SelfSubjectAccessReview shows it); '' when there is nothing to say. */
  reason: string;
}

export interface Authorizer {
  authorize(a: Attributes): Decision;
  /** Every rule that applies to the user in `namespace` ('' = cluster-wide only), for SelfSubjectRulesReview and the escalation check. */
  rulesFor(user: User, namespace: string): PolicyRule[];
  /** The rules of the Role or ClusterRole a binding refers to ([] when it does not exist). */
  roleRules(kind: string, name: string, namespace: string): PolicyRule[];
}

/** The 403 kube answers a denied request with. */
export function forbidden(a: Attributes): ApiError {
  const what = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}`;
  if (!a.resourceRequest) return new ApiError(403, 'Forbidden', `forbidden: User "${a.user.name}" cannot ${a.verb} path "${a.path ?? ''}"`, {});
  const where = a.namespaced && a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
  const gr = { group: a.group, resource: a.resource };
  return new ApiError(
    403,
    'Forbidden',
    `${qualifiedResource(gr)}${a.name ? ` "${a.name}"` : ''} is forbidden: User "${a.user.name}" cannot ${a.verb} resource "${what}" in API group "${a.group}"${where}`,
    {
      name: a.name || undefined,
      group: a.group || undefined,
      kind: a.resource,
    },
  );
}
