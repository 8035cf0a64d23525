/**
 * Every stored object's key and resourceVersion, in memory: the main thread's answer to "does it
 * exist" (every create) and "is this still the version I read" (every update). A SQLite read for
 * that was ~30 µs of a create: each commit of the writer thread empties the read connection's page
 * cache, so every lookup went back to the file.
 */
import type { Database } from 'better-sqlite3';

/** An object's key within its kind. */
export const keyOf = (ns: string, name: string) => `${ns}\0${name}`;

export class ObjectKeys {
  private byKind = new Map<string, Map<string, number>>();

  /** (Re)reads every key from storage: at start, and after a failed commit. */
  load(db: Database): void {
    this.byKind = new Map();
    for (const r of db.prepare('SELECT gr, ns, name, rv FROM objects').iterate() as IterableIterator<{ gr: string; ns: string; name: string; rv: number }>) {
      this.set(r.gr, r.ns, r.name, r.rv);
    }
  }

  resourceVersion(gr: string, ns: string, name: string): number | undefined {
    return this.byKind.get(gr)?.get(keyOf(ns, name));
  }

  set(gr: string, ns: string, name: string, rv: number): void {
    let keys = this.byKind.get(gr);
    if (!keys) this.byKind.set(gr, (keys = new Map()));
    keys.set(keyOf(ns, name), rv);
  }

  delete(gr: string, ns: string, name: string): void {
    this.byKind.get(gr)?.delete(keyOf(ns, name));
  }
}
