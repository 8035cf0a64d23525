/** Checks every object's metadata gets: DNS names, label and annotation syntax. */
import { isObject } from '../../util/json.js';
import type { Cause, KubeObject } from '../types.js';
import { showValue as show } from './schema.js';

/** Causes for a bad name or bad labels/annotations; drops the namespace of a cluster-scoped object. */
export function validateMetadata(obj: KubeObject, namespaced: boolean, nameRule: 'subdomain' | 'label' = 'subdomain'): Cause[] {
  const out: Cause[] = [];
  const md = obj.metadata;
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
    const m: unknown = md[kind];
    if (m === undefined || m === null) continue;
    if (!isObject(m)) {
      out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(m)}: must be a map of strings`, field: `metadata.${kind}` });
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: must be a string`, field: `metadata.${kind}` });
      if (!/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(k)) {
        out.push({
          reason: 'FieldValueInvalid',
          message: `Invalid value: ${show(k)}: name part must consist of alphanumeric characters, '-', '_' or '.'`,
          field: `metadata.${kind}`,
        });
      }
      if (kind === 'labels' && typeof v === 'string' && !/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/.test(v)) {
        out.push({
          reason: 'FieldValueInvalid',
          message: `Invalid value: ${show(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'`,
          field: `metadata.labels`,
        });
      }
    }
  }
  return out;
}
