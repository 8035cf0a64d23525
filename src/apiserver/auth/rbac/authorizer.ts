/**
 * The RBAC authorizer: a request is allowed when a rule of a role bound to the user allows it
 * (kube's plugin/pkg/auth/authorizer/rbac). ClusterRoleBindings grant their ClusterRole's rules
 * everywhere; RoleBindings grant a Role's or a ClusterRole's rules in their own namespace; there
 * are no deny rules. Users of the token file are bound implicitly, by their role (see
 * tokenFileGrants). The stored roles and bindings are indexed in memory and re-read after any
 * change to them.
 */
import type { KindRegistry } from '../../registry/registry.js';
import { kindKey } from '../../registry/kinds.js';
import type { Store } from '../../storage/sqlite.js';
import type { KubeObject, StoredObject } from '../../types.js';
import type { Attributes, Authorizer, Decision } from '../authorizer.js';
import type { User } from '../tokens.js';
import { AUTHENTICATED, BUILTIN_CLUSTER_ROLES, CUSTOM_RESOURCES_ANNOTATION, MASTERS } from './bootstrap.js';
import { RBAC_GROUP, readRule, ruleAllows, type PolicyRule, type RuleRequest, type Subject } from './rules.js';

export const RBAC_RESOURCES = ['roles', 'clusterroles', 'rolebindings', 'clusterrolebindings'] as const;

/** Rules granted together, and how to name the grant in a review's reason. */
export interface Grant {
  rules: PolicyRule[];
  describe(): string;
}

interface Binding {
  name: string;
  namespace: string;
  roleKind: string;
  roleName: string;
  subjects: Subject[];
}

interface Index {
  clusterRoles: Map<string, StoredObject>;
  roles: Map<string, StoredObject>;
  clusterBindings: Binding[];
  bindings: Map<string, Binding[]>;
}

const READ = ['get', 'list', 'watch'];

/** Only the built-in roles that cover custom resources may: the annotation on any other role means nothing. */
const COVERS_CUSTOM_RESOURCES: ReadonlySet<string> = new Set(BUILTIN_CLUSTER_ROLES.filter((r) => r.customResources).map((r) => r.name));

/** The groups a user is in: the authenticator's, else those of the token file's role. */
export function userGroups(user: User): string[] {
  if (user.groups) return user.groups;
  return user.role ? [`nbswarm:${user.role}`, AUTHENTICATED] : [AUTHENTICATED];
}

export class RBACAuthorizer implements Authorizer {
  private index: Index | null = null;
  private crdGroups: string[] | null = null;
  /** Each indexed role's rules, parsed once per index (every request evaluates them). */
  private parsed = new WeakMap<KubeObject, PolicyRule[]>();

  constructor(
    private readonly storage: Store,
    private readonly registry: KindRegistry,
  ) {
    // Deletions that bypass the write path (a namespace's sweep) reach the index through the store's events.
    for (const resource of RBAC_RESOURCES) {
      storage.addWatcher({ gr: kindKey(RBAC_GROUP, resource), ns: '', send: () => this.invalidate() });
    }
    registry.onChange(() => {
      this.crdGroups = null;
      this.parsed = new WeakMap();
    });
  }

  /** Forget the index: roles or bindings changed. */
  invalidate(): void {
    this.index = null;
    this.parsed = new WeakMap();
  }

  authorize(a: Attributes): Decision {
    const groups = userGroups(a.user);
    if (groups.includes(MASTERS)) return { allowed: true, reason: `allowed: the user is in the group ${MASTERS}` };
    const req: RuleRequest = {
      verb: a.verb,
      resourceRequest: a.resourceRequest,
      group: a.group,
      resource: a.resource,
      subresource: a.subresource,
      name: a.name,
      path: a.path ?? '',
    };
    for (const g of this.grants(a.user, groups, a.resourceRequest ? a.namespace : '', a.resourceRequest && a.namespaced)) {
      if (g.rules.some((r) => ruleAllows(r, req))) return { allowed: true, reason: `RBAC: allowed by ${g.describe()}` };
    }
    return { allowed: false, reason: '' };
  }

  /** Every rule that applies to `user` in `namespace` ('' = cluster-wide rules only). */
  rulesFor(user: User, namespace: string): PolicyRule[] {
    const groups = userGroups(user);
    if (groups.includes(MASTERS))
      return [
        { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
        { nonResourceURLs: ['*'], verbs: ['*'] },
      ];
    const out: PolicyRule[] = [];
    for (const g of this.grants(user, groups, namespace, namespace !== '')) out.push(...g.rules);
    return out;
  }

  /** The rules of the role a binding refers to (none when it does not exist). */
  roleRules(kind: string, name: string, namespace: string): PolicyRule[] {
    const idx = this.load();
    const role = kind === 'ClusterRole' ? idx.clusterRoles.get(name) : kind === 'Role' ? idx.roles.get(`${namespace}/${name}`) : undefined;
    return role ? this.rulesOf(role) : [];
  }

  /** What a Role or ClusterRole object would grant if stored as it is (the escalation check). */
  rulesOfObject(role: KubeObject): PolicyRule[] {
    return this.parseRules(role);
  }

  private *grants(user: User, groups: string[], namespace: string, namespacedRequest: boolean): Generator<Grant> {
    yield* this.tokenFileGrants(user, namespace, namespacedRequest);
    const idx = this.load();
    for (const b of idx.clusterBindings) {
      const subject = b.subjects.find((s) => subjectMatches(s, user, groups, ''));
      if (!subject) continue;
      const role = idx.clusterRoles.get(b.roleName);
      if (role)
        yield {
          rules: this.rulesOf(role),
          describe: () => `ClusterRoleBinding "${b.name}" of ClusterRole "${b.roleName}" to ${subject.kind} "${subject.name}"`,
        };
    }
    if (!namespace) return;
    for (const b of idx.bindings.get(namespace) ?? []) {
      const subject = b.subjects.find((s) => subjectMatches(s, user, groups, namespace));
      if (!subject) continue;
      const role = b.roleKind === 'ClusterRole' ? idx.clusterRoles.get(b.roleName) : idx.roles.get(`${namespace}/${b.roleName}`);
      if (role)
        yield {
          rules: this.rulesOf(role),
          describe: () => `RoleBinding "${b.name}/${namespace}" of ${b.roleKind} "${b.roleName}" to ${subject.kind} "${subject.name}"`,
        };
    }
  }

  /**
   * The token file's roles as bindings: `admin` for every namespace is cluster-admin; `viewer` for
   * every namespace is `view` everywhere; otherwise admin → `admin`, hub → `nbswarm-hub`,
   * viewer → `view` in each of the user's namespaces (a hub for every namespace: in every
   * namespace, never at the cluster scope). Every such user also reads namespaces, CRDs and /metrics.
   */
  private *tokenFileGrants(user: User, namespace: string, namespacedRequest: boolean): Generator<Grant> {
    if (!user.role) return;
    const idx = this.load();
    const clusterRole = (name: string, where: string): Grant | undefined => {
      const role = idx.clusterRoles.get(name);
      return role ? { rules: this.rulesOf(role), describe: () => `the token file's role "${user.role}" (ClusterRole "${name}" ${where})` } : undefined;
    };
    const all = user.namespaces === null;
    if (all && user.role === 'admin') {
      const g = clusterRole('cluster-admin', 'at the cluster scope');
      if (g) yield g;
      return;
    }
    const basic = clusterRole('nbswarm:token-file-user', 'at the cluster scope');
    if (basic) yield basic;
    const roleName = user.role === 'admin' ? 'admin' : user.role === 'hub' ? 'nbswarm-hub' : 'view';
    if (all && user.role === 'viewer') {
      const g = clusterRole(roleName, 'at the cluster scope');
      if (g) yield g;
    } else if (all && namespacedRequest) {
      const g = clusterRole(roleName, namespace ? `in the namespace "${namespace}"` : 'in every namespace');
      if (g) yield g;
    } else if (namespace && user.namespaces?.includes(namespace)) {
      const g = clusterRole(roleName, `in the namespace "${namespace}"`);
      if (g) yield g;
    }
  }

  /** A role's rules, plus the custom resources a built-in role covers (see CUSTOM_RESOURCES_ANNOTATION). */
  private rulesOf(role: KubeObject): PolicyRule[] {
    let rules = this.parsed.get(role);
    if (!rules) this.parsed.set(role, (rules = this.parseRules(role)));
    return rules;
  }

  private parseRules(role: KubeObject): PolicyRule[] {
    const rules = Array.isArray(role.rules) ? role.rules.map(readRule).filter((r): r is PolicyRule => r !== undefined) : [];
    const cr = role.metadata.annotations?.[CUSTOM_RESOURCES_ANNOTATION];
    if ((cr === 'read' || cr === 'write') && role.kind === 'ClusterRole' && COVERS_CUSTOM_RESOURCES.has(role.metadata.name ?? '')) {
      const groups = this.customResourceGroups();
      if (groups.length) rules.push({ apiGroups: groups, resources: ['*'], verbs: cr === 'read' ? READ : ['*'] });
    }
    return rules;
  }

  /** API groups served only from CRDs (a group that holds a built-in kind is never covered this way). */
  private customResourceGroups(): string[] {
    if (this.crdGroups) return this.crdGroups;
    const custom = new Set<string>();
    const builtin = new Set<string>();
    for (const k of this.registry.all()) (k.builtin ? builtin : custom).add(k.group);
    this.crdGroups = [...custom].filter((g) => !builtin.has(g)).sort();
    return this.crdGroups;
  }

  private load(): Index {
    if (this.index) return this.index;
    const idx: Index = { clusterRoles: new Map(), roles: new Map(), clusterBindings: [], bindings: new Map() };
    for (const r of this.storage.iterate(kindKey(RBAC_GROUP, 'clusterroles'), '')) idx.clusterRoles.set(r.metadata.name, r);
    for (const r of this.storage.iterate(kindKey(RBAC_GROUP, 'roles'), null)) idx.roles.set(`${r.metadata.namespace}/${r.metadata.name}`, r);
    for (const b of this.storage.iterate(kindKey(RBAC_GROUP, 'clusterrolebindings'), '')) {
      const binding = readBinding(b);
      if (binding) idx.clusterBindings.push(binding);
    }
    for (const b of this.storage.iterate(kindKey(RBAC_GROUP, 'rolebindings'), null)) {
      const binding = readBinding(b);
      if (!binding) continue;
      const list = idx.bindings.get(binding.namespace) ?? [];
      list.push(binding);
      idx.bindings.set(binding.namespace, list);
    }
    this.index = idx;
    return idx;
  }
}

function readBinding(o: StoredObject): Binding | undefined {
  const ref = o.roleRef as { kind?: unknown; name?: unknown } | undefined;
  if (!ref || typeof ref.kind !== 'string' || typeof ref.name !== 'string') return undefined;
  const subjects = Array.isArray(o.subjects)
    ? (o.subjects as unknown[]).filter((s): s is Subject => {
        const x = s as Subject | null;
        return !!x && typeof x.kind === 'string' && typeof x.name === 'string';
      })
    : [];
  return { name: o.metadata.name, namespace: o.metadata.namespace ?? '', roleKind: ref.kind, roleName: ref.name, subjects };
}

/** Whether a binding's subject is the user (a ServiceAccount subject without namespace is in the binding's). */
export function subjectMatches(s: Subject, user: User, groups: string[], bindingNamespace: string): boolean {
  switch (s.kind) {
    case 'User':
      return s.name === user.name;
    case 'Group':
      return groups.includes(s.name);
    case 'ServiceAccount': {
      const ns = s.namespace || bindingNamespace;
      return ns !== '' && user.name === `system:serviceaccount:${ns}:${s.name}`;
    }
    default:
      return false;
  }
}
