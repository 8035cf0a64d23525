/**
 * What metadata may hold, checked on every object as it would be stored (kube's
 * ValidateObjectMeta, the parts the strategies do not check): finalizer names, owner references,
 * the size of annotations, label and annotation key prefixes, a non-negative generation. The types
 * were checked when the request was decoded (registry/object-meta.ts).
 */
import { invalid } from '../errors.js';
import { MAX_ANNOTATIONS_BYTES } from '../limits.js';
import type { Cause, KubeObject } from '../types.js';
import type { AdmissionAttributes, AdmissionPlugin } from './admission.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** kube's IsQualifiedName: `[prefix/]name`, the prefix a DNS subdomain of at most 253 characters. */
export function qualifiedNameProblem(s: string): string | undefined {
  const slash = s.indexOf('/');
  const prefix = slash >= 0 ? s.slice(0, slash) : undefined;
  const name = slash >= 0 ? s.slice(slash + 1) : s;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return 'prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters';
  }
  if (!NAME_PART.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)";
  }
  return undefined;
}

const bad = (field: string, value: unknown, why: string): Cause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${JSON.stringify(value)?.slice(0, 200)}: ${why}`,
});

export function metadataCauses(obj: KubeObject): Cause[] {
  const md = obj.metadata;
  const out: Cause[] = [];
  if (typeof md.generation === 'number' && md.generation < 0) out.push(bad('metadata.generation', md.generation, 'must be greater than or equal to 0'));
  (md.finalizers ?? []).forEach((f, i) => {
    const why = qualifiedNameProblem(f);
    if (why) out.push(bad(`metadata.finalizers[${i}]`, f, why));
  });
  let controllers = 0;
  (md.ownerReferences ?? []).forEach((ref, i) => {
    for (const k of ['apiVersion', 'kind', 'name', 'uid'] as const) {
      if (!ref[k]) out.push({ reason: 'FieldValueRequired', field: `metadata.ownerReferences[${i}].${k}`, message: 'Required value' });
    }
    if (ref.controller) controllers++;
  });
  if (controllers > 1) out.push(bad('metadata.ownerReferences', `${controllers} controllers`, 'Only one reference can have Controller set to true'));
  for (const kind of ['labels', 'annotations'] as const) {
    const m = md[kind];
    if (!m || typeof m !== 'object') continue;
    let bytes = 0;
    for (const [k, v] of Object.entries(m)) {
      bytes += Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
      const slash = k.indexOf('/');
      if (slash > 253) out.push(bad(`metadata.${kind}`, k, 'prefix part must be no more than 253 characters'));
    }
    if (kind === 'annotations' && bytes > MAX_ANNOTATIONS_BYTES) {
      out.push({ reason: 'FieldValueTooLong', field: 'metadata.annotations', message: `Too long: must have at most ${MAX_ANNOTATIONS_BYTES} bytes` });
    }
  }
  return out;
}

export class MetadataValidation implements AdmissionPlugin {
  readonly name = 'MetadataValidation';

  validate(a: AdmissionAttributes): void {
    if (!a.object || a.operation === 'DELETE') return;
    const causes = metadataCauses(a.object);
    if (causes.length) throw invalid(a.kind.kind, a.kind.group, a.object.metadata.name ?? a.name, causes);
  }
}
