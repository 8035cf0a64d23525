/**
 * The built-in ClusterRoles and ClusterRoleBindings (kube's bootstrap policy), written at every
 * start. A built-in object whose `rbac.authorization.kubernetes.io/autoupdate` annotation is not
 * "false" gets back the rules (or subjects) it is missing, so an upgrade brings new permissions;
 * what an administrator added to it is kept. As in Kubernetes, `admin`, `edit` and `view` are
 * aggregated: their rules come from the ClusterRoles labelled to extend them (the built-in
 * `system:aggregate-to-*` ones and any a user adds), so only their selectors are reconciled.
 */
import { randomUUID } from 'node:crypto';
import { jsonEqual } from '../../../util/json.js';
import { nowIso } from '../../../util/time.js';
import { kindKey } from '../../registry/kinds.js';
import type { Store } from '../../storage/sqlite.js';
import type { KubeObject, StoredObject } from '../../types.js';
import { aggregateClusterRoles } from './aggregation.js';
import { RBAC_GROUP, type PolicyRule, type RoleRef, type Subject } from './rules.js';

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'delete', 'deletecollection', 'patch', 'update'];
const READ_WRITE = [...READ, ...WRITE];

/**
 * Which custom resources (resources served from CustomResourceDefinitions) a built-in role covers
 * beyond its own rules: Kubernetes lets each CRD add itself with an aggregated ClusterRole; here
 * `view` reads every custom resource and `edit`, `admin` and `nbswarm-hub` also write them.
 */
export const CUSTOM_RESOURCES_ANNOTATION = 'nbswarm.io/custom-resources';
export const AUTOUPDATE_ANNOTATION = 'rbac.authorization.kubernetes.io/autoupdate';

/** The user name and groups the token file's users, ServiceAccounts and everyone get. */
export const AUTHENTICATED = 'system:authenticated';
export const MASTERS = 'system:masters';

const viewRules: PolicyRule[] = [
  {
    apiGroups: [''],
    resources: [
      'configmaps',
      'endpoints',
      'events',
      'persistentvolumeclaims',
      'pods',
      'pods/log',
      'pods/status',
      'replicationcontrollers',
      'services',
      'serviceaccounts',
      'namespaces',
      'namespaces/status',
      'limitranges',
      'resourcequotas',
    ],
    verbs: READ,
  },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: READ },
  { apiGroups: ['nbswarm.io'], resources: ['notebookservers', 'notebookservers/status'], verbs: READ },
];

/** What `edit` adds to `view`. */
const editOnlyRules: PolicyRule[] = [
  { apiGroups: [''], resources: ['configmaps', 'events', 'persistentvolumeclaims', 'pods', 'services', 'serviceaccounts', 'secrets'], verbs: WRITE },
  { apiGroups: [''], resources: ['secrets'], verbs: READ },
  { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: WRITE },
  { apiGroups: ['nbswarm.io'], resources: ['notebookservers'], verbs: WRITE },
];

/** What `admin` adds to `edit`. */
const adminOnlyRules: PolicyRule[] = [
  { apiGroups: [RBAC_GROUP], resources: ['roles', 'rolebindings'], verbs: READ_WRITE },
  { apiGroups: ['authorization.k8s.io'], resources: ['localsubjectaccessreviews'], verbs: ['create'] },
];

/**
 * What the JupyterHub spawner needs in the namespaces it spawns in: NotebookServers, the Secrets
 * their env refers to, the Events that report progress (and ConfigMaps, which token-file hubs
 * always could write). No Leases: a tenant must never hold
 * the operator's leader Lease, in any namespace.
 */
const hubRules: PolicyRule[] = [
  { apiGroups: ['nbswarm.io'], resources: ['notebookservers'], verbs: READ_WRITE },
  { apiGroups: ['nbswarm.io'], resources: ['notebookservers/status'], verbs: READ },
  { apiGroups: [''], resources: ['secrets', 'events', 'configmaps'], verbs: READ_WRITE },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: READ },
];

interface BuiltinRole {
  name: string;
  /** Its rules; an aggregated role's come from the roles it selects. */
  rules: PolicyRule[];
  customResources?: 'read' | 'write';
  /** The label (value "true") whose ClusterRoles this one aggregates. */
  aggregates?: string;
  labels?: Record<string, string>;
}

/**
 * The labels that extend `admin`, `edit` and `view`, as in Kubernetes: a ClusterRole labelled
 * `rbac.authorization.k8s.io/aggregate-to-view: "true"` adds its rules to `view` (and so to
 * `edit` and `admin`, which aggregate `view` and `edit`).
 */
export const AGGREGATE_TO = {
  admin: `${RBAC_GROUP}/aggregate-to-admin`,
  edit: `${RBAC_GROUP}/aggregate-to-edit`,
  view: `${RBAC_GROUP}/aggregate-to-view`,
} as const;

export const BUILTIN_CLUSTER_ROLES: readonly BuiltinRole[] = [
  {
    name: 'cluster-admin',
    rules: [
      { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
      { nonResourceURLs: ['*'], verbs: ['*'] },
    ],
  },
  { name: 'admin', rules: [], aggregates: AGGREGATE_TO.admin, customResources: 'write' },
  { name: 'edit', rules: [], aggregates: AGGREGATE_TO.edit, labels: { [AGGREGATE_TO.admin]: 'true' }, customResources: 'write' },
  { name: 'view', rules: [], aggregates: AGGREGATE_TO.view, labels: { [AGGREGATE_TO.edit]: 'true' }, customResources: 'read' },
  { name: 'system:aggregate-to-admin', rules: adminOnlyRules, labels: { [AGGREGATE_TO.admin]: 'true' } },
  { name: 'system:aggregate-to-edit', rules: editOnlyRules, labels: { [AGGREGATE_TO.edit]: 'true' } },
  { name: 'system:aggregate-to-view', rules: viewRules, labels: { [AGGREGATE_TO.view]: 'true' } },
  { name: 'nbswarm-hub', rules: hubRules, customResources: 'write' },
  {
    name: 'system:discovery',
    rules: [
      {
        nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/', '/openapi', '/openapi/*'],
        verbs: ['get'],
      },
    ],
  },
  {
    name: 'system:basic-user',
    rules: [
      { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
      { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
    ],
  },
  {
    name: 'system:monitoring',
    rules: [{ nonResourceURLs: ['/metrics', '/metrics/*', '/healthz', '/healthz/*', '/livez', '/livez/*', '/readyz', '/readyz/*'], verbs: ['get'] }],
  },
  /** Cluster-scoped reads every token-file user had before RBAC: namespaces, CRDs (the spawner checks its CRD), /metrics. */
  {
    name: 'nbswarm:token-file-user',
    rules: [
      { apiGroups: [''], resources: ['namespaces'], verbs: READ },
      { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: READ },
      { nonResourceURLs: ['/metrics'], verbs: ['get'] },
    ],
  },
];

const group = (name: string): Subject => ({ kind: 'Group', apiGroup: RBAC_GROUP, name });

export const BUILTIN_CLUSTER_ROLE_BINDINGS: readonly { name: string; role: string; subjects: Subject[] }[] = [
  { name: 'cluster-admin', role: 'cluster-admin', subjects: [group(MASTERS)] },
  { name: 'system:discovery', role: 'system:discovery', subjects: [group(AUTHENTICATED)] },
  { name: 'system:basic-user', role: 'system:basic-user', subjects: [group(AUTHENTICATED)] },
  { name: 'system:monitoring', role: 'system:monitoring', subjects: [group('system:monitoring')] },
];

const LABELS = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };

function clusterRole(r: BuiltinRole): KubeObject {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRole',
    metadata: {
      name: r.name,
      labels: { ...LABELS, ...r.labels },
      annotations: { [AUTOUPDATE_ANNOTATION]: 'true', ...(r.customResources ? { [CUSTOM_RESOURCES_ANNOTATION]: r.customResources } : {}) },
    },
    ...(r.aggregates ? { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { [r.aggregates]: 'true' } }] } } : {}),
    rules: r.rules,
  };
}

function clusterRoleBinding(b: (typeof BUILTIN_CLUSTER_ROLE_BINDINGS)[number]): KubeObject {
  const roleRef: RoleRef = { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: b.role };
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name: b.name, labels: { ...LABELS }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    roleRef,
    subjects: b.subjects,
  };
}

/** Adds to `have` the members of `want` it lacks (by value), keeping its own. */
function union<T>(have: unknown, want: readonly T[]): T[] {
  const out = Array.isArray(have) ? [...(have as T[])] : [];
  for (const w of want) if (!out.some((h) => jsonEqual(h, w))) out.push(w);
  return out;
}

/** Writes the built-in policy: missing objects are created, auto-updated ones get what they lack. */
export function reconcileBootstrapPolicy(storage: Store): void {
  const write = (resource: string, desired: KubeObject, field: 'rules' | 'subjects' | 'aggregationRule') => {
    const key = kindKey(RBAC_GROUP, resource);
    const name = desired.metadata.name!;
    const have = storage.get(key, '', name);
    if (!have) {
      storage.write('ADDED', key, '', name, { ...desired, metadata: { ...desired.metadata, uid: randomUUID(), creationTimestamp: nowIso() } });
      return;
    }
    if (have.metadata.annotations?.[AUTOUPDATE_ANNOTATION] === 'false') return;
    const next: StoredObject = structuredClone(have);
    if (field === 'aggregationRule') {
      // An aggregated role's rules are the aggregator's: only its selectors are reconciled.
      const selectors = (o: KubeObject) => (o.aggregationRule as { clusterRoleSelectors?: unknown } | undefined)?.clusterRoleSelectors;
      next.aggregationRule = { ...(have.aggregationRule ?? {}), clusterRoleSelectors: union(selectors(have), selectors(desired) as unknown[]) };
    } else next[field] = union(have[field], desired[field] as unknown[]);
    next.metadata.labels = { ...(have.metadata.labels ?? {}), ...desired.metadata.labels };
    next.metadata.annotations = { ...(have.metadata.annotations ?? {}), ...desired.metadata.annotations };
    if (field === 'subjects') next.roleRef = desired.roleRef;
    if (!jsonEqual(next, have)) storage.write('MODIFIED', key, '', name, next, have);
  };
  for (const r of BUILTIN_CLUSTER_ROLES) write('clusterroles', clusterRole(r), r.aggregates ? 'aggregationRule' : 'rules');
  for (const b of BUILTIN_CLUSTER_ROLE_BINDINGS) write('clusterrolebindings', clusterRoleBinding(b), 'subjects');
  // The aggregated built-ins get their rules before anything is authorized against them.
  aggregateClusterRoles(storage);
}
