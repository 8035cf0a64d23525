/**
 * Pure helpers for JSON values that the API server and the operator both need: one definition of
 * "a JSON object", structural equality (so the two sides agree on when something changed),
 * canonical text (for hashes), and the RFC 7386 merge patch that turns one value into another.
 */

/** A JSON object as decoded from a body: keys to values that still need checking. */
export type JsonObject = Record<string, unknown>;

/** Whether `v` is a JSON object (not null, not an array). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Structural equality of JSON values: key order does not matter, and a member set to undefined
 * counts as absent (JSON.stringify drops it, so stored and computed objects compare equal).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], bb[i])) return false;
    return true;
  }
  // Counting members in place, not Object.keys + filter: a reconcile compares its whole status
  // (every condition) on each pass, and the key arrays were a third of a converged reconcile's garbage.
  const ao = a as JsonObject;
  const bo = b as JsonObject;
  let defined = 0;
  for (const k in ao) {
    if (!Object.hasOwn(ao, k) || ao[k] === undefined) continue;
    if (!Object.hasOwn(bo, k) || !jsonEqual(ao[k], bo[k])) return false;
    defined++;
  }
  for (const k in bo) if (Object.hasOwn(bo, k) && bo[k] !== undefined) defined--;
  return defined === 0;
}

/** Canonical JSON: object keys sorted at every level, undefined dropped. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',') + ']';
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return (
      '{' +
      Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort()
        .map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k]))
        .join(',') +
      '}'
    );
  }
  return JSON.stringify(v);
}

/**
 * The JSON merge patch (RFC 7386) that turns `from` into `to`: changed members recursively,
 * dropped members as null (merge patch's only way to delete), arrays whole. undefined when equal.
 */
export function mergePatchBetween(from: unknown, to: unknown): Record<string, unknown> | undefined {
  const f = (isObject(from) ? from : {}) as Record<string, unknown>;
  const t = (isObject(to) ? to : {}) as Record<string, unknown>;
  let patch: Record<string, unknown> | undefined;
  for (const k in t) {
    if (!Object.hasOwn(t, k) || t[k] === undefined) continue;
    const fk = Object.hasOwn(f, k) ? f[k] : undefined;
    if (jsonEqual(fk, t[k])) continue;
    patch ??= {};
    if (isObject(t[k]) && isObject(fk)) {
      const sub = mergePatchBetween(fk, t[k]);
      if (sub) patch[k] = sub;
    } else patch[k] = t[k];
  }
  for (const k in f) {
    if (Object.hasOwn(f, k) && f[k] !== undefined && f[k] !== null && (!Object.hasOwn(t, k) || t[k] === undefined)) (patch ??= {})[k] = null;
  }
  return patch && Object.keys(patch).length ? patch : undefined;
}

/**
 * A deep copy without undefined members, so stored and computed values compare equal: the value a
 * JSON round trip gives (toJSON honoured; undefined, functions and symbols dropped from objects and
 * null in arrays; NaN and ±Infinity null), built directly. A reconcile copies the status several
 * times; the round trip through text cost ~19 µs per status, this ~2 µs.
 */
export function withoutUndefined<T>(v: T): T {
  const out = jsonCopy(v);
  if (out === undefined) throw new TypeError('withoutUndefined: the value has no JSON form');
  return out as T;
}

function jsonCopy(v: unknown): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v + 0 : null; // -0 + 0 is 0, as JSON writes it
  if (typeof v === 'bigint') throw new TypeError('Do not know how to serialize a BigInt');
  if (typeof v !== 'object') return undefined;
  const j = (v as { toJSON?: unknown }).toJSON;
  if (typeof j === 'function') return jsonCopy(j.call(v));
  if (Array.isArray(v)) return Array.from(v, (x) => jsonCopy(x) ?? null); // holes too, as JSON writes them
  const out: JsonObject = {};
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const x = jsonCopy((v as JsonObject)[k]);
    if (x !== undefined) out[k] = x;
  }
  return out;
}
