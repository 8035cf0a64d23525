/** The built-in kinds and their strategies. */
import type { PrinterColumn } from '../types.js';
import { RBAC_GROUP } from '../auth/rbac/rules.js';
import type { Handler } from '../handlers/scope.js';
import { ConfigMapStrategy, NamespaceStrategy, renameEvent, SecretStrategy, type ServiceAccountTokenFiller } from './core.js';
import { CrdStrategy, type CrdHooks } from './crd.js';
import { kindKey, type ResourceKind } from './kinds.js';
import { GenericStrategy, type Strategy } from './strategy.js';
import { BindingStrategy, RoleStrategy } from './rbac.js';
import { ageColumn } from './table.js';
import { unservedKinds } from './unserved.js';

function builtin(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  shortNames: string[],
  columns: PrinterColumn[],
  strategy: Strategy,
  extra: Partial<ResourceKind> = {},
): ResourceKind {
  return {
    group,
    resource,
    kind,
    namespaced,
    shortNames,
    strategy,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    categories: [],
    versions: [{ name: version, served: true, storage: true, statusSubresource: resource === 'namespaces', columns }],
    storageKey: kindKey(group, resource),
    builtin: true,
    ...extra,
  };
}

export interface BuiltinHooks {
  /** Roles, ClusterRoles or bindings changed (the authorizer re-reads them). */
  rbacChanged(): void;
  /** Answers serviceaccounts/token. */
  tokenRequest: Handler;
  fillServiceAccountToken: ServiceAccountTokenFiller;
  /** A namespace's deletion started: empty it, then remove it. */
  namespaceTerminating(name: string): void;
  crd: CrdHooks;
}

const createdAt: PrinterColumn[] = [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }];
const bindingColumns: PrinterColumn[] = [
  { name: 'Role', type: 'string', jsonPath: '.roleRef' },
  ageColumn,
  { name: 'Users', type: 'string', jsonPath: '.subjects[?(@.kind=="User")].name', priority: 1 },
  { name: 'Groups', type: 'string', jsonPath: '.subjects[?(@.kind=="Group")].name', priority: 1 },
  { name: 'ServiceAccounts', type: 'string', jsonPath: '.subjects[?(@.kind=="ServiceAccount")].name', priority: 1 },
];

export function builtinKinds(hooks: BuiltinHooks): ResourceKind[] {
  const generic = new GenericStrategy();
  return [
    builtin(
      '',
      'v1',
      'namespaces',
      'Namespace',
      false,
      ['ns'],
      [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, ageColumn],
      new NamespaceStrategy(hooks.namespaceTerminating),
      { fieldPaths: ['status.phase'] },
    ),
    builtin(
      '',
      'v1',
      'secrets',
      'Secret',
      true,
      [],
      [{ name: 'Type', type: 'string', jsonPath: '.type' }, { name: 'Data', type: 'integer', jsonPath: '.data' }, ageColumn],
      new SecretStrategy(hooks.fillServiceAccountToken),
      { fieldPaths: ['type'] },
    ),
    builtin('', 'v1', 'configmaps', 'ConfigMap', true, ['cm'], [{ name: 'Data', type: 'integer', jsonPath: '.data' }, ageColumn], new ConfigMapStrategy()),
    builtin(
      '',
      'v1',
      'events',
      'Event',
      true,
      ['ev'],
      [
        { name: 'Last Seen', type: 'date', jsonPath: '.lastTimestamp' },
        { name: 'Type', type: 'string', jsonPath: '.type' },
        { name: 'Reason', type: 'string', jsonPath: '.reason' },
        { name: 'Object', type: 'string', jsonPath: '.involvedObject.name' },
        { name: 'Message', type: 'string', jsonPath: '.message' },
      ],
      generic,
      {
        fieldPaths: [
          'involvedObject.kind',
          'involvedObject.namespace',
          'involvedObject.name',
          'involvedObject.uid',
          'involvedObject.apiVersion',
          'involvedObject.resourceVersion',
          'involvedObject.fieldPath',
          'reason',
          'reportingComponent',
          'source',
          'type',
        ],
      },
    ),
    builtin('events.k8s.io', 'v1', 'events', 'Event', true, ['ev'], [ageColumn], generic, {
      storageKey: kindKey('', 'events'),
      fieldPaths: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid', 'reason', 'type', 'reportingController'],
      toStorage: (o) => renameEvent(o, 0, 'v1'),
      fromStorage: (o) => renameEvent(o, 1, 'events.k8s.io/v1'),
    }),
    builtin(
      'coordination.k8s.io',
      'v1',
      'leases',
      'Lease',
      true,
      [],
      [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, ageColumn],
      generic,
    ),
    builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', true, ['sa'], [ageColumn], generic, {
      subresources: {
        token: { verbs: ['create'], handler: hooks.tokenRequest, responseKind: { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest' } },
      },
    }),
    builtin(RBAC_GROUP, 'v1', 'roles', 'Role', true, [], createdAt, new RoleStrategy(false, hooks.rbacChanged)),
    builtin(RBAC_GROUP, 'v1', 'clusterroles', 'ClusterRole', false, [], createdAt, new RoleStrategy(true, hooks.rbacChanged)),
    builtin(RBAC_GROUP, 'v1', 'rolebindings', 'RoleBinding', true, [], bindingColumns, new BindingStrategy(false, hooks.rbacChanged)),
    builtin(RBAC_GROUP, 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false, [], bindingColumns, new BindingStrategy(true, hooks.rbacChanged)),
    builtin('authorization.k8s.io', 'v1', 'selfsubjectrulesreviews', 'SelfSubjectRulesReview', false, [], [], generic, { review: true }),
    builtin('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, [], [], generic, { review: true }),
    builtin('authentication.k8s.io', 'v1', 'selfsubjectreviews', 'SelfSubjectReview', false, [], [], generic, { review: true }),
    builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, ['crd', 'crds'], [], new CrdStrategy(hooks.crd), {
      categories: ['api-extensions'],
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          statusSubresource: true,
          columns: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }],
        },
      ],
    }),
    ...unservedKinds(),
  ];
}
