/**
 * watch: replay (the current state, or history from a resourceVersion), then live events,
 * bookmarks and a time limit.
 *
 * What a watch sends goes out at the pace its client takes it: the replay is read a page at a
 * time, the next page once the client has taken the last; live events that arrive meanwhile wait
 * (in order) until the replay is out. What waits for a client counts against its watch's buffer
 * and the server's total (ServerLimits); a watch past either, or whose client has taken nothing
 * for watchStallSeconds, is ended — the client re-lists and watches again, as after any watch end.
 * One live event's text is shared by every watch that sends it (one JSON.stringify for 100 watchers):
 * while it waits in watches' queues the server's total counts it once, however many hold it; the
 * copy a connection makes of a line it could not send yet counts for that watch alone.
 */
import type { Gauge } from 'prom-client';
import { gone } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import { toTable } from '../registry/table.js';
import { parseBool } from '../request/info.js';
import { resourceVersionParam, wholeNumberParam } from '../request/params.js';
import { fieldMatches, matches } from '../request/selectors.js';
import type { StoreEvent } from '../storage/sqlite.js';
import type { StoredObject } from '../types.js';
import { selectors, toWire, wantsTable, type RequestScope } from './scope.js';

type WatchLimits = Pick<ServerLimits, 'watchBufferBytes' | 'watchBuffersTotalBytes' | 'watchStallSeconds'>;

/** A running watch as the server's bookkeeping sees it. */
interface OpenWatch {
  /** Bytes waiting for the client. */
  readonly backlog: number;
  /** When the client last took what was written (ms), or 0 while nothing waits. */
  readonly stalledSince: number;
  /** Ends the watch normally (server closing, time limit). */
  stop(): void;
  /** Ends the watch of a client that does not keep up: its connection or stream is dropped with what waits. */
  drop(why: string): void;
}

/** The server's open watches, how they behave, and the buffers they hold. */
export class Watches {
  private readonly open = new Set<OpenWatch>();
  private closed = false;
  private buffered = 0;
  /** Live-event lines waiting in some watch, and how many watches hold each: counted once in `buffered`. */
  private readonly sharedLines = new Map<string, number>();
  private readonly stallCheck: NodeJS.Timeout;
  /** Watches ended for not keeping up, and why (the last few; for logs and tests). */
  readonly dropped: { why: string; at: number }[] = [];
  droppedTotal = 0;

  constructor(
    readonly bookmarkIntervalMs: number,
    /** Upper bound for a watch without timeoutSeconds; each gets a random length in [max/2, max), like kube's min-request-timeout. */
    readonly maxWatchSeconds: number,
    private readonly gauge: Gauge,
    readonly limits: WatchLimits,
    /** Told of each watch ended for not keeping up (the server logs it: the client will re-list). */
    private readonly onDrop: (why: string) => void = () => {},
  ) {
    this.stallCheck = setInterval(() => this.dropStalled(), Math.min(5000, limits.watchStallSeconds * 250));
    this.stallCheck.unref();
  }

  add(w: OpenWatch): void {
    this.gauge.inc();
    this.open.add(w);
    if (this.closed) w.stop();
  }

  remove(w: OpenWatch): void {
    if (this.open.delete(w)) this.gauge.dec();
  }

  /** Bytes the watches hold for their clients, shared lines once (the server's total). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * A watch's backlog changed: `ownDelta` bytes of lines only it holds, `grewBacklog` when it holds
   * more than before. Past its own limit or the server's total, watches are dropped.
   */
  grew(w: OpenWatch, ownDelta: number, grewBacklog = ownDelta > 0): void {
    this.buffered += ownDelta;
    if (!grewBacklog) return;
    if (w.backlog > this.limits.watchBufferBytes) {
      this.drop(w, `its client left ${w.backlog} bytes untaken, more than the ${this.limits.watchBufferBytes} one watch may hold`);
    }
    this.enforceTotal();
  }

  /** One more watch holds the shared line `text`. */
  share(text: string): void {
    const n = this.sharedLines.get(text) ?? 0;
    this.sharedLines.set(text, n + 1);
    if (n === 0) this.buffered += text.length;
  }

  /** A watch no longer holds the shared line `text` (sent, or the watch ended). */
  unshare(text: string): void {
    const n = this.sharedLines.get(text) ?? 0;
    if (n > 1) return void this.sharedLines.set(text, n - 1);
    this.sharedLines.delete(text);
    if (n === 1) this.buffered -= text.length;
  }

  private enforceTotal(): void {
    if (this.buffered <= this.limits.watchBuffersTotalBytes) return;
    // The most backed-up watches go first: the clients that read least free the most.
    for (const v of [...this.open].sort((a, b) => b.backlog - a.backlog)) {
      if (this.buffered <= this.limits.watchBuffersTotalBytes || v.backlog === 0) break;
      this.drop(v, `watches hold ${this.buffered} bytes their clients have not taken, more than the server's ${this.limits.watchBuffersTotalBytes}`);
    }
  }

  private drop(w: OpenWatch, why: string): void {
    this.droppedTotal++;
    this.dropped.push({ why, at: Date.now() });
    if (this.dropped.length > 20) this.dropped.shift();
    this.onDrop(why);
    w.drop(why);
  }

  private dropStalled(): void {
    const before = Date.now() - this.limits.watchStallSeconds * 1000;
    for (const w of [...this.open]) {
      if (w.stalledSince && w.stalledSince < before) this.drop(w, `its client took nothing for ${this.limits.watchStallSeconds}s`);
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.stallCheck);
    for (const w of [...this.open]) w.stop();
  }
}

type EventKind = StoreEvent['type'] | 'ERROR' | 'BOOKMARK';

/** A point in history the replay's lines must wait for (writes not yet committed when they were read). */
interface Barrier {
  released: boolean;
}

/** Rows of the current state (or history entries) read per page of a replay, and the bytes that end a page early. */
const PAGE_ROWS = 200;
const PAGE_BYTES = 256 * 1024;

/** Key order as storage iterates: namespace, then name. */
const after = (ns: string, name: string, key: [string, string]) => (ns !== key[0] ? ns > key[0] : name > key[1]);

export function watch(s: RequestScope): void {
  const { storage, watches } = s.services;
  const { labels, fields: selected } = selectors(s);
  const fields = [...selected];
  if (s.name) fields.push({ path: 'metadata.name', neg: false, value: s.name });
  const start = resourceVersionParam(s.query) ?? null;
  const bookmarks = parseBool(s.query.get('allowWatchBookmarks'));
  const sendInitial = parseBool(s.query.get('sendInitialEvents'));
  const timeout = wholeNumberParam(s.query, 'timeoutSeconds') ?? 0;
  const table = wantsTable(s);
  const includeObject = s.query.get('includeObject') ?? 'Metadata';
  const nsFilter = s.kind.namespaced ? s.namespace : '';
  // Stored rows in the requested version can be sent as stored, without parsing them.
  const rowHead = `{"apiVersion":${JSON.stringify(s.apiVersion)},`;
  const spliceable = !labels.length && !fields.length && !s.kind.fromStorage && !table;
  const raw = s.res;
  raw.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
  // Clients (fetch-based ones like client-node) resolve the watch call on the response headers;
  // HTTP/1.1 would otherwise hold them back until the first event.
  raw.flushHeaders?.();

  // ---- what waits for the client --------------------------------------------------------------
  const queue: (string | Barrier)[] = [];
  let queuedBytes = 0;
  /** Bytes handed to the connection since it last said it had room. */
  let unsent = 0;
  let blocked = false;
  let stalledSince = 0;
  let done = false;
  /** Live events that arrived during the replay, in order: sent once it is out. */
  const held: string[] = [];
  let heldBytes = 0;
  const backlog = () => queuedBytes + heldBytes + unsent;
  /** The shared (live-event) lines among those waiting, and their bytes: the server's total counts them once for all watches. */
  const sharedWaiting = new Set<string>();
  let sharedBytes = 0;
  const own = () => backlog() - sharedBytes;
  const holdShared = (l: string) => {
    sharedWaiting.add(l);
    sharedBytes += l.length;
    watches.share(l);
  };
  const releaseShared = (l: string) => {
    if (!sharedWaiting.delete(l)) return;
    sharedBytes -= l.length;
    watches.unshare(l);
  };
  const handle: OpenWatch = {
    get backlog() {
      return backlog();
    },
    get stalledSince() {
      return stalledSince;
    },
    stop: () => stop(),
    drop: () => {
      stop();
      // What waits in the connection's buffers goes with it; the client sees the watch end.
      s.req.destroy();
    },
  };
  /** Tells the server's bookkeeping how this watch's bytes changed since `before` (own bytes then) and `backlogBefore`. */
  const account = (before: number, backlogBefore: number) => {
    const delta = own() - before;
    // A shared line the connection took (and copied) grows what the server holds, not the backlog.
    const grewBacklog = backlog() > backlogBefore || delta > 0;
    if (delta !== 0 || grewBacklog) watches.grew(handle, delta, grewBacklog);
  };
  const flush = () => {
    const before = own();
    const backlogBefore = backlog();
    try {
      while (!blocked && !done && queue.length) {
        const head = queue[0];
        if (typeof head !== 'string') {
          if (!head.released) break;
          queue.shift();
          continue;
        }
        queue.shift();
        queuedBytes -= head.length;
        // Handed to the connection, a line is no longer shared: the connection encodes it (and TLS
        // encrypts it) into buffers of its own. Measured: one 1.4 MiB line written to 200 paused
        // TLS connections grew RSS by 307 MiB. So what it has not sent yet counts as this watch's own.
        const full = !raw.write(head);
        releaseShared(head);
        if (full) {
          blocked = true;
          unsent = head.length;
          stalledSince ||= Date.now();
        }
      }
    } catch {
      // A write to a stream the client already closed ends this watch.
      stop();
      return;
    }
    account(before, backlogBefore);
    if (!blocked && !done && !queue.length) idle();
  };
  const send = (line: string, shared = false) => {
    if (done) return;
    const before = own();
    const backlogBefore = backlog();
    queue.push(line);
    queuedBytes += line.length;
    if (shared) holdShared(line);
    account(before, backlogBefore);
    if (queue.length === 1 && !blocked) flush();
  };
  raw.on('drain', () => {
    const before = own();
    const backlogBefore = backlog();
    blocked = false;
    unsent = 0;
    stalledSince = 0;
    account(before, backlogBefore);
    flush();
  });
  raw.on('error', () => stop());

  // ---- lines --------------------------------------------------------------------------------
  let first = true;
  const line = (type: EventKind, o: object, ev?: StoreEvent): string => {
    if (ev && !table) {
      // 100 watchers of one resource need one JSON.stringify per event, not 100.
      ev.wire ??= new Map();
      const k = `${type}|${s.apiVersion}`;
      let text = ev.wire.get(k);
      if (text === undefined) {
        const stored = storage.textOf(o);
        text = (stored !== undefined ? `{"type":${JSON.stringify(type)},"object":${stored}}` : JSON.stringify({ type, object: o })) + '\n';
        ev.wire.set(k, text);
      }
      return text;
    }
    let obj: object = o;
    if (table && type !== 'ERROR' && type !== 'BOOKMARK') {
      const so = o as StoredObject;
      obj = toTable(s.kind, s.version.name, [so], includeObject, { resourceVersion: so.metadata.resourceVersion }, first);
      first = false;
    }
    return JSON.stringify({ type, object: obj }) + '\n';
  };
  const visible = (o: StoredObject) => {
    if (s.kind.namespaced && nsFilter && o.metadata.namespace !== nsFilter) return false;
    if (!matches(labels, o.metadata.labels)) return false;
    return !fields.length || fieldMatches(fields, toWire(s, o));
  };
  /** A stored row as a watch line, or null when the watch does not show it. */
  const rowLine = (type: EventKind, data: string): string | null => {
    if (spliceable && data.startsWith(rowHead)) return `{"type":"${type}","object":${data}}\n`;
    const o = JSON.parse(data) as StoredObject;
    return visible(o) ? line(type, toWire(s, o)) : null;
  };
  const bookmark = (rv: number, annotations?: Record<string, string>) => {
    const o = { kind: s.kind.kind, apiVersion: s.apiVersion, metadata: { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) } };
    send(JSON.stringify({ type: 'BOOKMARK', object: o }) + '\n');
  };
  /** Lines read now that show writes still being committed wait for that commit (a read never shows a write before it is). */
  const waitForCommit = () => {
    if (!storage.pending) return;
    const b: Barrier = { released: false };
    queue.push(b);
    storage.afterCommit(
      () => {
        b.released = true;
        flush();
      },
      () => stop(),
    );
  };

  // ---- replay, a page at a time -------------------------------------------------------------
  let replaying = true;
  /** Initial state: the pages read so far, each with the last key it covers (null: the rest) and the resourceVersion it was read at. */
  const pages: { upTo: [string, string] | null; rv: number }[] = [];
  let cursor: [string, string] = ['', ''];
  /** History: the newest resourceVersion sent, and the one the replay ends at. */
  let historyFrom = start ?? 0;
  let historyTo = 0;

  const endReplay = (endRv: number) => {
    replaying = false;
    lastPageRv = endRv;
    if (sendInitial && bookmarks) bookmark(endRv, { 'k8s.io/initial-events-end': 'true' });
    for (const l of held.splice(0)) {
      heldBytes -= l.length;
      queue.push(l);
      queuedBytes += l.length;
    }
    flush();
  };
  const readStatePage = () => {
    const rows: { ns: string; name: string; data: string }[] = [];
    let bytes = 0;
    const it = storage.iterateRows(s.kind.storageKey, s.kind.namespaced ? nsFilter || null : '', cursor);
    let exhausted = true;
    // Leaving the loop early ends the SQLite statement (for-of calls the iterator's return).
    for (const row of it) {
      rows.push(row);
      bytes += row.data.length;
      if (rows.length >= PAGE_ROWS || bytes >= PAGE_BYTES) {
        exhausted = false;
        break;
      }
    }
    const rv = storage.currentRv;
    const last = rows[rows.length - 1];
    if (last) cursor = [last.ns, last.name];
    pages.push({ upTo: exhausted ? null : cursor, rv });
    // The barrier goes before the lines it holds back.
    waitForCommit();
    for (const r of rows) {
      const l = rowLine('ADDED', r.data);
      if (l !== null) send(l);
    }
    if (exhausted) endReplay(rv);
  };
  const readHistoryPage = () => {
    const page = storage.historyPage(s.kind.storageKey, historyFrom, historyTo, PAGE_ROWS);
    if (page === 'expired') {
      // Compacted while the replay ran: the client must relist.
      return stop(line('ERROR', gone(`too old resource version: ${historyFrom} (${storage.compactedRv + 1})`).toStatus()));
    }
    for (const r of page) {
      historyFrom = r.rv;
      if (s.kind.namespaced && nsFilter && r.ns !== nsFilter) continue;
      const l = rowLine(r.type, r.data);
      if (l !== null) send(l);
    }
    if (page.length < PAGE_ROWS || historyFrom >= historyTo) endReplay(historyTo);
  };
  let readNext: () => void = readStatePage;
  let scheduled = false;
  /** The client has taken everything: read the next page of the replay (never from inside a write). */
  const idle = () => {
    if (!replaying || scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (!done && replaying && !blocked && !queue.length) readNext();
    });
  };

  // ---- live events --------------------------------------------------------------------------
  /** The newest resourceVersion the replay covers, once it is out. */
  let lastPageRv = Infinity;
  /** Whether a live event is already in what the replay read (or will read). */
  const inReplay = (ev: StoreEvent): boolean => {
    if (start !== null) return ev.rv <= historyTo;
    if (ev.rv > lastPageRv) return false;
    for (const p of pages) {
      if (p.upTo === null || !after(ev.ns, ev.name, p.upTo)) return ev.rv <= p.rv;
    }
    // Beyond what the replay has read so far: its next pages will show it.
    return replaying;
  };
  const onEvent = (ev: StoreEvent) => {
    if (done || inReplay(ev)) return;
    if (s.kind.namespaced && nsFilter && ev.ns !== nsFilter) return;
    const now = ev.type !== 'DELETED' && visible(ev.object);
    const was = ev.prev ? visible(ev.prev) : false;
    // A change that moves an object into or out of the selection is an ADDED or DELETED for this watch.
    let type: EventKind | undefined;
    if (ev.type === 'DELETED') type = visible(ev.object) || was ? 'DELETED' : undefined;
    else if (ev.type === 'ADDED') type = now ? 'ADDED' : undefined;
    else if (now && was) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (was) type = 'DELETED';
    if (!type) return;
    const l = line(type, toWire(s, ev.object), ev);
    // line() shares the text of an event among watches unless it is rendered for this watch alone (tables).
    const shared = !table;
    if (!replaying) return send(l, shared);
    const before = own();
    const backlogBefore = backlog();
    held.push(l);
    heldBytes += l.length;
    if (shared) holdShared(l);
    account(before, backlogBefore);
  };

  // ---- start --------------------------------------------------------------------------------
  let stop: (last?: string) => void = () => {};
  if (start !== null) {
    if (start > storage.currentRv || start < storage.compactedRv) {
      // An RV this store never issued (e.g. from before a data-dir reset) or one compacted away: make the client relist.
      const why =
        start > storage.currentRv
          ? `too large resource version: ${start}, current: ${storage.currentRv}`
          : `too old resource version: ${start} (${storage.compactedRv + 1})`;
      raw.write(line('ERROR', gone(why).toStatus()));
      raw.end();
      return;
    }
    // History holds committed changes only; the ones being committed arrive as live events.
    historyTo = Math.max(start, storage.committedRv);
    readNext = readHistoryPage;
  }
  const remove = storage.addWatcher({ gr: s.kind.storageKey, ns: s.kind.namespaced ? nsFilter : '', send: onEvent, close: () => stop() });
  const timers: NodeJS.Timeout[] = [];
  // A bookmark says every change up to its resourceVersion has been sent: only once the replay is out.
  if (bookmarks) timers.push(setInterval(() => !replaying && bookmark(storage.committedRv), watches.bookmarkIntervalMs));
  const max = watches.maxWatchSeconds;
  const limit = timeout > 0 ? Math.min(timeout, max) * 1000 : (max / 2 + (Math.random() * max) / 2) * 1000;
  /** Ends the watch; `last` (an ERROR line) goes out after what the connection already has, the lines still waiting do not. */
  stop = (last?: string) => {
    if (done) return;
    done = true;
    remove();
    for (const t of timers) clearInterval(t);
    watches.remove(handle);
    const before = own();
    for (const l of sharedWaiting) watches.unshare(l);
    sharedWaiting.clear();
    queue.length = 0;
    held.length = 0;
    queuedBytes = heldBytes = unsent = sharedBytes = 0;
    watches.grew(handle, -before);
    try {
      raw.end(typeof last === 'string' ? last : undefined);
    } catch {
      // the client is already gone
    }
  };
  timers.push(setTimeout(() => stop(), limit));
  raw.on('close', () => stop());
  s.req.on('close', () => stop());
  watches.add(handle);
  readNext();
}
