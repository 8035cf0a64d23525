/**
 * ObjectMeta as kube's decoder reads it: every field has its type (a body that gives another is a
 * 400 naming the field, before anything else reads it) and fields ObjectMeta does not have are
 * dropped (an error under fieldValidation=Strict, a warning under Warn). What the values may be —
 * finalizer names, owner references, annotation sizes — is checked later, on the object as it
 * would be stored (admission/metadata-validation.ts).
 */
import { isObject, type JsonObject } from '../../util/json.js';
import { badRequest } from '../errors.js';

type FieldType = 'string' | 'integer' | 'stringMap' | 'stringList' | 'ownerReferences' | 'objectList';

const FIELDS: Record<string, FieldType> = {
  name: 'string',
  generateName: 'string',
  namespace: 'string',
  selfLink: 'string',
  uid: 'string',
  resourceVersion: 'string',
  generation: 'integer',
  creationTimestamp: 'string',
  deletionTimestamp: 'string',
  deletionGracePeriodSeconds: 'integer',
  labels: 'stringMap',
  annotations: 'stringMap',
  finalizers: 'stringList',
  ownerReferences: 'ownerReferences',
  managedFields: 'objectList',
};

const OWNER_REFERENCE_FIELDS: Record<string, 'string' | 'boolean'> = {
  apiVersion: 'string',
  kind: 'string',
  name: 'string',
  uid: 'string',
  controller: 'boolean',
  blockOwnerDeletion: 'boolean',
};

const typeName = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v} (${JSON.stringify(v)})`;

function wrongType(field: string, want: string, v: unknown): never {
  throw badRequest(`${field} must be ${want}, not ${typeName(v).slice(0, 120)}`);
}

/**
 * Checks the types of `md`'s fields and drops the ones ObjectMeta does not have; returns the
 * dropped paths (`metadata.foo`) for the caller's fieldValidation.
 */
export function decodeObjectMeta(md: JsonObject): string[] {
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(md)) {
    const field = `metadata.${k}`;
    const type = Object.hasOwn(FIELDS, k) ? FIELDS[k] : undefined;
    if (!type) {
      unknown.push(field);
      delete md[k];
      continue;
    }
    // null is a field left out, as Go's decoder reads it.
    if (v === null || v === undefined) {
      delete md[k];
      continue;
    }
    switch (type) {
      case 'string':
        if (typeof v !== 'string') wrongType(field, 'a string', v);
        break;
      case 'integer':
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) wrongType(field, 'an integer', v);
        break;
      case 'stringMap':
        // Values are checked by validateMetadata (a 422 naming the key), as before.
        if (!isObject(v)) wrongType(field, 'a map of strings', v);
        break;
      case 'stringList':
        if (!Array.isArray(v)) wrongType(field, 'an array of strings', v);
        v.forEach((x: unknown, i: number) => {
          if (typeof x !== 'string') wrongType(`${field}[${i}]`, 'a string', x);
        });
        break;
      case 'objectList':
        if (!Array.isArray(v)) wrongType(field, 'an array of objects', v);
        v.forEach((x: unknown, i: number) => {
          if (!isObject(x)) wrongType(`${field}[${i}]`, 'an object', x);
        });
        break;
      case 'ownerReferences':
        if (!Array.isArray(v)) wrongType(field, 'an array of owner references', v);
        v.forEach((ref: unknown, i: number) => {
          const at = `${field}[${i}]`;
          if (!isObject(ref)) wrongType(at, 'an object', ref);
          for (const [rk, rv] of Object.entries(ref)) {
            const want = Object.hasOwn(OWNER_REFERENCE_FIELDS, rk) ? OWNER_REFERENCE_FIELDS[rk] : undefined;
            if (!want) unknown.push(`${at}.${rk}`);
            else if (rv !== null && typeof rv !== want) wrongType(`${at}.${rk}`, `a ${want}`, rv);
            if (!want || rv === null) delete ref[rk];
          }
        });
        break;
    }
  }
  return unknown;
}
