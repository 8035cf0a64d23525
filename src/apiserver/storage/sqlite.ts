/**
 * Storage: SQLite, one row per object, one global resourceVersion sequence, and a history of the
 * last `window` changes so watches can resume from an older resourceVersion.
 *
 * The main thread decides every write (resourceVersion, already-exists) and sees it at once
 * (PendingWrites); the writer thread (writer.ts) commits, the writes of one event-loop turn
 * together (group-commit.ts). Watchers get a group's events, and callers run their `afterCommit`
 * callbacks, only once the writer says it is committed: a write is acknowledged only when durable.
 * With WAL + synchronous=NORMAL a committed write is in the WAL file and survives kill -9 of the
 * process; FULL also fsyncs the WAL per commit (an OS crash or power loss), and that fsync waits
 * on the writer thread, not on the event loop.
 */
import type { Database as DB, Statement } from 'better-sqlite3';
import { ObjectCache, type CachedRow } from './cache.js';
import { GroupCommit, type Group } from './group-commit.js';
import { MAX_OBJECT_BYTES } from '../limits.js';
import type { KubeObject, Namespace, StoredObject } from '../types.js';
import { hasOwnersOrFinalizers, ObjectKeys } from './keys.js';
import { PendingWrites, type StoredRow } from './pending.js';
import { READ_SQL } from './sql.js';
import type { EventType, HistoryRow, StoreEvent, Watcher } from './events.js';
import { openDatabase } from './open.js';
import { ROW_FIELDS } from './writer.js';

export type { StoredRow } from './pending.js';
export type { EventType, HistoryRow, StoreEvent, Watcher } from './events.js';
export { StorageOpenError } from './open.js';
/** A write whose object would be larger than the store takes (see MAX_OBJECT_BYTES). */
export class ObjectTooLargeError extends Error {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`the object is ${bytes} bytes as JSON, more than the ${limit} one object may take`);
  }
}

/** An ADDED write whose key is taken. */
export class AlreadyExistsError extends Error {
  constructor() {
    super('object already exists');
  }
}

/**
 * The JSON a written object was stored as, so responses and watch lines need not serialise it
 * again: on the object itself, under a symbol and not enumerable, so copies (spread, assign,
 * structuredClone, JSON) never carry it. A WeakMap from object to text did the same, but its
 * ephemeron entries made the young-generation GC keep each create's objects for longer: ~40% more
 * bytes promoted to the old generation per scavenge (bench loop of 10,000 in-process creates).
 */
const STORED_TEXT = Symbol('stored JSON text');
interface StoredText {
  metadata: unknown;
  data: string;
}

export class Store {
  private readonly db: DB;
  private readonly st: Record<keyof typeof READ_SQL, Statement>;
  private readonly commits: GroupCommit;
  private readonly pendingWrites = new PendingWrites();
  private readonly keys = new ObjectKeys();
  private readonly watchers = new Set<Watcher>();
  /** The newest resourceVersion handed out. */
  private rv: number;
  private closing: Promise<void> | null = null;
  /**
   * Read-through cache of namespaces: every namespaced create checks its namespace, and reading +
   * parsing that row each time was ~5 µs of every create. A write to a namespace drops its entry
   * (the next read sees the write, committed or not, as get does); a failed commit drops them all.
   */
  private readonly namespaces = new Map<string, Readonly<Namespace>>();
  /** The committed objects of the kinds that are listed, as UTF-8 text (lists read them from here). */
  private readonly cache: ObjectCache;

  constructor(file: string, window: number, synchronous: 'NORMAL' | 'FULL' = 'NORMAL') {
    this.db = openDatabase(file);
    const prepared = Object.entries(READ_SQL).map(([k, sql]) => [k, this.db.prepare(sql)]);
    this.st = Object.fromEntries(prepared) as Record<keyof typeof READ_SQL, Statement>;
    this.cache = new ObjectCache(this.st.scanKind);
    const meta = Object.fromEntries((this.st.meta.all() as { k: string; v: number }[]).map((r) => [r.k, r.v])) as { rv: number; compacted: number };
    this.rv = meta.rv;
    this.keys.load(this.db);
    this.commits = new GroupCommit(file, synchronous, window, meta, {
      committed: (g) => this.landed(g),
      failed: () => this.rollBack(),
    });
  }

  get currentRv(): number {
    return this.rv;
  }
  /** The newest resourceVersion whose write is committed (what watchers have been sent). */
  get committedRv(): number {
    return this.commits.committedRv;
  }
  get compactedRv(): number {
    return this.commits.compactedRv;
  }

  get(gr: string, ns: string, name: string): StoredObject | undefined {
    const p = this.pendingWrites.get(gr, ns, name);
    if (p) return p.data === null ? undefined : JSON.parse(p.data);
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

  /** Objects after (ns, name) in key order; ns === null lists every namespace. */
  *iterate(gr: string, ns: string | null, after: [string, string] = ['', '']): Generator<StoredObject> {
    for (const row of this.iterateRows(gr, ns, after)) yield JSON.parse(row.data);
  }

  /** Like iterate, as the stored JSON text: a list that needs no object can splice it unparsed. */
  iterateRows(gr: string, ns: string | null, after: [string, string] = ['', '']): IterableIterator<StoredRow> {
    const stored = (
      ns === null ? this.st.listAll.iterate(gr, after[0], after[0], after[1]) : this.st.listNs.iterate(gr, ns, after[1])
    ) as IterableIterator<StoredRow>;
    return this.pendingWrites.overlay(gr, ns, after, stored);
  }

  /**
   * Like iterateRows, from the list cache: rows the cache holds carry their text as UTF-8 bytes
   * (CachedRow.bytes), writes not yet committed are laid over them. The first call for a kind loads
   * it; from then on its objects stay in memory, kept in step by every commit.
   */
  listRows(gr: string, ns: string | null, after: [string, string] = ['', '']): IterableIterator<StoredRow | CachedRow> {
    return this.pendingWrites.overlay(gr, ns, after, this.cache.rows(gr, ns, after));
  }

  /** What the list cache holds: bytes of object text, and objects per kind. */
  get listCache(): { bytes: number; kinds: Record<string, number> } {
    return { bytes: this.cache.bytes, kinds: this.cache.sizes() };
  }

  /** The objects of `gr` (every namespace) with owner references or finalizers, written or committed, in key order. */
  *withOwnersOrFinalizers(gr: string): Generator<StoredObject> {
    for (const [ns, name] of this.keys.withOwnersOrFinalizers(gr)) {
      const o = this.get(gr, ns, name);
      if (o) yield o;
    }
  }

  hasAny(gr: string, ns: string): boolean {
    for (const _ of this.iterateRows(gr, ns)) return true;
    return false;
  }

  /**
   * Writes (or deletes) one object in the current group, stamping the next resourceVersion.
   * ADDED fails with AlreadyExistsError when the key is taken, and any write of an object larger
   * than MAX_OBJECT_BYTES with ObjectTooLargeError (nothing is written). The write is durable — and may be
   * acknowledged — once `afterCommit` calls back.
   */
  write(type: EventType, gr: string, ns: string, name: string, object: KubeObject, prev?: StoredObject): StoredObject {
    if (type === 'ADDED' && this.keys.resourceVersion(gr, ns, name) !== undefined) throw new AlreadyExistsError();
    const rv = this.rv + 1;
    // apiVersion and kind lead the stored text (as clients send them), so a list can check the
    // version of a row from its first bytes without parsing it (handlers/get.ts).
    const head = object.apiVersion === undefined ? {} : { apiVersion: object.apiVersion, kind: object.kind };
    const stamped = { ...head, ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    const data = JSON.stringify(stamped);
    // A character is at most 3 bytes of UTF-8: most objects are measured without counting.
    if (type !== 'DELETED' && data.length * 3 > MAX_OBJECT_BYTES) {
      const bytes = Buffer.byteLength(data);
      if (bytes > MAX_OBJECT_BYTES) throw new ObjectTooLargeError(bytes, MAX_OBJECT_BYTES);
    }
    const g = this.commits.begin(this.rv);
    if (gr === '/namespaces') this.namespaces.delete(name);
    this.pendingWrites.set(gr, { ns, name, rv, data: type === 'DELETED' ? null : data });
    if (type === 'DELETED') this.keys.delete(gr, ns, name);
    else this.keys.set(gr, ns, name, rv, hasOwnersOrFinalizers(stamped.metadata));
    g.rows.push(type, gr, ns, name, rv, data);
    g.rv = this.rv = rv;
    const saved = Object.assign(object, stamped) as StoredObject;
    Object.defineProperty(saved, STORED_TEXT, { value: { metadata: saved.metadata, data }, configurable: true, writable: true });
    g.events.push({ type, gr, ns, name, rv, object: saved, prev });
    return saved;
  }

  /** The resourceVersion of the object's latest write (committed or not); undefined when there is none. */
  resourceVersion(gr: string, ns: string, name: string): number | undefined {
    return this.keys.resourceVersion(gr, ns, name);
  }

  /** The stored JSON of an object this store wrote, unless its metadata was replaced since. */
  textOf(object: object): string | undefined {
    const t = (object as { [STORED_TEXT]?: StoredText })[STORED_TEXT];
    return t && t.metadata === (object as { metadata?: unknown }).metadata ? t.data : undefined;
  }

  /** Whether writes are waiting for their commit. */
  get pending(): boolean {
    return this.commits.pending;
  }

  /** Runs `ok` once everything written so far is committed (now, if nothing is pending), or `fail` if that commit fails. */
  afterCommit(ok: () => void, fail: (e: Error) => void): void {
    this.commits.afterCommit(ok, fail);
  }

  /** Resolves once everything written so far is committed. */
  settled(): Promise<void> {
    return this.commits.settled();
  }

  /** A group is committed: its rows replace the pending writes and reach the list cache, then watchers get its events. */
  private landed(g: Group): void {
    const r = g.rows;
    for (let i = 0; i < r.length; i += ROW_FIELDS) {
      const gr = r[i + 1] as string;
      const ns = r[i + 2] as string;
      const name = r[i + 3] as string;
      const rv = r[i + 4] as number;
      this.pendingWrites.committed(gr, ns, name, rv);
      if (this.cache.has(gr)) this.cache.committed(gr, ns, name, rv, r[i] === 'DELETED' ? null : (r[i + 5] as string));
    }
    for (const ev of g.events) this.notify(ev);
  }

  /** A commit failed: the view goes back to what is committed. */
  private rollBack(): void {
    this.rv = this.commits.committedRv;
    this.pendingWrites.clear();
    this.keys.load(this.db);
    this.namespaces.clear();
    // What failed may be a row another hand put in the file: the next list of each kind reads it again.
    this.cache.clear();
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

  /** Committed history events for `gr` after `rv`, or 'expired' when that part of history is gone. */
  since(gr: string, rv: number): StoreEvent[] | 'expired' {
    if (rv < this.commits.compactedRv) return 'expired';
    // Only what watchers have been sent: later commits reach them as live events.
    return (this.st.since.all(gr, rv, this.commits.committedRv) as { rv: number; gr: string; ns: string; name: string; type: EventType; data: string }[]).map(
      (r) => ({
        type: r.type,
        gr: r.gr,
        ns: r.ns,
        name: r.name,
        rv: r.rv,
        object: JSON.parse(r.data),
      }),
    );
  }

  /**
   * Up to `limit` committed history rows of `gr` in (after, upTo], as stored text, oldest first;
   * 'expired' when that part of history is gone. A watch replays long histories page by page.
   */
  historyPage(gr: string, after: number, upTo: number, limit: number): HistoryRow[] | 'expired' {
    if (after < this.commits.compactedRv) return 'expired';
    return this.st.historyPage.all(gr, after, Math.min(upTo, this.commits.committedRv), limit) as HistoryRow[];
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

  /** Commits what was written, stops the writer and closes the database. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.commits.close();
      this.watchers.clear();
      this.db.close();
    })();
    return this.closing;
  }
}
