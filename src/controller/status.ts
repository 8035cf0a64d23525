/**
 * Status arithmetic: conditions whose lastTransitionTime moves only when their status does
 * (apimachinery's meta.SetStatusCondition), and a deep comparison so a converged reconcile writes
 * nothing.
 */
import type { Condition } from '../api/types.js';

export function nowIso(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Set `c` in `conds` (returns a new array); keeps lastTransitionTime when the status did not change. */
export function setCondition(conds: Condition[] | undefined, c: Condition, now = nowIso()): Condition[] {
  const out = [...(conds ?? [])];
  const i = out.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? out[i] : undefined;
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastTransitionTime: prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
  };
  if (c.observedGeneration !== undefined) next.observedGeneration = c.observedGeneration;
  if (next.reason === undefined) delete next.reason;
  if (next.message === undefined) delete next.message;
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}

export function getCondition(conds: Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}

export function removeCondition(conds: Condition[] | undefined, type: string): Condition[] {
  return (conds ?? []).filter((c) => c.type !== type);
}

/** Structural equality for JSON values (key order ignored; undefined members ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => jsonEqual(ao[k], bo[k]));
}

/**
 * A JSON merge patch (RFC 7386) turning `from` into `to`: changed members recursively, dropped
 * members as null (merge patch's only way to delete), arrays whole. undefined when equal.
 */
export function mergePatch(from: unknown, to: unknown): Record<string, unknown> | undefined {
  const f = (isObj(from) ? from : {}) as Record<string, unknown>;
  const t = (isObj(to) ? to : {}) as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(t)) {
    if (t[k] === undefined) continue;
    if (jsonEqual(f[k], t[k])) continue;
    if (isObj(t[k]) && isObj(f[k])) {
      const sub = mergePatch(f[k], t[k]);
      if (sub) patch[k] = sub;
    } else patch[k] = t[k];
  }
  for (const k of Object.keys(f)) {
    if (f[k] !== undefined && f[k] !== null && t[k] === undefined) patch[k] = null;
  }
  return Object.keys(patch).length ? patch : undefined;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Drop undefined members so stored and computed statuses compare equal. */
export function clean<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
