/**
 * The committed objects of the kinds that are listed, as their stored JSON in UTF-8, in key order:
 * what kube-apiserver's watch cache is to etcd for lists. A list of 10,000 objects read from
 * SQLite spent half its server time stepping the statement and making a string of every row, and
 * the other half encoding those strings back to bytes for the socket; from here a list is a walk
 * over an array and a copy of bytes that are already what the client is sent.
 *
 * A kind is loaded on its first list (one scan) and kept in step by every commit from then on. The
 * cache holds committed writes only; writes still being committed are laid over it by the caller
 * (PendingWrites), as over a SQLite scan. The load can see a commit whose acknowledgement the main
 * thread has not handled yet; applying that commit afterwards must not undo a newer one, so an
 * entry changes only for a newer resourceVersion. (A key the load found deleted can come back for
 * a moment from an older write's acknowledgement; the delete is still pending then, and the pending
 * writes laid over the cache hide it until the delete's own acknowledgement removes the key.)
 *
 * Each text is a Buffer of its own (never a slice of Node's shared pool, which would keep a whole
 * 8 KiB pool alive for one small object).
 */
import type { Statement } from 'better-sqlite3';
import type { StoredRow } from './pending.js';

/** One cached object. `data` decodes the bytes on demand (lists that must parse rows). */
export class CachedRow implements StoredRow {
  constructor(
    readonly ns: string,
    readonly name: string,
    readonly rv: number,
    readonly bytes: Buffer,
  ) {}

  get data(): string {
    return this.bytes.toString('utf8');
  }
}

/** Key order as SQLite sorts the objects table (names and namespaces are ASCII DNS names, so JS order is byte order). */
function compare(ns: string, name: string, row: { ns: string; name: string }): number {
  if (ns !== row.ns) return ns < row.ns ? -1 : 1;
  return name < row.name ? -1 : name > row.name ? 1 : 0;
}

/** The first index in `rows` whose key is greater than (ns, name), or equal when `inclusive`. */
function lowerBound(rows: CachedRow[], ns: string, name: string, inclusive: boolean): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compare(ns, name, rows[mid]!);
    if (c > 0 || (c === 0 && !inclusive)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Copies text into a Buffer of exactly its size. */
export function ownBytes(text: string): Buffer {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text, 0, 'utf8');
  return bytes;
}

export class ObjectCache {
  /** Per kind (gr): its objects in key order. */
  private readonly kinds = new Map<string, CachedRow[]>();
  private bytesHeld = 0;

  /** `scan` reads every committed row of a kind: ns, name, rv and the data as a BLOB. */
  constructor(private readonly scan: Statement) {}

  /** Whether `gr` is cached (its commits must be applied). */
  has(gr: string): boolean {
    return this.kinds.has(gr);
  }

  /** Bytes of object text held, every kind together. */
  get bytes(): number {
    return this.bytesHeld;
  }

  /** The cached kinds and how many objects each holds. */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.kinds].map(([gr, rows]) => [gr, rows.length]));
  }

  /** Rows of `gr` after (ns, name) in key order; ns null: every namespace. Loads the kind on first use. */
  *rows(gr: string, ns: string | null, after: [string, string]): Generator<CachedRow> {
    const rows = this.load(gr);
    if (ns === null) {
      for (let i = lowerBound(rows, after[0], after[1], false); i < rows.length; i++) yield rows[i]!;
      return;
    }
    // Within one namespace the cursor's name counts, as in SQLite's listNs and PendingWrites.overlay.
    for (let i = lowerBound(rows, ns, after[1], false); i < rows.length && rows[i]!.ns === ns; i++) yield rows[i]!;
  }

  /** A committed write: `data` null for a delete. Kinds not cached are left alone. */
  committed(gr: string, ns: string, name: string, rv: number, data: string | null): void {
    const rows = this.kinds.get(gr);
    if (!rows) return;
    const i = lowerBound(rows, ns, name, true);
    const at = i < rows.length && compare(ns, name, rows[i]!) === 0 ? rows[i] : undefined;
    // The load already saw this commit, or a newer one.
    if (at && at.rv >= rv) return;
    if (data === null) {
      if (!at) return;
      rows.splice(i, 1);
      this.bytesHeld -= at.bytes.length;
      return;
    }
    const row = new CachedRow(ns, name, rv, ownBytes(data));
    this.bytesHeld += row.bytes.length - (at?.bytes.length ?? 0);
    if (at) rows[i] = row;
    else rows.splice(i, 0, row);
  }

  /** Forgets every kind (the next list of each loads it again). */
  clear(): void {
    this.kinds.clear();
    this.bytesHeld = 0;
  }

  private load(gr: string): CachedRow[] {
    let rows = this.kinds.get(gr);
    if (rows) return rows;
    rows = [];
    for (const r of this.scan.iterate(gr) as IterableIterator<{ ns: string; name: string; rv: number; data: Buffer }>) {
      rows.push(new CachedRow(r.ns, r.name, r.rv, r.data));
      this.bytesHeld += r.data.length;
    }
    this.kinds.set(gr, rows);
    return rows;
  }
}
