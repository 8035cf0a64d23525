import Database from 'better-sqlite3';
import type { Database as DB, Statement } from 'better-sqlite3';

export type Obj = Record<string, any>;  
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  gr: string;
  ns: string;
  name: string;
  rv: number;
  object: Obj;
  /** The object before this change (live events only; history replay has no previous state). */
  prev?: Obj;
  /** Serialised watch lines, shared by every watcher that sends the same bytes. */
  wire?: Map<string, string>;
}

export interface Watcher {
  gr: string;
  ns: string; // '' = all namespaces
  send(ev: StoreEvent): void;
  /** Ends the watch (its resource stopped being served). */
  close?(): void;
}

/**
 * SQLite-backed object store: one row per object, one global resourceVersion sequence, and a
 * history table holding the last `window` changes so watches can resume from an older RV.
 * Every write is one transaction; WAL + synchronous=NORMAL means a committed write is in the WAL
 * file before the call returns, so it survives kill -9 of the process (FULL adds survival of an
 * OS crash/power loss at an fsync per commit; choose it with `synchronous: 'FULL'`).
 */
export class Store {
  readonly db: DB;
  private rv: number;
  private compacted: number;
  private watchers = new Set<Watcher>();
  private st: Record<string, Statement>;

  constructor(file: string, private readonly window: number, synchronous: 'NORMAL' | 'FULL' = 'NORMAL') {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (gr, ns, name)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS history (rv INTEGER PRIMARY KEY, gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS history_gr ON history (gr, rv);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 1), ('compacted', 0);
    `);
    const prep = (s: string) => this.db.prepare(s);
    this.st = {
      get: prep('SELECT data FROM objects WHERE gr = ? AND ns = ? AND name = ?'),
      upsert: prep('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO UPDATE SET rv = excluded.rv, data = excluded.data'),
      del: prep('DELETE FROM objects WHERE gr = ? AND ns = ? AND name = ?'),
      hist: prep('INSERT INTO history (rv, gr, ns, name, type, data, ts) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      setMeta: prep('UPDATE meta SET v = ? WHERE k = ?'),
      listAll: prep('SELECT ns, name, data FROM objects WHERE gr = ? AND (ns > ? OR (ns = ? AND name > ?)) ORDER BY ns, name'),
      listNs: prep('SELECT ns, name, data FROM objects WHERE gr = ? AND ns = ? AND name > ? ORDER BY name'),
      since: prep('SELECT rv, gr, ns, name, type, data FROM history WHERE gr = ? AND rv > ? ORDER BY rv'),
      compact: prep('DELETE FROM history WHERE rv <= ?'),
      anyNs: prep('SELECT 1 FROM objects WHERE gr = ? AND ns = ? LIMIT 1'),
    };
    const meta = Object.fromEntries((prep('SELECT k, v FROM meta').all() as { k: string; v: number }[]).map((r) => [r.k, r.v]));
    this.rv = meta.rv;
    this.compacted = meta.compacted;
  }

  get currentRv(): number {
    return this.rv;
  }
  get compactedRv(): number {
    return this.compacted;
  }

  get(gr: string, ns: string, name: string): Obj | undefined {
    const row = this.st.get.get(gr, ns, name) as { data: string } | undefined;
    return row ? JSON.parse(row.data) : undefined;
  }

  /** Rows after (ns, name) in key order; ns === null lists every namespace. */
  *iterate(gr: string, ns: string | null, after: [string, string] = ['', '']): Generator<Obj> {
    const it = ns === null
      ? this.st.listAll.iterate(gr, after[0], after[0], after[1])
      : this.st.listNs.iterate(gr, ns, after[1]);
    for (const row of it as Iterable<{ data: string }>) yield JSON.parse(row.data);
  }

  hasAny(gr: string, ns: string): boolean {
    return this.st.anyNs.get(gr, ns) !== undefined;
  }

  /** Writes (or deletes) one object in its own transaction, stamping the next resourceVersion. */
  write(type: EventType, gr: string, ns: string, name: string, object: Obj, prev?: Obj): Obj {
    const rv = this.rv + 1;
    object.metadata = { ...object.metadata, resourceVersion: String(rv) };
    const data = JSON.stringify(object);
    const tx = this.db.transaction(() => {
      if (type === 'DELETED') this.st.del.run(gr, ns, name);
      else this.st.upsert.run(gr, ns, name, rv, data);
      this.st.hist.run(rv, gr, ns, name, type, data, Date.now());
      this.st.setMeta.run(rv, 'rv');
    });
    tx();
    this.rv = rv;
    this.maybeCompact();
    const ev: StoreEvent = { type, gr, ns, name, rv, object, prev };
    for (const w of this.watchers) {
      if (w.gr === gr && (w.ns === '' || w.ns === ns)) {
        try {
          w.send(ev);
        } catch {
          this.watchers.delete(w);
        }
      }
    }
    return object;
  }

  private maybeCompact(): void {
    const slack = Math.max(1, Math.floor(this.window / 10));
    if (this.rv - this.compacted <= this.window + slack) return;
    const upTo = this.rv - this.window;
    this.db.transaction(() => {
      this.st.compact.run(upTo);
      this.st.setMeta.run(upTo, 'compacted');
    })();
    this.compacted = upTo;
  }

  /** History events for `gr` after `rv`, or 'expired' when that part of history is gone. */
  since(gr: string, rv: number): StoreEvent[] | 'expired' {
    if (rv < this.compacted) return 'expired';
    return (this.st.since.all(gr, rv) as { rv: number; gr: string; ns: string; name: string; type: EventType; data: string }[]).map((r) => ({
      type: r.type, gr: r.gr, ns: r.ns, name: r.name, rv: r.rv, object: JSON.parse(r.data),
    }));
  }

  addWatcher(w: Watcher): () => void {
    this.watchers.add(w);
    return () => {
      this.watchers.delete(w);
    };
  }

  closeWatchers(gr: string): void {
    for (const w of [...this.watchers]) if (w.gr === gr) w.close?.();
  }

  close(): void {
    this.watchers.clear();
    this.db.close();
  }
}
