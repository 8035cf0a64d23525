import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Obj } from './store.js';

export interface Cause {
  reason: string;
  message: string;
  field: string;
}

type Schema = Obj;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies `default`s from a structural schema, as the API server does on write and read. */
export function applyDefaults(value: unknown, schema: Schema | undefined): void {
  if (!schema) return;
  if (isObj(value)) {
    const props: Obj | undefined = schema.properties;
    if (props) {
      for (const [k, s] of Object.entries(props)) {
        if (value[k] === undefined && (s as Obj).default !== undefined) value[k] = structuredClone((s as Obj).default);
        if (value[k] !== undefined) applyDefaults(value[k], s as Obj);
      }
    } else if (isObj(schema.additionalProperties)) {
      for (const v of Object.values(value)) applyDefaults(v, schema.additionalProperties);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const v of value) applyDefaults(v, schema.items);
  }
}

/**
 * Drops fields the schema does not declare (unless x-kubernetes-preserve-unknown-fields) and
 * returns their paths, for fieldValidation=Strict/Warn.
 */
export function prune(value: unknown, schema: Schema | undefined, path: string, out: string[], root = false): void {
  if (!schema) return;
  if (isObj(value)) {
    const props: Obj | undefined = schema.properties;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = schema['x-kubernetes-embedded-resource'] === true;
    for (const k of Object.keys(value)) {
      const sub = path ? `${path}.${k}` : k;
      if ((root || embedded) && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
      if (props && k in props) prune(value[k], props[k], sub, out);
      else if (isObj(schema.additionalProperties)) prune(value[k], schema.additionalProperties, sub, out);
      else if (schema.additionalProperties === true || preserve) continue;
      else {
        out.push(sub);
        delete value[k];
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) => prune(v, schema.items, `${path}[${i}]`, out));
  }
}

/** Turns Kubernetes' OpenAPI dialect into plain JSON schema ajv understands. */
function toJsonSchema(s: Schema, root: boolean): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'default' || k === 'description' || k === 'example' || k === 'externalDocs') continue;
    if (k === 'format') continue; // formats such as int-or-string/date-time are informational here
    if (k === 'properties') {
      out.properties = {};
      for (const [pk, pv] of Object.entries(v as Obj)) {
        if (root && pk === 'metadata') continue; // metadata is checked by the server itself
        out.properties[pk] = toJsonSchema(pv as Obj, false);
      }
    } else if (k === 'items' || k === 'not') out[k] = toJsonSchema(v as Obj, false);
    else if (k === 'additionalProperties') out[k] = typeof v === 'boolean' ? v : toJsonSchema(v as Obj, false);
    else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') out[k] = (v as Obj[]).map((x) => toJsonSchema(x, false));
    else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] === true && !s.type) {
    out.anyOf = [...(out.anyOf ?? []), { type: 'integer' }, { type: 'string' }];
  }
  if (s.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (root && Array.isArray(out.required)) out.required = out.required.filter((r: string) => r !== 'metadata');
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });

export function compileValidator(schema: Schema | undefined): ValidateFunction | null {
  if (!schema) return null;
  return ajv.compile(toJsonSchema(schema, true));
}

function fieldOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? 'null';
}

function valueAt(obj: unknown, field: string): unknown {
  let cur: unknown = obj;
  for (const part of field.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Obj)[part];
  }
  return cur;
}

/** Maps ajv errors to Kubernetes-style causes (field paths like `spec.user`, messages like kube's). */
export function toCauses(errors: ErrorObject[] | null | undefined, obj: unknown): Cause[] {
  const out: Cause[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let field = fieldOf(e.instancePath);
    const value = valueAt(obj, field);
    let c: Cause;
    switch (e.keyword) {
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        field = field ? `${field}.${missing}` : missing;
        c = { reason: 'FieldValueRequired', message: 'Required value', field };
        break;
      }
      case 'enum': {
        const allowed = ((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map(show).join(', ');
        c = { reason: 'FieldValueNotSupported', message: `Unsupported value: ${show(value)}: supported values: ${allowed}`, field };
        break;
      }
      case 'type':
        c = { reason: 'FieldValueInvalid', message: `Invalid value: "${typeof value === 'object' ? (Array.isArray(value) ? 'array' : value === null ? 'null' : 'object') : typeof value}": ${field || 'body'} in body must be of type ${(e.params as { type: string }).type}: ${show(value)}`, field };
        break;
      case 'anyOf':
      case 'oneOf':
      case 'if':
        continue; // the branch errors already say what is wrong
      default:
        c = { reason: 'FieldValueInvalid', message: `Invalid value: ${show(value)}: ${field || 'body'} in body ${e.message ?? 'is invalid'}`, field };
    }
    const key = `${c.field}|${c.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(c);
  }
  return out;
}

/** Pieces of metadata checked for every object: DNS names, label syntax. */
export function validateMetadata(obj: Obj, namespaced: boolean, nameRule: 'subdomain' | 'label' = 'subdomain'): Cause[] {
  const out: Cause[] = [];
  const md = obj.metadata ?? {};
  const name = md.name;
  const re = nameRule === 'label' ? /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ : /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  const max = nameRule === 'label' ? 63 : 253;
  if (!name) out.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  else if (typeof name !== 'string' || !re.test(name) || name.length > max) {
    out.push({
      reason: 'FieldValueInvalid',
      message: `Invalid value: ${show(name)}: a lowercase RFC 1123 ${nameRule === 'label' ? 'label' : 'subdomain'} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      field: 'metadata.name',
    });
  }
  if (!namespaced && md.namespace) {
    // Cluster-scoped objects silently drop a namespace, as kube does.
    delete md.namespace;
  }
  for (const kind of ['labels', 'annotations'] as const) {
    const m = md[kind];
    if (m === undefined || m === null) continue;
    if (!isObj(m)) {
      out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(m)}: must be a map of strings`, field: `metadata.${kind}` });
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: must be a string`, field: `metadata.${kind}` });
      if (!/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(k)) {
        out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(k)}: name part must consist of alphanumeric characters, '-', '_' or '.'`, field: `metadata.${kind}` });
      }
      if (kind === 'labels' && typeof v === 'string' && !/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/.test(v)) {
        out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'`, field: `metadata.labels` });
      }
    }
  }
  return out;
}
