/**
 * Drift: a Docker object changed by someone else after the operator wrote it (`docker service
 * update --env-add …`, `docker update --memory …`). The spec-hash label says what the operator
 * wrote the object for, not what the object is now, so the backends compare what they observe
 * with what they would write, reduced on both sides to the same canonical form:
 * - only the parts nbswarm writes (ownedServiceSpec in swarm-spec.ts, ownedContainerConfig in
 *   container-spec.ts), so Swarm's own bookkeeping (update config, a forced restart) is not drift;
 * - "empty" values (undefined, null, "", false, 0, [], {}) dropped, since Docker stores an unset
 *   field as its zero value;
 * - the daemon's defaults for fields nbswarm leaves unset dropped when the observed value is that
 *   default.
 * The comparison needs no Docker call: Swarm's list answer has the whole spec, and a container is
 * inspected only after Docker announced an update of it.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, isObject, jsonEqual } from '../util/json.js';

/** `v` without empty members, recursively; undefined when nothing is left. */
export function pruneEmpty(v: unknown): unknown {
  if (v === undefined || v === null || v === '' || v === false || v === 0) return undefined;
  if (Array.isArray(v)) {
    const out = v.map(pruneEmpty).filter((x) => x !== undefined);
    return out.length ? out : undefined;
  }
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const p = pruneEmpty(x);
      if (p !== undefined) out[k] = p;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return v;
}

/** Remove `path` from `observed` when it holds `value` and `desired` has nothing there (a daemon default). */
export function dropDefault(observed: unknown, desired: unknown, path: string[], value: unknown): void {
  let o = observed;
  let d = desired;
  for (const k of path.slice(0, -1)) {
    o = isObject(o) ? o[k] : undefined;
    d = isObject(d) ? d[k] : undefined;
  }
  const last = path[path.length - 1]!;
  if (isObject(o) && o[last] === value && (!isObject(d) || d[last] === undefined)) delete o[last];
}

/**
 * The paths (dotted, at most `depth` levels deep) where two pruned values differ: what a Warning
 * Event names so a person sees what was reverted. Empty when they are equal.
 */
export function diffPaths(a: unknown, b: unknown, depth = 3, prefix = ''): string[] {
  // Structural equality, not canonical text: most reconciles compare equal specs, and the text
  // of both sides was the costliest step of a steady-state reconcile.
  if (jsonEqual(a, b)) return [];
  if (depth <= 0 || !isObject(a) || !isObject(b)) return [prefix || '(whole spec)'];
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    out.push(...diffPaths(a[k], b[k], depth - 1, prefix ? `${prefix}.${k}` : k));
  }
  return out;
}

/** A short digest of a canonical value (to remember what an object looked like right after a write). */
export function digestOf(v: unknown): string {
  return createHash('sha256').update(canonicalJson(v)).digest('hex').slice(0, 32);
}

/**
 * Observations the backend's own writes left behind that still "differ" from what it writes (a
 * normalisation of the daemon this file does not know): never reverted again, so an unknown
 * normalisation costs one write, not a loop. Keyed by object ID and the spec hash written.
 */
export class WrittenShapes {
  private readonly shapes = new Map<string, string>();

  remember(id: string, specHash: string | undefined, observedDigest: string): void {
    if (this.shapes.size > 20_000) this.shapes.clear();
    this.shapes.set(`${id}/${specHash ?? ''}`, observedDigest);
  }

  /** Whether `observedDigest` is how object `id` looked right after the operator wrote it for `specHash`. */
  isOwnWrite(id: string, specHash: string | undefined, observedDigest: string): boolean {
    return this.shapes.get(`${id}/${specHash ?? ''}`) === observedDigest;
  }
}
