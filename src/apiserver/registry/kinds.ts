/** What the server knows about one served resource: names, versions, scope, and its strategy. */
import type { ValidateFunction } from 'ajv';
import type { Handler } from '../handlers/scope.js';
import type { Verb } from '../request/info.js';
import type { KubeObject, PrinterColumn, JsonSchema } from '../types.js';
import type { Strategy } from './strategy.js';

export interface KindVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema?: JsonSchema;
  validator?: ValidateFunction | null;
  columns?: PrinterColumn[];
  statusSubresource: boolean;
  scaleSubresource?: boolean;
  /** Field-selector paths a CRD version declares (selectableFields), without the leading dot. */
  selectableFields?: string[];
}

export interface ResourceKind {
  group: string;
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  versions: KindVersion[];
  /** Where storage keeps its objects: events.k8s.io/v1 events share core events' key. */
  storageKey: string;
  builtin: boolean;
  /** Field-selector paths beyond metadata.name and metadata.namespace. */
  fieldPaths?: string[];
  /** A view over another kind's storage converts on the way in and out. */
  toStorage?: (o: KubeObject) => KubeObject;
  fromStorage?: (o: KubeObject) => KubeObject;
  /** For CRD-backed kinds: the CRD's own name, so a delete finds what it served. */
  crdName?: string;
  /** Create-only reviews answered from the request alone (nothing is stored). */
  review?: boolean;
  /** Subresources served by their own handler (serviceaccounts/token), beside status. */
  subresources?: Record<string, SubresourceRoute>;
  /** A kind nbswarm does not run, served empty and read-only (see unserved.ts). */
  unserved?: boolean;
  strategy: Strategy;
}

export interface SubresourceRoute {
  verbs: readonly Verb[];
  handler: Handler;
  /** What the subresource takes and returns when that is not the kind itself (discovery names it). */
  responseKind?: { group: string; version: string; kind: string };
}

/** The registry key of a kind. */
export function kindKey(group: string, resource: string): string {
  return `${group}/${resource}`;
}

/** The apiVersion objects of `kind` are stored in. */
export function storageApiVersion(kind: ResourceKind): string {
  const v = kind.versions.find((x) => x.storage) ?? kind.versions[0];
  return kind.group ? `${kind.group}/${v.name}` : v.name;
}

/** The served version `name` of `kind`, if any. */
export function servedVersion(kind: ResourceKind, name: string): KindVersion | undefined {
  return kind.versions.find((v) => v.name === name && v.served);
}
