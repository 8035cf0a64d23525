/** A server's CPU and memory: spec or policy defaults, capped by the policy's limits; reservations at most the limit. Pure. */
import type { NotebookServer } from '../api/types.js';
import type { DesiredServer } from '../backends/types.js';
import { parseQuantity } from '../config/quantity.js';
import type { Policy } from '../config/types.js';

export type ResourcesResult = { ok: true; resources: DesiredServer['resources'] } | { ok: false; field: string; reason: string; message: string };

const fail = (field: string, reason: string, message: string): ResourcesResult => ({ ok: false, field, reason, message });

/** spec.resources under the policy: Docker's nano-CPUs and bytes, or the field that the policy refuses. */
export function renderResources(specResources: NotebookServer['spec']['resources'], policy: Pick<Policy, 'resources'>): ResourcesResult {
  const resources: DesiredServer['resources'] = {};
  for (const kind of ['cpu', 'memory'] as const) {
    const given = specResources?.[kind] as string | number | undefined;
    const raw = given ?? policy.resources.defaults[kind];
    const hint = kind === 'cpu' ? '"500m" or "2"' : '"512Mi" or "2Gi"';
    let q: number | undefined;
    if (raw !== undefined) {
      q = parseQuantity(raw);
      const field = `spec.resources.${kind}`;
      if (q === undefined || q <= 0) return fail(field, 'InvalidQuantity', `${field} "${raw}" is not a positive quantity like ${hint}`);
      const cap = policy.resources.limits[kind];
      const capQ = cap === undefined ? undefined : parseQuantity(cap);
      if (capQ !== undefined && q > capQ) {
        return fail(field, 'ResourceOverLimit', `${field} ${raw} is above the operator policy's cap resources.limits.${kind} ${cap}`);
      }
      if (kind === 'cpu') resources.nanoCpus = Math.round(q * 1e9);
      else resources.memoryBytes = Math.round(q);
    }
    const reqRaw = (specResources?.requests?.[kind] as string | number | undefined) ?? policy.resources.requests?.[kind];
    if (reqRaw === undefined) continue;
    const rq = parseQuantity(reqRaw);
    const field = `spec.resources.requests.${kind}`;
    if (rq === undefined || rq <= 0) return fail(field, 'InvalidQuantity', `${field} "${reqRaw}" is not a positive quantity like ${hint}`);
    if (q !== undefined && rq > q) return fail(field, 'ResourceOverLimit', `${field} ${reqRaw} is above the server's ${kind} limit ${raw}`);
    if (kind === 'cpu') resources.reserveNanoCpus = Math.round(rq * 1e9);
    else resources.reserveMemoryBytes = Math.round(rq);
  }
  return { ok: true, resources };
}
