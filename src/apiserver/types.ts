/**
 * The shapes the API server itself reads and writes: object metadata, and the few kinds whose
 * content it interprets (Namespace, Secret, ConfigMap, Event, CustomResourceDefinition, Status).
 * Everything else in an object is the client's and stays `unknown` until a schema has checked it.
 */
import type { JsonObject } from '../util/json.js';

export type { JsonObject } from '../util/json.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** fieldsV1: `f:<field>` and `k:<json key>` members nest down to the leaves a manager owns. */
export interface FieldsV1 {
  [element: string]: FieldsV1;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldsV1;
  subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: ManagedFieldsEntry[];
  selfLink?: string;
}

/** An object of any kind once its type metadata has been checked: `metadata` is an object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** An object as storage holds it: the server has filled what it owns. */
export interface StoredObject extends KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta & { name: string; uid: string; resourceVersion: string; creationTimestamp: string };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface Namespace extends KubeObject {
  spec?: { finalizers?: string[] };
  status?: { phase?: 'Active' | 'Terminating'; [field: string]: unknown };
}

export interface Secret extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
  immutable?: boolean;
}

export interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
  immutable?: boolean;
}

/** core/v1 Event, the fields that say how old it is (its TTL). */
export interface CoreEvent extends KubeObject {
  lastTimestamp?: string;
  eventTime?: string;
  series?: { lastObservedTime?: string };
}

export interface CrdNames {
  plural: string;
  singular?: string;
  kind: string;
  listKind?: string;
  shortNames?: string[];
  categories?: string[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface CrdVersion {
  name: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: JsonSchema };
  additionalPrinterColumns?: PrinterColumn[];
  subresources?: { status?: JsonObject; scale?: JsonObject };
  selectableFields?: { jsonPath: string }[];
}

/** A CustomResourceDefinition whose spec passed crdProblems (registry/crd.ts). */
export interface CustomResourceDefinition extends KubeObject {
  spec: { group: string; scope: 'Namespaced' | 'Cluster'; names: CrdNames; versions: CrdVersion[] };
  status?: { conditions?: Condition[]; acceptedNames?: Partial<CrdNames>; storedVersions?: string[] };
}

/** Kubernetes' structural OpenAPI v3 schema, the parts this server acts on. */
export interface JsonSchema {
  type?: string | string[];
  format?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  $ref?: string;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  not?: JsonSchema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  [keyword: string]: unknown;
}

/** A field-level problem, as in a 422 Status's details.causes. */
export interface Cause {
  reason: string;
  message: string;
  field: string;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: JsonObject;
  status: 'Failure';
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: Cause[];
  /** How long a client should wait before it tries again (429, 503). */
  retryAfterSeconds?: number;
}

export interface ListMeta {
  resourceVersion: string;
  continue?: string;
}
