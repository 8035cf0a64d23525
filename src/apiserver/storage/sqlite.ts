/**
 * Storage: SQLite, one row per object, one global resourceVersion sequence, and a history of the
 * last `window` changes so watches can resume from an older resourceVersion.
 *
 * The main thread decides every write (resourceVersion, already-exists) and sees it at once
 * (PendingWrites); the writer thread (writer.ts) commits. Group commit: the writes of one
 * event-loop turn form a group, handed over at the next setImmediate; while the writer commits,
 * the groups handed over meanwhile wait and go to it together, as one transaction (one message
 * and one wake-up of the thread per commit, not per group). Watchers get a group's events, and callers run
 * their `afterCommit` callbacks, only once the writer says it is committed: a write is
 * acknowledged only when durable. With WAL + synchronous=NORMAL a committed write is in the WAL
 * file and survives kill -9 of the process; FULL also fsyncs the WAL per commit (an OS crash or
 * power loss), and that fsync waits on the writer thread, not on the event loop.
 */
import type { Database as DB, Statement } from 'better-sqlite3';
import { ObjectCache, type CachedRow } from './cache.js';
import { MAX_OBJECT_BYTES } from '../limits.js';
import type { KubeObject, Namespace, StoredObject } from '../types.js';
import { hasOwnersOrFinalizers, ObjectKeys } from './keys.js';
import { PendingWrites, type StoredRow } from './pending.js';
import { READ_SQL } from './sql.js';
import type { EventType, HistoryRow, StoreEvent, Watcher } from './events.js';
import { openDatabase } from './open.js';
import { ROW_FIELDS, WriterThread, type FromWriter } from './writer.js';

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

/** The writes of one event-loop turn, committed together. */
interface Group {
  seq: number;
  epoch: number;
  /** Flattened rows for the writer (see ROW_FIELDS). */
  rows: (string | number)[];
  rv: number;
  compactUpTo?: number;
  events: StoreEvent[];
  done: (() => void)[];
  failed: ((e: Error) => void)[];
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
  private readonly writer: WriterThread;
  private readonly pendingWrites = new PendingWrites();
  private readonly keys = new ObjectKeys();
  private readonly watchers = new Set<Watcher>();
  /** The newest resourceVersion handed out. */
  private rv: number;
  /** The newest resourceVersion known to be committed (what watchers have been sent). */
  private committed: number;
  /** History up to here is gone, or going with a commit in flight. */
  private compacted: number;
  /** History up to here is gone for good. */
  private committedCompacted: number;
  /** The group this turn's writes join. */
  private open: Group | null = null;
  /** Groups handed over and not yet committed, oldest first: those sent to the writer, then those waiting for it. */
  private inFlight: Group[] = [];
  private seq = 0;
  /** The newest group sent to the writer. */
  private sentSeq = 0;
  /** The newest group the writer has committed. */
  private committedSeq = 0;
  /** Bumped when a commit fails: the writer drops everything sent under an older epoch. */
  private epoch = 0;
  private writerDead: Error | null = null;
  private closing: Promise<void> | null = null;
  /**
   * Read-through cache of namespaces: every namespaced create checks its namespace, and reading +
   * parsing that row each time was ~5 µs of every create. A write to a namespace drops its entry
   * (the next read sees the write, committed or not, as get does); a failed commit drops them all.
   */
  private readonly namespaces = new Map<string, Readonly<Namespace>>();
  /** The committed objects of the kinds that are listed, as UTF-8 text (lists read them from here). */
  private readonly cache: ObjectCache;

  constructor(
    file: string,
    private readonly window: number,
    synchronous: 'NORMAL' | 'FULL' = 'NORMAL',
  ) {
    this.db = openDatabase(file);
    const prepared = Object.entries(READ_SQL).map(([k, sql]) => [k, this.db.prepare(sql)]);
    this.st = Object.fromEntries(prepared) as Record<keyof typeof READ_SQL, Statement>;
    this.cache = new ObjectCache(this.st.scanKind);
    const meta = Object.fromEntries((this.st.meta.all() as { k: string; v: number }[]).map((r) => [r.k, r.v]));
    this.rv = this.committed = meta.rv;
    this.compacted = this.committedCompacted = meta.compacted;
    this.keys.load(this.db);
    this.writer = new WriterThread(
      file,
      synchronous,
      (m) => this.onWriterReply(m),
      (e) => {
        this.writerDead = e;
        this.fail(e);
      },
    );
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
    const g = this.begin();
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
    return this.open !== null || this.inFlight.length > 0;
  }

  /** Runs `ok` once everything written so far is committed (now, if nothing is pending), or `fail` if that commit fails. */
  afterCommit(ok: () => void, fail: (e: Error) => void): void {
    const last = this.open ?? this.inFlight[this.inFlight.length - 1];
    if (!last) return ok();
    last.done.push(ok);
    last.failed.push(fail);
  }

  /** Resolves once everything written so far is committed. */
  settled(): Promise<void> {
    return new Promise((ok, fail) => this.afterCommit(ok, fail));
  }

  private begin(): Group {
    if (this.open) return this.open;
    this.open = { seq: ++this.seq, epoch: this.epoch, rows: [], rv: this.rv, events: [], done: [], failed: [] };
    // setImmediate runs after every I/O callback of this loop turn: all requests that arrived
    // together join one group, and a lone write waits for no timer.
    setImmediate(() => this.flush());
    return this.open;
  }

  /** Hands the open group over; it goes to the writer now if the writer is idle. */
  private flush(): void {
    const g = this.open;
    if (!g) return;
    this.open = null;
    this.inFlight.push(g);
    if (this.writerDead) return this.fail(this.writerDead);
    const slack = Math.max(1, Math.floor(this.window / 10));
    if (g.rv - this.compacted > this.window + slack) this.compacted = g.compactUpTo = g.rv - this.window;
    if (this.sentSeq === this.committedSeq) this.send();
  }

  /** Sends every group waiting for the writer, as one commit. */
  private send(): void {
    const waiting = this.inFlight.filter((g) => g.seq > this.sentSeq);
    if (!waiting.length) return;
    const last = waiting[waiting.length - 1];
    const compactUpTo = waiting.reduce<number | undefined>((upTo, g) => g.compactUpTo ?? upTo, undefined);
    const rows = waiting.length === 1 ? last.rows : waiting.flatMap((g) => g.rows);
    this.sentSeq = last.seq;
    this.writer.send({ op: 'commit', epoch: last.epoch, seq: last.seq, rows, rv: last.rv, compactUpTo });
  }

  private onWriterReply(m: FromWriter): void {
    if (m.op === 'failed') {
      // Replies for groups an earlier failure already failed are stale.
      if (this.inFlight.some((g) => g.seq <= m.seq)) this.fail(new Error(m.error));
      return;
    }
    if (m.op !== 'committed') return;
    this.committedSeq = m.seq;
    while (this.inFlight.length && this.inFlight[0].seq <= m.seq) {
      const g = this.inFlight.shift()!;
      this.committed = g.rv;
      if (g.compactUpTo !== undefined) this.committedCompacted = g.compactUpTo;
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
      for (const f of g.done) f();
    }
    this.send();
  }

  /**
   * A commit failed: every write not yet committed fails with it (later ones were decided on top
   * of it), and the view goes back to what is committed.
   */
  private fail(e: Error): void {
    const groups = this.open ? [...this.inFlight, this.open] : this.inFlight;
    this.inFlight = [];
    this.open = null;
    // Whatever the writer still holds fails there too (older epoch); nothing is waiting for it.
    this.sentSeq = this.committedSeq = this.seq;
    this.epoch++;
    this.rv = this.committed;
    this.compacted = this.committedCompacted;
    this.pendingWrites.clear();
    this.keys.load(this.db);
    this.namespaces.clear();
    // What failed may be a row another hand put in the file: the next list of each kind reads it again.
    this.cache.clear();
    for (const g of groups) for (const f of g.failed) f(e);
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
    if (rv < this.compacted) return 'expired';
    // Only what watchers have been sent: later commits reach them as live events.
    return (this.st.since.all(gr, rv, this.committed) as { rv: number; gr: string; ns: string; name: string; type: EventType; data: string }[]).map((r) => ({
      type: r.type,
      gr: r.gr,
      ns: r.ns,
      name: r.name,
      rv: r.rv,
      object: JSON.parse(r.data),
    }));
  }

  /**
   * Up to `limit` committed history rows of `gr` in (after, upTo], as stored text, oldest first;
   * 'expired' when that part of history is gone. A watch replays long histories page by page.
   */
  historyPage(gr: string, after: number, upTo: number, limit: number): HistoryRow[] | 'expired' {
    if (after < this.compacted) return 'expired';
    return this.st.historyPage.all(gr, after, Math.min(upTo, this.committed), limit) as HistoryRow[];
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
      this.flush();
      await this.settled().catch(() => undefined);
      await this.writer.close();
      this.watchers.clear();
      this.db.close();
    })();
    return this.closing;
  }
}
