/**
 * Every stored object's key and resourceVersion, in memory: the main thread's answer to "does it
 * exist" (every create) and "is this still the version I read" (every update). A SQLite read for
 * that was ~30 µs of a create: each commit of the writer thread empties the read connection's page
 * cache, so every lookup went back to the file. Beside them, the keys of the few objects with owner
 * references or finalizers: what the garbage collector looks at, without reading every object.
 */
import type { Database } from 'better-sqlite3';
import type { ObjectMeta } from '../types.js';

/** An object's key within its kind. */
export const keyOf = (ns: string, name: string) => `${ns}\0${name}`;

/** Whether metadata holds owner references or finalizers. */
export function hasOwnersOrFinalizers(m: Pick<ObjectMeta, 'ownerReferences' | 'finalizers'>): boolean {
  return (Array.isArray(m.ownerReferences) && m.ownerReferences.length > 0) || (Array.isArray(m.finalizers) && m.finalizers.length > 0);
}

/** The same test in SQL, for the keys read at start (a text that is not JSON counts as neither). */
const HAS_OWNERS_OR_FINALIZERS = `CASE WHEN json_valid(data) THEN
  coalesce(json_array_length(data, '$.metadata.ownerReferences'), 0) > 0 OR coalesce(json_array_length(data, '$.metadata.finalizers'), 0) > 0
  ELSE 0 END`;

export class ObjectKeys {
  private byKind = new Map<string, Map<string, number>>();
  private ownedOrFinalized = new Map<string, Map<string, [ns: string, name: string]>>();

  /** (Re)reads every key from storage: at start, and after a failed commit. */
  load(db: Database): void {
    this.byKind = new Map();
    this.ownedOrFinalized = new Map();
    const rows = db.prepare(`SELECT gr, ns, name, rv, ${HAS_OWNERS_OR_FINALIZERS} AS marked FROM objects`).iterate() as IterableIterator<{
      gr: string;
      ns: string;
      name: string;
      rv: number;
      marked: number;
    }>;
    for (const r of rows) this.set(r.gr, r.ns, r.name, r.rv, r.marked === 1);
  }

  resourceVersion(gr: string, ns: string, name: string): number | undefined {
    return this.byKind.get(gr)?.get(keyOf(ns, name));
  }

  /** `ownersOrFinalizers`: the object has owner references or finalizers (see hasOwnersOrFinalizers). */
  set(gr: string, ns: string, name: string, rv: number, ownersOrFinalizers: boolean): void {
    const key = keyOf(ns, name);
    let keys = this.byKind.get(gr);
    if (!keys) this.byKind.set(gr, (keys = new Map()));
    keys.set(key, rv);
    let marked = this.ownedOrFinalized.get(gr);
    if (ownersOrFinalizers) {
      if (!marked) this.ownedOrFinalized.set(gr, (marked = new Map()));
      marked.set(key, [ns, name]);
    } else marked?.delete(key);
  }

  delete(gr: string, ns: string, name: string): void {
    const key = keyOf(ns, name);
    this.byKind.get(gr)?.delete(key);
    this.ownedOrFinalized.get(gr)?.delete(key);
  }

  /** [namespace, name] of the objects of `gr` with owner references or finalizers, in key order. */
  withOwnersOrFinalizers(gr: string): [ns: string, name: string][] {
    const marked = this.ownedOrFinalized.get(gr);
    if (!marked) return [];
    return [...marked.values()].sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  }
}
