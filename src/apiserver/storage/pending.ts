/**
 * Writes the main thread has made that the writer thread has not committed yet. Reads look here
 * first, so the main thread sees its own writes at once — conflicts, already-exists and the state
 * a list shows are decided against everything written, committed or not (as one SQLite
 * connection doing both would see them).
 */
import { keyOf } from './keys.js';

/** One object as stored: its key and its JSON text. */
export interface StoredRow {
  ns: string;
  name: string;
  data: string;
}

export interface PendingRow {
  ns: string;
  name: string;
  rv: number;
  /** The JSON text written, null for a delete. */
  data: string | null;
}

/** Key order as SQLite sorts the objects table: by namespace, then name. Names and namespaces are DNS names (ASCII), so JS string order is byte order. */
function compareRows(a: { ns: string; name: string }, b: { ns: string; name: string }): number {
  if (a.ns !== b.ns) return a.ns < b.ns ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export class PendingWrites {
  private readonly byKind = new Map<string, Map<string, PendingRow>>();

  get(gr: string, ns: string, name: string): PendingRow | undefined {
    return this.byKind.get(gr)?.get(keyOf(ns, name));
  }

  set(gr: string, row: PendingRow): void {
    let rows = this.byKind.get(gr);
    if (!rows) this.byKind.set(gr, (rows = new Map()));
    rows.set(keyOf(row.ns, row.name), row);
  }

  /** The write of `rv` to this key is committed: storage has it now (unless the key was written again since). */
  committed(gr: string, ns: string, name: string, rv: number): void {
    const rows = this.byKind.get(gr);
    const key = keyOf(ns, name);
    if (rows?.get(key)?.rv !== rv) return;
    rows.delete(key);
    if (rows.size === 0) this.byKind.delete(gr);
  }

  clear(): void {
    this.byKind.clear();
  }

  /**
   * `stored` (rows of `gr` in key order) with the pending writes laid over: new objects slot in,
   * changed ones replace, deleted ones drop out. `ns` null: every namespace.
   */
  overlay(gr: string, ns: string | null, after: [string, string], stored: IterableIterator<StoredRow>): IterableIterator<StoredRow> {
    const rows = this.byKind.get(gr);
    if (!rows) return stored;
    const from = { ns: after[0], name: after[1] };
    const pending = [...rows.values()].filter((r) => (ns === null ? compareRows(r, from) > 0 : r.ns === ns && r.name > from.name)).sort(compareRows);
    return pending.length ? merge(stored, pending) : stored;
  }
}

function* merge(stored: IterableIterator<StoredRow>, pending: PendingRow[]): Generator<StoredRow> {
  try {
    let s = stored.next();
    let i = 0;
    while (!s.done || i < pending.length) {
      if (i < pending.length && (s.done || compareRows(pending[i], s.value) <= 0)) {
        const p = pending[i++];
        if (!s.done && compareRows(p, s.value) === 0) s = stored.next();
        if (p.data !== null) yield { ns: p.ns, name: p.name, data: p.data };
      } else {
        yield s.value;
        s = stored.next();
      }
    }
  } finally {
    // A caller that stops early (a page is full) must still end the SQLite statement.
    stored.return?.();
  }
}
