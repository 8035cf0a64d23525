/** The built-in kinds and their strategies. */
import type { PrinterColumn } from '../types.js';
import { ConfigMapStrategy, NamespaceStrategy, renameEvent, SecretStrategy } from './core.js';
import { CrdStrategy, type CrdHooks } from './crd.js';
import { kindKey, type ResourceKind } from './kinds.js';
import { GenericStrategy, type Strategy } from './strategy.js';
import { ageColumn } from './table.js';
import { unservedKinds } from './unserved.js';

function builtin(group: string, version: string, resource: string, kind: string, namespaced: boolean, shortNames: string[], columns: PrinterColumn[], strategy: Strategy, extra: Partial<ResourceKind> = {}): ResourceKind {
  return {
    group, resource, kind, namespaced, shortNames, strategy,
    singular: kind.toLowerCase(), listKind: `${kind}List`, categories: [],
    versions: [{ name: version, served: true, storage: true, statusSubresource: resource === 'namespaces', columns }],
    storageKey: kindKey(group, resource), builtin: true, ...extra,
  };
}

export interface BuiltinHooks {
  /** A namespace's deletion started: empty it, then remove it. */
  namespaceTerminating(name: string): void;
  crd: CrdHooks;
}

export function builtinKinds(hooks: BuiltinHooks): ResourceKind[] {
  const generic = new GenericStrategy();
  return [
    builtin('', 'v1', 'namespaces', 'Namespace', false, ['ns'], [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, ageColumn], new NamespaceStrategy(hooks.namespaceTerminating), { fieldPaths: ['status.phase'] }),
    builtin('', 'v1', 'secrets', 'Secret', true, [], [{ name: 'Type', type: 'string', jsonPath: '.type' }, { name: 'Data', type: 'integer', jsonPath: '.data' }, ageColumn], new SecretStrategy(), { fieldPaths: ['type'] }),
    builtin('', 'v1', 'configmaps', 'ConfigMap', true, ['cm'], [{ name: 'Data', type: 'integer', jsonPath: '.data' }, ageColumn], new ConfigMapStrategy()),
    builtin('', 'v1', 'events', 'Event', true, ['ev'], [
      { name: 'Last Seen', type: 'date', jsonPath: '.lastTimestamp' },
      { name: 'Type', type: 'string', jsonPath: '.type' },
      { name: 'Reason', type: 'string', jsonPath: '.reason' },
      { name: 'Object', type: 'string', jsonPath: '.involvedObject.name' },
      { name: 'Message', type: 'string', jsonPath: '.message' },
    ], generic, { fieldPaths: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'] }),
    builtin('events.k8s.io', 'v1', 'events', 'Event', true, ['ev'], [ageColumn], generic, {
      storageKey: kindKey('', 'events'),
      fieldPaths: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid', 'reason', 'type', 'reportingController'],
      toStorage: (o) => renameEvent(o, 0, 'v1'),
      fromStorage: (o) => renameEvent(o, 1, 'events.k8s.io/v1'),
    }),
    builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true, [], [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, ageColumn], generic),
    builtin('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, [], [], generic, { review: true }),
    builtin('authentication.k8s.io', 'v1', 'selfsubjectreviews', 'SelfSubjectReview', false, [], [], generic, { review: true }),
    builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, ['crd', 'crds'], [], new CrdStrategy(hooks.crd), {
      categories: ['api-extensions'],
      versions: [{ name: 'v1', served: true, storage: true, statusSubresource: true, columns: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }] }],
    }),
    ...unservedKinds(),
  ];
}
