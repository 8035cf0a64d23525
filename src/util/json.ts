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
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ao = a as JsonObject;
  const bo = b as JsonObject;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
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
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(t)) {
    if (t[k] === undefined) continue;
    if (jsonEqual(f[k], t[k])) continue;
    if (isObject(t[k]) && isObject(f[k])) {
      const sub = mergePatchBetween(f[k], t[k]);
      if (sub) patch[k] = sub;
    } else patch[k] = t[k];
  }
  for (const k of Object.keys(f)) {
    if (f[k] !== undefined && f[k] !== null && t[k] === undefined) patch[k] = null;
  }
  return Object.keys(patch).length ? patch : undefined;
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
  for (const k of Object.keys(v)) {
    const x = jsonCopy((v as JsonObject)[k]);
    if (x !== undefined) out[k] = x;
  }
  return out;
}
