/**
 * Structural schemas of CRD versions: defaulting, pruning of undeclared fields, and validation
 * (ajv, on the schema translated from Kubernetes' OpenAPI dialect) with kube-style causes.
 */
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { isObject, type JsonObject } from '../../util/json.js';
import type { Cause, JsonSchema } from '../types.js';
import { fieldPathOf } from '../../util/json-pointer.js';

type Schema = JsonSchema;

/** Applies `default`s from a structural schema, as the API server does on write and read. */
export function applyDefaults(value: unknown, schema: Schema | undefined): void {
  if (!schema || !hasDefaults(schema)) return;
  if (isObject(value)) {
    const props = schema.properties;
    if (props) {
      for (const k of Object.keys(props)) {
        const s = props[k];
        const d = s.default;
        if (value[k] === undefined && d !== undefined) value[k] = d !== null && typeof d === 'object' ? structuredClone(d) : d;
        if (value[k] !== undefined) applyDefaults(value[k], s);
      }
    } else if (isObject(schema.additionalProperties)) {
      for (const v of Object.values(value)) applyDefaults(v, schema.additionalProperties);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const v of value) applyDefaults(v, schema.items);
  }
}

/** Whether a schema declares a default anywhere applyDefaults looks (remembered per schema object: most subtrees have none). */
const defaultsIn = new WeakMap<Schema, boolean>();
function hasDefaults(schema: Schema): boolean {
  let has = defaultsIn.get(schema);
  if (has === undefined) {
    const props = schema.properties;
    if (props) has = Object.values(props).some((s) => s.default !== undefined || hasDefaults(s));
    else has = isObject(schema.additionalProperties) && hasDefaults(schema.additionalProperties as Schema);
    has ||= !!schema.items && hasDefaults(schema.items);
    defaultsIn.set(schema, has);
  }
  return has;
}

/**
 * Drops fields the schema does not declare (unless x-kubernetes-preserve-unknown-fields) and
 * returns their paths, for fieldValidation=Strict/Warn.
 */
export function prune(value: unknown, schema: Schema | undefined, path: string, out: string[], root = false): void {
  pruneAt(value, schema, path ? [path] : [], out, root);
}

/** prune, the path below the top kept as a stack of members and indexes: it is spelled out only for a field that goes. */
function pruneAt(value: unknown, schema: Schema | undefined, path: (string | number)[], out: string[], root: boolean): void {
  if (!schema) return;
  if (isObject(value)) {
    const props = schema.properties;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = schema['x-kubernetes-embedded-resource'] === true;
    for (const k of Object.keys(value)) {
      if ((root || embedded) && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
      const declared = !!props && Object.hasOwn(props, k);
      if (declared || isObject(schema.additionalProperties)) {
        // Only maps and lists hold fields to prune.
        if (value[k] !== null && typeof value[k] === 'object') {
          path.push(k);
          pruneAt(value[k], declared ? props![k] : (schema.additionalProperties as Schema), path, out, false);
          path.pop();
        }
      } else if (schema.additionalProperties === true || preserve) continue;
      else {
        out.push(spell([...path, k]));
        delete value[k];
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    for (let i = 0; i < value.length; i++) {
      if (value[i] === null || typeof value[i] !== 'object') continue;
      path.push(i);
      pruneAt(value[i], schema.items, path, out, false);
      path.pop();
    }
  }
}

/** `spec.env[2].name` from its members and indexes. */
function spell(path: (string | number)[]): string {
  let s = '';
  for (const p of path) s = typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${p}` : p;
  return s;
}

/** Turns Kubernetes' OpenAPI dialect into plain JSON schema ajv understands. */
function toJsonSchema(s: Schema, root: boolean): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'default' || k === 'description' || k === 'example' || k === 'externalDocs') continue;
    if (k === 'format') continue; // formats such as int-or-string/date-time are informational here
    if (k === 'properties') {
      const properties: Record<string, Schema> = {};
      for (const [pk, pv] of Object.entries(v as Record<string, Schema>)) {
        if (root && pk === 'metadata') continue; // metadata is checked by the server itself
        properties[pk] = toJsonSchema(pv, false);
      }
      out.properties = properties;
    } else if (k === 'items' || k === 'not') out[k] = toJsonSchema(v as Schema, false);
    else if (k === 'additionalProperties') out[k] = typeof v === 'boolean' ? v : toJsonSchema(v as Schema, false);
    else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') out[k] = (v as Schema[]).map((x) => toJsonSchema(x, false));
    else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] === true && !s.type) {
    out.anyOf = [...(out.anyOf ?? []), { type: 'integer' }, { type: 'string' }];
  }
  if (s.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (root && Array.isArray(out.required)) out.required = out.required.filter((r) => r !== 'metadata');
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });

/** A validator for a CRD version's schema (metadata left to validateMetadata), null without a schema. */
export function compileValidator(schema: Schema | undefined): ValidateFunction | null {
  if (!schema) return null;
  return ajv.compile(toJsonSchema(schema, true));
}

/** A value as kube's field errors quote it. */
export function showValue(v: unknown): string {
  return JSON.stringify(v) ?? 'null';
}

function valueAt(obj: unknown, field: string): unknown {
  let cur: unknown = obj;
  for (const part of field.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as JsonObject)[part];
  }
  return cur;
}

/** Maps ajv errors to Kubernetes-style causes (field paths like `spec.user`, messages like kube's). */
export function toCauses(errors: ErrorObject[] | null | undefined, obj: unknown): Cause[] {
  const out: Cause[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let field = fieldPathOf(e.instancePath);
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
        const allowed = ((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map(showValue).join(', ');
        c = { reason: 'FieldValueNotSupported', message: `Unsupported value: ${showValue(value)}: supported values: ${allowed}`, field };
        break;
      }
      case 'type':
        c = {
          reason: 'FieldValueInvalid',
          message: `Invalid value: "${typeof value === 'object' ? (Array.isArray(value) ? 'array' : value === null ? 'null' : 'object') : typeof value}": ${field || 'body'} in body must be of type ${(e.params as { type: string }).type}: ${showValue(value)}`,
          field,
        };
        break;
      case 'anyOf':
      case 'oneOf':
      case 'if':
        continue; // the branch errors already say what is wrong
      default:
        c = { reason: 'FieldValueInvalid', message: `Invalid value: ${showValue(value)}: ${field || 'body'} in body ${e.message ?? 'is invalid'}`, field };
    }
    const key = `${c.field}|${c.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(c);
  }
  return out;
}
