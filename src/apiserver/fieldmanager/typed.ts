/**
 * How server-side apply sees a value's type, from the kind's structural schema: maps are granular
 * (each member owned on its own) unless `x-kubernetes-map-type: atomic`; lists are atomic unless
 * `x-kubernetes-list-type` says `set` (items are their own values) or `map` (items are keyed by
 * `x-kubernetes-list-map-keys`). Parts a schema does not describe are deduced as Kubernetes does:
 * maps granular, lists atomic. `metadata` always has Kubernetes' own types, whatever the kind.
 */
import { isObject } from '../../util/json.js';
import type { JsonSchema } from '../types.js';

export type Schema = JsonSchema | undefined;

const strings: JsonSchema = { type: 'object', additionalProperties: { type: 'string' } };

/** ObjectMeta as structured-merge-diff types it: labels/annotations per key, finalizers a set, ownerReferences keyed by uid. */
export const METADATA_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    labels: strings,
    annotations: strings,
    finalizers: { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'set' },
    ownerReferences: {
      type: 'array',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['uid'],
      items: {
        type: 'object',
        properties: {
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          name: { type: 'string' },
          uid: { type: 'string' },
          controller: { type: 'boolean' },
          blockOwnerDeletion: { type: 'boolean' },
        },
      },
    },
  },
};

/** Members of the root that identify the object, never owned by anyone. */
export const IDENTITY = new Set(['apiVersion', 'kind']);

/** Metadata the server owns: never in a field set (kube's fieldmanager strips the same). */
export const SERVER_METADATA = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'managedFields',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
]);

/** The schema of member `k` of an object typed by `s` (at the root, `metadata` is always ObjectMeta). */
export function childSchema(s: Schema, k: string, root = false): Schema {
  if (root && k === 'metadata') return METADATA_SCHEMA;
  if (!s) return undefined;
  if (s.properties && Object.prototype.hasOwnProperty.call(s.properties, k)) return s.properties[k];
  return isObject(s.additionalProperties) ? (s.additionalProperties as JsonSchema) : undefined;
}

export type ListType = { type: 'atomic' } | { type: 'set' } | { type: 'map'; keys: string[] };

/** A list's type; a `map` without keys is treated as atomic (the schema cannot say which items are which). */
export function listType(s: Schema): ListType {
  const t = s?.['x-kubernetes-list-type'];
  if (t === 'set') return { type: 'set' };
  const keys = s?.['x-kubernetes-list-map-keys'];
  if (t === 'map' && Array.isArray(keys) && keys.length > 0 && keys.every((k) => typeof k === 'string')) return { type: 'map', keys: keys as string[] };
  return { type: 'atomic' };
}

/** Whether a map (object) is owned whole. */
export function atomicMap(s: Schema): boolean {
  return s?.['x-kubernetes-map-type'] === 'atomic';
}
