/**
 * metadata.managedFields as kube-apiserver reads and writes it: entries decoded into field sets
 * (with the validity rules and the `[{}]` reset), and encoded back sorted, empty entries dropped,
 * and at most ten Update managers (older ones folded into `ancient-changes`).
 */
import { isObject, jsonEqual } from '../../util/json.js';
import type { ManagedFieldsEntry } from '../types.js';
import { fromFieldsV1, toFieldsV1, type FieldSet } from './fieldset.js';

export interface ManagerEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  /** '' for the main resource. */
  subresource: string;
  fields: FieldSet;
}

/** Update managers kept apart; older ones are merged into one entry (kube's maxUpdateManagers). */
export const MAX_UPDATE_MANAGERS = 10;
export const ANCIENT_CHANGES = 'ancient-changes';

/** Two entries belong to the same manager: an applier is one manager whatever apiVersion it used. */
export function sameManager(
  a: Pick<ManagerEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>,
  b: Pick<ManagerEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>,
): boolean {
  return (
    a.manager === b.manager && a.operation === b.operation && a.subresource === b.subresource && (a.operation === 'Apply' || a.apiVersion === b.apiVersion)
  );
}

/** The entries of a managedFields list, 'reset' for `[{}]`, or undefined when it is empty or not valid. */
export function decodeManagedFields(list: unknown): ManagerEntry[] | 'reset' | undefined {
  if (!Array.isArray(list) || list.length === 0) return undefined;
  if (list.every((e) => jsonEqual(e, {}))) return 'reset';
  const out: ManagerEntry[] = [];
  for (const e of list) {
    if (!isObject(e)) return undefined;
    if (e.operation !== 'Apply' && e.operation !== 'Update') return undefined;
    if (typeof e.apiVersion !== 'string' || e.apiVersion === '') return undefined;
    if (e.fieldsType !== 'FieldsV1') return undefined;
    if (e.manager !== undefined && typeof e.manager !== 'string') return undefined;
    if (e.subresource !== undefined && typeof e.subresource !== 'string') return undefined;
    if (e.time !== undefined && (typeof e.time !== 'string' || Number.isNaN(Date.parse(e.time)))) return undefined;
    if (e.fieldsV1 !== undefined && !isObject(e.fieldsV1)) return undefined;
    out.push({
      manager: (e.manager as string | undefined) ?? '',
      operation: e.operation,
      apiVersion: e.apiVersion,
      time: e.time as string | undefined,
      subresource: (e.subresource as string | undefined) ?? '',
      fields: fromFieldsV1(e.fieldsV1 as ManagedFieldsEntry['fieldsV1']),
    });
  }
  // One entry per manager: a list naming one twice is not one kube would have written.
  for (let i = 0; i < out.length; i++) for (let j = i + 1; j < out.length; j++) if (sameManager(out[i], out[j])) return undefined;
  return out;
}

/**
 * Who owns what before a write: managedFields the request sets (an ownership change, such as
 * kubectl's client-side → server-side apply migration, or `[{}]`: nobody), else the stored ones.
 * Writes to a subresource cannot set managedFields.
 */
export function managersBefore(requested: unknown, stored: unknown, subresource: string): ManagerEntry[] {
  if (!subresource) {
    const r = decodeManagedFields(requested);
    if (r === 'reset') return [];
    if (r) return r;
  }
  const s = decodeManagedFields(stored);
  return s === 'reset' || !s ? [] : s;
}

const seconds = (t: string | undefined) => (t ? Math.floor(Date.parse(t) / 1000) : 0);

/** The managedFields to store: entries that own something, oldest Update managers folded, in kube's order. */
export function encodeManagedFields(entries: ManagerEntry[]): ManagedFieldsEntry[] {
  let kept = entries.filter((e) => e.fields.size > 0);
  const updates = kept.filter((e) => e.operation === 'Update');
  if (updates.length > MAX_UPDATE_MANAGERS) {
    const byAge = [...updates].sort((a, b) => seconds(a.time) - seconds(b.time));
    const folded = byAge.slice(0, updates.length - MAX_UPDATE_MANAGERS + 1);
    const ancient: ManagerEntry = {
      manager: ANCIENT_CHANGES,
      operation: 'Update',
      apiVersion: folded[folded.length - 1].apiVersion,
      time: folded[folded.length - 1].time,
      subresource: '',
      fields: new Set(),
    };
    for (const e of folded) for (const p of e.fields) ancient.fields.add(p);
    kept = [...kept.filter((e) => !folded.includes(e)), ancient];
  }
  kept.sort((p, q) =>
    p.operation !== q.operation
      ? p.operation < q.operation
        ? -1
        : 1
      : seconds(p.time) !== seconds(q.time)
        ? seconds(p.time) - seconds(q.time)
        : p.manager !== q.manager
          ? p.manager < q.manager
            ? -1
            : 1
          : p.apiVersion !== q.apiVersion
            ? p.apiVersion < q.apiVersion
              ? -1
              : 1
            : p.subresource < q.subresource
              ? -1
              : p.subresource > q.subresource
                ? 1
                : 0,
  );
  return kept.map((e) => ({
    manager: e.manager,
    operation: e.operation,
    apiVersion: e.apiVersion,
    ...(e.time ? { time: e.time } : {}),
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(e.fields),
    ...(e.subresource ? { subresource: e.subresource } : {}),
  }));
}

/** Whether two managedFields lists say the same thing apart from when each manager last wrote. */
export function sameOwnership(a: ManagedFieldsEntry[] | undefined, b: ManagedFieldsEntry[] | undefined): boolean {
  const strip = (l: ManagedFieldsEntry[] | undefined) => (l ?? []).map((e) => ({ ...e, time: undefined }));
  return jsonEqual(strip(a), strip(b));
}
