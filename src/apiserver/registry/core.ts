/** Strategies of the built-in core kinds whose content the server interprets. */
import { isObject, jsonEqual } from '../../util/json.js';
import { badRequest } from '../errors.js';
import type { Cause, KubeObject, Namespace, Secret, StoredObject } from '../types.js';
import { GenericStrategy, type WriteContext } from './strategy.js';

/**
 * `data`, `binaryData` (and a leftover `stringData`) must be maps of strings, base64 where the
 * bytes are binary. Kube's decoder refuses anything else with a 400, before validation.
 */
function checkDataMaps(obj: KubeObject, kind: string, base64Data: boolean): void {
  for (const f of ['data', 'binaryData', 'stringData']) {
    const m = obj[f];
    if (m === undefined || m === null) continue;
    const b64 = f === 'binaryData' || (f === 'data' && base64Data);
    if (!isObject(m) || Object.values(m).some((v) => typeof v !== 'string' || (b64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)))) {
      throw badRequest(`${kind} in version "v1" cannot be handled as a ${kind}: ${f} must be a map of ${b64 ? 'base64-encoded ' : ''}strings`);
    }
  }
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
    const stringData: unknown = secret.stringData;
    if (isObject(stringData)) {
      const data: Record<string, string> = { ...(secret.data ?? {}) };
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      secret.data = data;
    }
    delete secret.stringData;
    if (!secret.type) secret.type = 'Opaque';
    checkDataMaps(secret, 'Secret', true);
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const causes = super.validate(obj, ctx);
    const secret = obj as Secret;
    // After validation of the name, so the token names a valid Secret.
    if (!causes.length && secret.type === 'kubernetes.io/service-account-token' && this.fillServiceAccountToken) causes.push(...this.fillServiceAccountToken(secret));
    return causes;
  }

  override validateUpdate(obj: KubeObject, old: StoredObject): Cause[] {
    if (old.immutable && !jsonEqual(old.data, obj.data)) {
      return [{ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' }];
    }
    return [];
  }
}

export class ConfigMapStrategy extends GenericStrategy {
  protected override normalise(obj: KubeObject): void {
    checkDataMaps(obj, 'ConfigMap', false);
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
  ['regarding', 'involvedObject'], ['note', 'message'], ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'], ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'], ['reportingController', 'reportingComponent'],
];

/** An Event in the other API's field names: `from` 0 = events.k8s.io → core, 1 = core → events.k8s.io. */
export function renameEvent(o: KubeObject, from: 0 | 1, apiVersion: string): KubeObject {
  const out: KubeObject = { ...o, apiVersion };
  for (const pair of eventRenames) {
    const a = pair[from], b = pair[1 - from];
    if (a in out) {
      out[b] = out[a];
      delete out[a];
    }
  }
  return out;
}
