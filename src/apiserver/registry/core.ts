/** Strategies of the built-in core kinds whose content the server interprets. */
import { isObject, jsonEqual } from '../../util/json.js';
import { badRequest } from '../errors.js';
import type { Cause, KubeObject, Namespace, Secret, StoredObject } from '../types.js';
import { GenericStrategy, type WriteContext } from './strategy.js';

/** Largest Secret (its data, decoded) and ConfigMap (data and binaryData): kube's 1 MiB. */
const MAX_DATA_BYTES = 1024 * 1024;

/** Go's base64.StdEncoding: whole quanta of four characters, padding only at the end. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `data`, `binaryData` and `stringData` must be maps of strings, base64 where the bytes are
 * binary; `immutable` a boolean and a Secret's `type` a string. Kube's decoder refuses anything
 * else with a 400 naming the field, before validation.
 */
function checkDataMaps(obj: KubeObject, kind: string, base64Data: boolean): void {
  const cannot = (why: string) => badRequest(`${kind} in version "v1" cannot be handled as a ${kind}: ${why}`);
  for (const f of ['data', 'binaryData', 'stringData']) {
    const m = obj[f];
    if (m === undefined || m === null) continue;
    const b64 = f === 'binaryData' || (f === 'data' && base64Data);
    if (!isObject(m)) throw cannot(`${f} must be a map of ${b64 ? 'base64-encoded ' : ''}strings`);
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') throw cannot(`${f}[${JSON.stringify(k)}] must be a string`);
      if (b64 && !BASE64.test(v)) throw cannot(`${f}[${JSON.stringify(k)}] is not valid base64 (illegal base64 data)`);
    }
  }
  if (obj.immutable !== undefined && obj.immutable !== null && typeof obj.immutable !== 'boolean') throw cannot('immutable must be a boolean');
  if (kind === 'Secret' && obj.type !== undefined && typeof obj.type !== 'string') throw cannot('type must be a string');
}

/** kube's IsConfigMapKey: the keys of data and binaryData are file names in a volume. */
function keyCauses(obj: KubeObject, fields: string[]): Cause[] {
  const out: Cause[] = [];
  for (const f of fields) {
    const m = obj[f];
    if (!isObject(m)) continue;
    for (const k of Object.keys(m)) {
      if (k.length > 253 || !/^[-._a-zA-Z0-9]+$/.test(k) || k === '.' || k === '..') {
        out.push({
          reason: 'FieldValueInvalid',
          field: `${f}[${k}]`,
          message: `Invalid value: ${JSON.stringify(k)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (at most 253), and may not be '.' or '..'`,
        });
      }
    }
  }
  return out;
}

const decodedBytes = (b64: string) => Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);

function sizeCause(bytes: number, field: string): Cause[] {
  return bytes > MAX_DATA_BYTES ? [{ reason: 'FieldValueTooLong', field, message: `Too long: must have at most ${MAX_DATA_BYTES} bytes` }] : [];
}

/** An `immutable` Secret or ConfigMap keeps its data, and stays immutable (kube's rule for both). */
function immutableCauses(obj: KubeObject, old: StoredObject, fields: string[]): Cause[] {
  if (old.immutable !== true) return [];
  const out: Cause[] = [];
  const forbidden = (field: string): Cause => ({ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field });
  if (obj.immutable !== true) out.push(forbidden('immutable'));
  for (const f of fields) if (!jsonEqual(old[f] ?? {}, obj[f] ?? {})) out.push(forbidden(f));
  return out;
}

/** Fills a `kubernetes.io/service-account-token` Secret (its token, ca.crt, namespace); returns what is wrong with it. */
export type ServiceAccountTokenFiller = (secret: Secret) => Cause[];

export class SecretStrategy extends GenericStrategy {
  constructor(private readonly fillServiceAccountToken?: ServiceAccountTokenFiller) {
    super();
  }

  /** stringData is write-only: merged into data (base64) and dropped; the type defaults to Opaque. */
  protected override normalise(obj: KubeObject): void {
    const secret = obj as Secret;
    checkDataMaps(secret, 'Secret', true);
    const stringData: unknown = secret.stringData;
    if (isObject(stringData)) {
      const data: Record<string, string> = { ...(secret.data ?? {}) };
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(v as string).toString('base64');
      secret.data = data;
    }
    delete secret.stringData;
    if (!secret.type) secret.type = 'Opaque';
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const data = isObject(obj.data) ? (obj.data as Record<string, string>) : {};
    const bytes = Object.entries(data).reduce((n, [k, v]) => n + k.length + decodedBytes(v), 0);
    const causes = [...super.validate(obj, ctx), ...keyCauses(obj, ['data']), ...sizeCause(bytes, 'data')];
    const secret = obj as Secret;
    // After validation of the name, so the token names a valid Secret.
    if (!causes.length && secret.type === 'kubernetes.io/service-account-token' && this.fillServiceAccountToken)
      causes.push(...this.fillServiceAccountToken(secret));
    return causes;
  }

  override validateUpdate(obj: KubeObject, old: StoredObject): Cause[] {
    const out = immutableCauses(obj, old, ['data']);
    if (obj.type !== old.type) out.push({ reason: 'FieldValueInvalid', message: 'Invalid value: field is immutable', field: 'type' });
    return out;
  }
}

export class ConfigMapStrategy extends GenericStrategy {
  protected override normalise(obj: KubeObject): void {
    checkDataMaps(obj, 'ConfigMap', false);
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const data = isObject(obj.data) ? (obj.data as Record<string, string>) : {};
    const bin = isObject(obj.binaryData) ? (obj.binaryData as Record<string, string>) : {};
    const out = [...super.validate(obj, ctx), ...keyCauses(obj, ['data', 'binaryData'])];
    for (const k of Object.keys(data)) {
      if (Object.hasOwn(bin, k))
        out.push({ reason: 'FieldValueInvalid', field: `data[${k}]`, message: `Invalid value: ${JSON.stringify(k)}: duplicate of key present in binaryData` });
    }
    const bytes =
      Object.entries(data).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0) +
      Object.entries(bin).reduce((n, [k, v]) => n + k.length + decodedBytes(v), 0);
    return [...out, ...sizeCause(bytes, '')];
  }

  override validateUpdate(obj: KubeObject, old: StoredObject): Cause[] {
    return immutableCauses(obj, old, ['data', 'binaryData']);
  }
}

/**
 * Namespaces: the phase follows deletionTimestamp, the `kubernetes.io/metadata.name` label is
 * always the name, and a delete always waits for the namespace to be emptied (gc/namespaces.ts).
 */
export class NamespaceStrategy extends GenericStrategy {
  override readonly gracefulDeletion = true;
  protected override readonly nameRule = 'label';

  constructor(private readonly onTerminating: (name: string) => void) {
    super();
  }

  protected override normalise(obj: KubeObject): void {
    const ns = obj as Namespace;
    ns.status = { ...(ns.status ?? {}), phase: ns.metadata.deletionTimestamp ? 'Terminating' : 'Active' };
    const name = ns.metadata.name;
    if (typeof name === 'string') ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': name };
  }

  override prepareForDeletion(obj: KubeObject): void {
    const ns = obj as Namespace;
    ns.status = { ...(ns.status ?? {}), phase: 'Terminating' };
  }

  override afterDeletionStarted(obj: StoredObject): void {
    this.onTerminating(obj.metadata.name);
  }
}

/** events.k8s.io/v1 <-> core/v1 Event field renames (both views share one storage). */
const eventRenames: [string, string][] = [
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
  ['reportingController', 'reportingComponent'],
];

/** An Event in the other API's field names: `from` 0 = events.k8s.io → core, 1 = core → events.k8s.io. */
export function renameEvent(o: KubeObject, from: 0 | 1, apiVersion: string): KubeObject {
  const out: KubeObject = { ...o, apiVersion };
  for (const pair of eventRenames) {
    const a = pair[from],
      b = pair[1 - from];
    if (a in out) {
      out[b] = out[a];
      delete out[a];
    }
  }
  return out;
}
