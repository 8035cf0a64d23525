import Database from 'better-sqlite3';
import type { Database as DB, Statement } from 'better-sqlite3';
import type { KubeObject, Namespace, StoredObject } from '../types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One object as stored: its key and its JSON text. */
export interface StoredRow {
  ns: string;
  name: string;
  data: string;
}

export interface StoreEvent {
  type: EventType;
  gr: string;
  ns: string;
  name: string;
  rv: number;
  object: StoredObject;
  /** The object before this change (live events only; history replay has no previous state). */
  prev?: StoredObject;
  /** Serialised watch lines, shared by every watcher that sends the same bytes. */
  wire?: Map<string, string>;
}

/** An ADDED write whose key is taken. */
export class AlreadyExistsError extends Error {
  constructor() {
    super('object already exists');
  }
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
 *
 * Group commit: the first write of an event-loop turn opens a transaction and every write until
 * the next `setImmediate` joins it (each in its own savepoint, so a failing write undoes only
 * itself and later writes see earlier ones). One COMMIT then makes the whole group durable;
 * watchers get the group's events after it, in resourceVersion order, and callers acknowledge
 * a write only from `afterCommit` — so every acknowledged write is committed. With WAL +
 * synchronous=NORMAL a committed write is in the WAL file, which survives kill -9 of the
 * process; FULL also fsyncs the WAL per commit (per group), surviving an OS crash/power loss.
 */
export class Store {
  readonly db: DB;
  private rv: number;
  private compacted: number;
  private watchers = new Set<Watcher>();
  private st: Record<string, Statement>;
  /** Last resourceVersion known to be committed. */
  private committed: number;
  /** Open group: events to emit and callbacks to run once it commits. */
  private group: { events: StoreEvent[]; done: (() => void)[]; failed: ((e: Error) => void)[] } | null = null;
  /** The JSON each written object was stored as, so responses and watch lines need not serialise it again. */
  private texts = new WeakMap<object, { metadata: unknown; data: string }>();
  private writeOne: (type: EventType, gr: string, ns: string, name: string, rv: number, data: string) => void;
  /**
   * Read-through cache of namespaces: every namespaced create and update checks its namespace, and
   * reading + parsing that row each time was ~5 µs of every create. A write to a namespace drops
   * its entry (the next read sees the write, committed or not, as store.get does); a failed
   * commit drops them all.
   */
  private namespaces = new Map<string, Readonly<Namespace>>();

  constructor(file: string, private readonly window: number, synchronous: 'NORMAL' | 'FULL' = 'NORMAL') {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    // Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: each checkpoint fsyncs and stalls
    // the writer (this thread) for milliseconds; fewer, larger ones cost ~5% less per create. The
    // WAL is cut back to 64 MB after a checkpoint, so a burst does not leave a huge file behind.
    this.db.pragma('wal_autocheckpoint = 10000');
    this.db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
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
      insert: prep('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO NOTHING'),
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
    this.committed = meta.rv;
    this.compacted = meta.compacted;
    // Nested in the group's transaction, better-sqlite3 runs this as a savepoint.
    this.writeOne = this.db.transaction((type: EventType, gr: string, ns: string, name: string, rv: number, data: string) => {
      if (type === 'DELETED') this.st.del.run(gr, ns, name);
      else if (type === 'ADDED') {
        if (this.st.insert.run(gr, ns, name, rv, data).changes === 0) throw new AlreadyExistsError();
      } else this.st.upsert.run(gr, ns, name, rv, data);
      this.st.hist.run(rv, gr, ns, name, type, data, Date.now());
    });
  }

  get currentRv(): number {
    return this.rv;
  }
  /** The newest resourceVersion whose write is committed (what watchers have been sent). */
  get committedRv(): number {
    return this.committed;
  }
  get compactedRv(): number {
    return this.compacted;
  }

  get(gr: string, ns: string, name: string): StoredObject | undefined {
    const row = this.st.get.get(gr, ns, name) as { data: string } | undefined;
    return row ? JSON.parse(row.data) : undefined;
  }

  /** The namespace object `name`, shared: callers must not modify it. */
  namespace(name: string): Readonly<Namespace> | undefined {
    let ns = this.namespaces.get(name);
    if (ns === undefined) {
      ns = this.get('/namespaces', '', name);
      if (ns !== undefined) this.namespaces.set(name, ns);
    }
    return ns;
  }

  /** Rows after (ns, name) in key order; ns === null lists every namespace. */
  *iterate(gr: string, ns: string | null, after: [string, string] = ['', '']): Generator<StoredObject> {
    for (const row of this.iterateRows(gr, ns, after)) yield JSON.parse(row.data);
  }

  /** Like iterate, as the stored JSON text: a list that needs no object can splice it unparsed. */
  iterateRows(gr: string, ns: string | null, after: [string, string] = ['', '']): IterableIterator<StoredRow> {
    return (ns === null
      ? this.st.listAll.iterate(gr, after[0], after[0], after[1])
      : this.st.listNs.iterate(gr, ns, after[1])) as IterableIterator<StoredRow>;
  }

  hasAny(gr: string, ns: string): boolean {
    return this.st.anyNs.get(gr, ns) !== undefined;
  }

  /**
   * Writes (or deletes) one object in the current group, stamping the next resourceVersion.
   * ADDED fails with AlreadyExistsError when the key is taken (no separate read needed).
   * The write is durable — and may be acknowledged — once `afterCommit` calls back.
   */
  write(type: EventType, gr: string, ns: string, name: string, object: KubeObject, prev?: StoredObject): StoredObject {
    const rv = this.rv + 1;
    // apiVersion and kind lead the stored text (as clients send them), so a list can check the
    // version of a row from its first bytes without parsing it (Server.doList).
    const head = object.apiVersion === undefined ? {} : { apiVersion: object.apiVersion, kind: object.kind };
    const stamped = { ...head, ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    const data = JSON.stringify(stamped);
    this.begin();
    if (gr === '/namespaces') this.namespaces.delete(name);
    this.writeOne(type, gr, ns, name, rv, data);
    this.rv = rv;
    const saved = Object.assign(object, stamped) as StoredObject;
    this.texts.set(saved, { metadata: saved.metadata, data });
    this.group!.events.push({ type, gr, ns, name, rv, object: saved, prev });
    return saved;
  }

  /** The stored JSON of an object this store wrote, unless its metadata was replaced since. */
  textOf(object: object): string | undefined {
    const t = this.texts.get(object);
    return t && t.metadata === (object as { metadata?: unknown }).metadata ? t.data : undefined;
  }

  /** Whether writes are waiting for their group to commit. */
  get pending(): boolean {
    return this.group !== null;
  }

  /** Runs `ok` once everything written so far is committed (now, if nothing is pending), or `fail` if that commit fails. */
  afterCommit(ok: () => void, fail: (e: Error) => void): void {
    if (!this.group) return ok();
    this.group.done.push(ok);
    this.group.failed.push(fail);
  }

  /** Resolves once everything written so far is committed. */
  settled(): Promise<void> {
    return new Promise((ok, fail) => this.afterCommit(ok, fail));
  }

  private begin(): void {
    if (this.group) return;
    this.db.exec('BEGIN IMMEDIATE');
    this.group = { events: [], done: [], failed: [] };
    // setImmediate runs after every I/O callback of this loop turn: all requests that arrived
    // together join one commit, and a lone write waits for no timer.
    setImmediate(() => this.commit());
  }

  /** Commits the open group (also called by close()). */
  commit(): void {
    const g = this.group;
    if (!g) return;
    this.group = null;
    const compacted = this.compacted;
    try {
      if (this.rv !== this.committed) this.st.setMeta.run(this.rv, 'rv');
      this.maybeCompact();
      this.db.exec('COMMIT');
    } catch (e) {
      try {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
      } catch {
        // the rollback failed too; the connection reports the first error
      }
      this.rv = this.committed;
      this.compacted = compacted;
      this.namespaces.clear();
      for (const f of g.failed) f(e as Error);
      return;
    }
    this.committed = this.rv;
    for (const ev of g.events) this.notify(ev);
    for (const f of g.done) f();
  }

  private notify(ev: StoreEvent): void {
    for (const w of this.watchers) {
      if (w.gr === ev.gr && (w.ns === '' || w.ns === ev.ns)) {
        try {
          w.send(ev);
        } catch {
          this.watchers.delete(w);
        }
      }
    }
  }

  private maybeCompact(): void {
    const slack = Math.max(1, Math.floor(this.window / 10));
    if (this.rv - this.compacted <= this.window + slack) return;
    const upTo = this.rv - this.window;
    // Runs inside the group's transaction, so it commits (or rolls back) with it.
    this.st.compact.run(upTo);
    this.st.setMeta.run(upTo, 'compacted');
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

  /** Ends the watches of `gr` once the events written so far have reached them. */
  closeWatchers(gr: string): void {
    const close = () => {
      for (const w of [...this.watchers]) if (w.gr === gr) w.close?.();
    };
    this.afterCommit(close, close);
  }

  close(): void {
    this.commit();
    this.watchers.clear();
    this.db.close();
  }
}
