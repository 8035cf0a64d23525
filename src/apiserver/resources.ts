import type { ValidateFunction } from 'ajv';
import { compileValidator } from './schema.js';
import type { Obj } from './store.js';
import { humanDuration, jsonPath } from './util.js';

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface VersionDef {
  name: string;
  served: boolean;
  storage: boolean;
  schema?: Obj;
  validator?: ValidateFunction | null;
  columns?: PrinterColumn[];
  statusSubresource: boolean;
  scaleSubresource?: boolean;
  selectableFields?: string[];
}

export interface ResDef {
  group: string;
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  versions: VersionDef[];
  /** Storage key; events.k8s.io/v1 events share core events' storage. */
  gr: string;
  builtin: boolean;
  /** Extra field-selector paths beyond metadata.name/namespace. */
  fieldPaths?: string[];
  toStorage?: (o: Obj) => Obj;
  fromStorage?: (o: Obj) => Obj;
  /** For CRDs: the CRD's own name, so deletes can find it. */
  crdName?: string;
  /** Create-only review resources answered from the request alone (nothing stored). */
  review?: boolean;
}

export const VERBS_NS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const ageCol: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' };

function builtin(group: string, version: string, resource: string, kind: string, namespaced: boolean, shortNames: string[], columns: PrinterColumn[], extra: Partial<ResDef> = {}): ResDef {
  return {
    group, resource, kind, namespaced, shortNames,
    singular: kind.toLowerCase(), listKind: `${kind}List`, categories: [],
    versions: [{ name: version, served: true, storage: true, statusSubresource: resource === 'namespaces', columns }],
    gr: `${group}/${resource}`, builtin: true, ...extra,
  };
}

/** events.k8s.io/v1 <-> core/v1 Event field renames (both views share one storage). */
const evMap: [string, string][] = [
  ['regarding', 'involvedObject'], ['note', 'message'], ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'], ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'], ['reportingController', 'reportingComponent'],
];
function renameEvent(o: Obj, from: 0 | 1, apiVersion: string): Obj {
  const out: Obj = { ...o, apiVersion };
  for (const pair of evMap) {
    const a = pair[from], b = pair[1 - from];
    if (a in out) {
      out[b] = out[a];
      delete out[a];
    }
  }
  return out;
}

export function builtins(): ResDef[] {
  return [
    builtin('', 'v1', 'namespaces', 'Namespace', false, ['ns'], [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, ageCol], { fieldPaths: ['status.phase'] }),
    builtin('', 'v1', 'secrets', 'Secret', true, [], [{ name: 'Type', type: 'string', jsonPath: '.type' }, { name: 'Data', type: 'integer', jsonPath: '.data' }, ageCol], { fieldPaths: ['type'] }),
    builtin('', 'v1', 'configmaps', 'ConfigMap', true, ['cm'], [{ name: 'Data', type: 'integer', jsonPath: '.data' }, ageCol]),
    builtin('', 'v1', 'events', 'Event', true, ['ev'], [
      { name: 'Last Seen', type: 'date', jsonPath: '.lastTimestamp' },
      { name: 'Type', type: 'string', jsonPath: '.type' },
      { name: 'Reason', type: 'string', jsonPath: '.reason' },
      { name: 'Object', type: 'string', jsonPath: '.involvedObject.name' },
      { name: 'Message', type: 'string', jsonPath: '.message' },
    ], { fieldPaths: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'] }),
    builtin('events.k8s.io', 'v1', 'events', 'Event', true, ['ev'], [ageCol], {
      gr: '/events',
      fieldPaths: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid', 'reason', 'type', 'reportingController'],
      toStorage: (o) => renameEvent(o, 0, 'v1'),
      fromStorage: (o) => renameEvent(o, 1, 'events.k8s.io/v1'),
    }),
    builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true, [], [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, ageCol]),
    builtin('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, [], [], { review: true }),
    builtin('authentication.k8s.io', 'v1', 'selfsubjectreviews', 'SelfSubjectReview', false, [], [], { review: true }),
    builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, ['crd', 'crds'], [{ name: 'Created At', type: 'date', jsonPath: '.metadata.creationTimestamp' }], {
      categories: ['api-extensions'],
      versions: [{ name: 'v1', served: true, storage: true, statusSubresource: true, columns: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }] }],
    }),
  ];
}

/** Problems with a CRD's spec, as field causes. */
export function crdProblems(crd: Obj): { field: string; message: string; reason: string }[] {
  const p: { field: string; message: string; reason: string }[] = [];
  const s = crd.spec ?? {};
  const req = (field: string) => p.push({ field, message: 'Required value', reason: 'FieldValueRequired' });
  if (!s.group) req('spec.group');
  if (!s.names?.plural) req('spec.names.plural');
  if (!s.names?.kind) req('spec.names.kind');
  if (s.scope !== 'Namespaced' && s.scope !== 'Cluster') p.push({ field: 'spec.scope', message: `Unsupported value: ${JSON.stringify(s.scope)}: supported values: "Cluster", "Namespaced"`, reason: 'FieldValueNotSupported' });
  if (!Array.isArray(s.versions) || s.versions.length === 0) req('spec.versions');
  else if (s.versions.filter((v: Obj) => v.storage).length !== 1) p.push({ field: 'spec.versions', message: 'Invalid value: must have exactly one version marked as storage version', reason: 'FieldValueInvalid' });
  if (s.group && s.names?.plural && crd.metadata?.name !== `${s.names.plural}.${s.group}`) {
    p.push({ field: 'metadata.name', message: `Invalid value: ${JSON.stringify(crd.metadata?.name)}: must be spec.names.plural+"."+spec.group`, reason: 'FieldValueInvalid' });
  }
  return p;
}

export function defFromCrd(crd: Obj): ResDef {
  const s = crd.spec;
  return {
    group: s.group,
    resource: s.names.plural,
    singular: s.names.singular ?? s.names.kind.toLowerCase(),
    kind: s.names.kind,
    listKind: s.names.listKind ?? `${s.names.kind}List`,
    namespaced: s.scope === 'Namespaced',
    shortNames: s.names.shortNames ?? [],
    categories: s.names.categories ?? [],
    gr: `${s.group}/${s.names.plural}`,
    builtin: false,
    crdName: crd.metadata.name,
    versions: (s.versions as Obj[]).map((v) => ({
      name: v.name,
      served: v.served !== false,
      storage: !!v.storage,
      schema: v.schema?.openAPIV3Schema,
      validator: compileValidator(v.schema?.openAPIV3Schema),
      columns: v.additionalPrinterColumns,
      statusSubresource: !!v.subresources?.status,
      scaleSubresource: !!v.subresources?.scale,
      selectableFields: (v.selectableFields ?? []).map((f: Obj) => String(f.jsonPath).replace(/^\./, '')),
    })),
  };
}

/** Columns for Table output: Name first, then printer columns (CRDs without any get Age). */
export function columnsFor(def: ResDef, version: string): PrinterColumn[] {
  const v = def.versions.find((x) => x.name === version) ?? def.versions[0];
  const name: PrinterColumn = { name: 'Name', type: 'string', format: 'name', jsonPath: '.metadata.name', description: 'Name must be unique within a namespace.' };
  return [name, ...(v.columns && v.columns.length ? v.columns : [ageCol])];
}

function cell(obj: Obj, c: PrinterColumn, now: number): unknown {
  const vals = jsonPath(obj, c.jsonPath);
  if (c.jsonPath === '.data' && (c.name === 'Data')) return Object.keys(obj.data ?? {}).length + Object.keys(obj.binaryData ?? {}).length;
  if (vals.length === 0) return c.type === 'date' ? '<unknown>' : null;
  const v = vals.length === 1 ? vals[0] : vals.map(String).join(',');
  if (c.type === 'date' && typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? v : humanDuration(now - t);
  }
  if (c.type === 'integer' || c.type === 'number') return typeof v === 'number' ? v : Number(v);
  if (c.type === 'boolean') return typeof v === 'boolean' ? v : String(v) === 'true';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export function toTable(def: ResDef, version: string, objs: Obj[], includeObject: string, listMeta: Obj, withColumns = true): Obj {
  const cols = columnsFor(def, version);
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withColumns
      ? cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))
      : [],
    rows: objs.map((o) => ({
      cells: cols.map((c) => cell(o, c, now)),
      object: includeObject === 'None' ? undefined
        : includeObject === 'Object' ? o
        : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}

export function apiResource(def: ResDef): Obj[] {
  const v = def.versions[0];
  const out: Obj[] = [{
    name: def.resource, singularName: def.singular, namespaced: def.namespaced, kind: def.kind,
    verbs: def.review ? ['create'] : VERBS_NS, ...(def.shortNames.length ? { shortNames: def.shortNames } : {}),
    ...(def.categories.length ? { categories: def.categories } : {}),
    storageVersionHash: Buffer.from(def.gr).toString('base64').slice(0, 11),
  }];
  if (v.statusSubresource) out.push({ name: `${def.resource}/status`, singularName: '', namespaced: def.namespaced, kind: def.kind, verbs: ['get', 'patch', 'update'] });
  return out;
}
