/**
 * watch: replay (the current state, or history from a resourceVersion), then live events,
 * bookmarks and a time limit.
 *
 * What a watch sends goes out at the pace its client takes it: the replay is read a page at a
 * time, the next page once the client has taken the last; live events that arrive meanwhile wait
 * (in order) until the replay is out. What waits for a client counts against its watch's buffer
 * and the server's total (ServerLimits); a watch past either, or whose client has taken nothing
 * for watchStallSeconds, is ended — the client re-lists and watches again, as after any watch end.
 *
 * One live event's bytes are shared by every watch that sends it (one JSON.stringify and one Buffer
 * for 100 watchers): while the event waits in watches' queues the server's total counts it once.
 * A connection keeps what it was given and could not send yet in buffers of its own (TLS encrypts
 * its own copy, and keeps a buffer as large as its largest write for as long as it lives), so a
 * line goes to a connection in slices of at most WRITE_SLICE, the next once it has taken the last,
 * and the rest stays shared meanwhile: a stalled client holds one slice, not a copy of each line.
 * The slice counts for its watch alone, and must fit in the server's total before it is handed
 * over; if it does not, the watch waits (the line still shared) and watches whose connections have
 * held their slice for SLOW_WATCH_MS are ended to make room, longest stalled first — as
 * kube-apiserver's cacher ends a watcher that cannot take an event within its dispatch budget. Past
 * the total, the same slow watches are ended. So what stalled clients make the server hold, beyond
 * each connection's own TLS state, stays within its total however many they are, and they never
 * keep the room from clients that read.
 */
import { gone } from '../errors.js';
import { toTable } from '../registry/table.js';
import { lineWriter } from '../request/chunked.js';
import { parseBool } from '../request/info.js';
import { resourceVersionParam, wholeNumberParam } from '../request/params.js';
import { fieldMatches, matches } from '../request/selectors.js';
import type { StoreEvent } from '../storage/sqlite.js';
import type { StoredObject } from '../types.js';
import { selectors, toWire, wantsTable, type RequestScope } from './scope.js';
import type { Line, OpenWatch } from './watch-buffers.js';

type EventKind = StoreEvent['type'] | 'ERROR' | 'BOOKMARK';

/** A point in history the replay's lines must wait for (writes not yet committed when they were read). */
interface Barrier {
  released: boolean;
}

/** Rows of the current state (or history entries) read per page of a replay, and the bytes that end a page early. */
const PAGE_ROWS = 200;
const PAGE_BYTES = 256 * 1024;

/** The most of one line a connection is given at once. */
const WRITE_SLICE = 64 * 1024;

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
  // Shared lines framed once for all HTTP/1.1 watches, each written straight to its socket.
  const out = lineWriter(raw, (piece) => sharedWaiting.has(piece));

  // ---- what waits for the client --------------------------------------------------------------
  const queue: (Line | Barrier)[] = [];
  /** Bytes of the queued lines not yet handed to the connection. */
  let queuedBytes = 0;
  /** How much of the queue's first line the connection has been given (a big line goes in slices). */
  let fed = 0;
  /** Bytes handed to the connection since it last said it had room. */
  let unsent = 0;
  let blocked = false;
  let stalledSince = 0;
  let done = false;
  /** Live events that arrived during the replay, in order: sent once it is out. */
  const held: Line[] = [];
  let heldBytes = 0;
  const backlog = () => queuedBytes + heldBytes + unsent;
  /** The shared (live-event) lines among those waiting, and their bytes not yet handed over: the server's total counts them once for all watches. */
  const sharedWaiting = new Set<Line>();
  let sharedBytes = 0;
  const own = () => backlog() - sharedBytes;
  const holdShared = (l: Line) => {
    sharedWaiting.add(l);
    sharedBytes += l.length;
    watches.share(l);
  };
  /** A shared line was handed over entirely (its bytes have left sharedBytes slice by slice). */
  const releaseShared = (l: Line) => {
    if (sharedWaiting.delete(l)) watches.unshare(l);
  };
  const handle: OpenWatch = {
    get backlog() {
      return backlog();
    },
    get unsent() {
      return unsent;
    },
    get stalledSince() {
      return stalledSince;
    },
    stop: () => stop(),
    drop: () => {
      stop(undefined, true);
      // What waits in the connection's buffers goes with it; the client sees the watch end.
      s.req.destroy();
    },
    resume: () => flush(),
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
        let head = queue[0];
        if (typeof head !== 'string' && !Buffer.isBuffer(head)) {
          if (!head.released) break;
          queue.shift();
          continue;
        }
        if (typeof head === 'string' && head.length > WRITE_SLICE) {
          // A big line of this watch's own (a replay row) goes in slices too: encoded once, here.
          const bytes = Buffer.from(head);
          queuedBytes += bytes.length - head.length;
          head = queue[0] = bytes;
        }
        // In slices (see the top of this file): 200 TLS connections each given a 1.4 MiB line whole
        // still held 320 MiB once it had gone out; given it in 64 KiB slices, 62 MiB (clients included).
        const shared = sharedWaiting.has(head);
        const piece = head.length <= WRITE_SLICE ? head : (head as Buffer).subarray(fed, fed + WRITE_SLICE);
        if (shared && !watches.admit(handle, piece.length)) break;
        const full = !out.write(piece);
        queuedBytes -= piece.length;
        fed += piece.length;
        if (shared) sharedBytes -= piece.length;
        if (fed === head.length) {
          queue.shift();
          fed = 0;
          releaseShared(head);
        }
        if (full) {
          blocked = true;
          unsent = Math.max(out.writableLength, piece.length);
          stalledSince ||= Date.now();
        }
      }
    } catch {
      // A write to a stream the client already closed ends this watch.
      stop(undefined, true);
      return;
    }
    account(before, backlogBefore);
    if (!blocked && !done && !queue.length) idle();
  };
  const send = (line: Line, shared = false) => {
    if (done) return;
    const before = own();
    const backlogBefore = backlog();
    queue.push(line);
    queuedBytes += line.length;
    if (shared) holdShared(line);
    account(before, backlogBefore);
    if (queue.length === 1 && !blocked) flush();
  };
  const draining = out.onDrain(() => {
    if (done) return;
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
  /** A live event's line: one per event (and version) for every watch that shows it as is, as bytes connections can share. */
  const eventLine = (type: EventKind, o: object, ev: StoreEvent): Line => {
    if (table) return line(type, o);
    // 100 watchers of one resource need one JSON.stringify and one encoding per event, not 100.
    ev.wire ??= new Map();
    const k = `${type}|${s.apiVersion}`;
    let bytes = ev.wire.get(k);
    if (bytes === undefined) {
      const stored = storage.textOf(o);
      bytes = Buffer.from((stored !== undefined ? `{"type":${JSON.stringify(type)},"object":${stored}}` : JSON.stringify({ type, object: o })) + '\n');
      ev.wire.set(k, bytes);
    }
    return bytes;
  };
  const line = (type: EventKind, o: object): string => {
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
  /**
   * Whether this watch shows the event's object, and its previous state. Watches with the same
   * selectors (100 watches of one object by name) decide once per event, not once each.
   */
  const selection =
    labels.length || fields.length ? JSON.stringify([s.apiVersion, nsFilter, s.query.get('labelSelector'), s.query.get('fieldSelector'), s.name]) : '';
  const visibility = (ev: StoreEvent): [boolean, boolean] => {
    let seen = selection ? ev.visibility?.get(selection) : undefined;
    if (seen === undefined) {
      seen = [visible(ev.object), ev.prev ? visible(ev.prev) : false];
      if (selection) (ev.visibility ??= new Map()).set(selection, seen);
    }
    return seen;
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
    const [shown, was] = visibility(ev);
    const now = ev.type !== 'DELETED' && shown;
    // A change that moves an object into or out of the selection is an ADDED or DELETED for this watch.
    let type: EventKind | undefined;
    if (ev.type === 'DELETED') type = shown || was ? 'DELETED' : undefined;
    else if (ev.type === 'ADDED') type = now ? 'ADDED' : undefined;
    else if (now && was) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (was) type = 'DELETED';
    if (!type) return;
    const l = eventLine(type, toWire(s, ev.object), ev);
    // eventLine() shares an event's bytes among watches unless it is rendered for this watch alone (tables).
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
  let stop: (last?: string, abort?: boolean) => void = () => {};
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
  /**
   * Ends the watch; `last` (an ERROR line) goes out after what the connection already has, the lines
   * still waiting do not. A connection given part of a line is closed instead (the rest would be a
   * copy of up to a whole line, and the client cannot use half of one): the client sees the watch
   * end as when it is dropped, and watches again from the last event it read. `abort`: the
   * connection is being dropped, nothing more goes out.
   */
  stop = (last?: string, abort = false) => {
    if (done) return;
    done = true;
    remove();
    draining.off();
    for (const t of timers) clearInterval(t);
    watches.remove(handle);
    const before = own();
    const cut = fed > 0 && !abort;
    for (const l of sharedWaiting) watches.unshare(l);
    sharedWaiting.clear();
    queue.length = 0;
    held.length = 0;
    queuedBytes = heldBytes = unsent = sharedBytes = fed = 0;
    watches.grew(handle, -before);
    if (abort) return;
    if (cut) return void s.req.destroy();
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
