/**
 * Kinds nbswarm does not run but kubectl asks about: `kubectl apply --prune` without an allowlist
 * lists every kind of its default prune set (Pods, Deployments, Services, …) and fails when one is
 * not served. They are served empty and read-only: get, list, watch and delete work (on nothing),
 * and a create, update or patch is refused with a Status saying nbswarm does not run the kind, so a
 * manifest of one is never accepted silently.
 */
import { ApiError } from '../errors.js';
import { kindKey, type ResourceKind } from './kinds.js';
import { GenericStrategy } from './strategy.js';
import { ageColumn } from './table.js';

/** kubectl's default prune set (1.27–1.33) less what nbswarm serves: [group, resource, Kind, namespaced, short names]. */
const PRUNE_SET_NOT_RUN: ReadonlyArray<readonly [string, string, string, boolean, string[]]> = [
  ['', 'endpoints', 'Endpoints', true, ['ep']],
  ['', 'persistentvolumeclaims', 'PersistentVolumeClaim', true, ['pvc']],
  ['', 'persistentvolumes', 'PersistentVolume', false, ['pv']],
  ['', 'pods', 'Pod', true, ['po']],
  ['', 'replicationcontrollers', 'ReplicationController', true, ['rc']],
  ['', 'services', 'Service', true, ['svc']],
  ['batch', 'jobs', 'Job', true, []],
  ['batch', 'cronjobs', 'CronJob', true, ['cj']],
  ['networking.k8s.io', 'ingresses', 'Ingress', true, ['ing']],
  ['apps', 'daemonsets', 'DaemonSet', true, ['ds']],
  ['apps', 'deployments', 'Deployment', true, ['deploy']],
  ['apps', 'replicasets', 'ReplicaSet', true, ['rs']],
  ['apps', 'statefulsets', 'StatefulSet', true, ['sts']],
];

/** The verbs an unserved kind answers. */
export const UNSERVED_VERBS = ['delete', 'deletecollection', 'get', 'list', 'watch'];

export function unservedKinds(): ResourceKind[] {
  const strategy = new GenericStrategy();
  return PRUNE_SET_NOT_RUN.map(([group, resource, kind, namespaced, shortNames]) => ({
    group,
    resource,
    kind,
    namespaced,
    shortNames,
    categories: [],
    strategy,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    versions: [{ name: 'v1', served: true, storage: true, statusSubresource: false, columns: [ageColumn] }],
    storageKey: kindKey(group, resource),
    builtin: true,
    unserved: true,
  }));
}

/** The refusal of a write to an unserved kind. */
export function notRun(kind: ResourceKind): ApiError {
  const apiVersion = kind.group ? `${kind.group}/v1` : 'v1';
  return new ApiError(
    405,
    'MethodNotAllowed',
    `nbswarm does not run ${kind.kind} objects (${apiVersion}): it serves ${kind.resource} only as an empty, read-only list so that kubectl apply --prune works; run notebook servers and dashboards as NotebookServer objects (nbswarm.io/v1alpha1)`,
    { group: kind.group || undefined, kind: kind.resource },
  );
}
