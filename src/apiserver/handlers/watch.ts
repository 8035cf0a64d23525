/**
 * watch: replay (the current state, or history from a resourceVersion: watch-replay.ts), then live
 * events, bookmarks and a time limit; what it shows and as what lines is watch-lines.ts.
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
import { lineWriter } from '../request/chunked.js';
import { parseBool } from '../request/info.js';
import { resourceVersionParam, wholeNumberParam } from '../request/params.js';
import type { StoreEvent } from '../storage/sqlite.js';
import { toWire, type RequestScope } from './scope.js';
import type { Line, OpenWatch } from './watch-buffers.js';
import { watchLines } from './watch-lines.js';
import { cannotReplayFrom, Replay } from './watch-replay.js';

/** A point in history the replay's lines must wait for (writes not yet committed when they were read). */
interface Barrier {
  released: boolean;
}

/** The most of one line a connection is given at once. */
const WRITE_SLICE = 64 * 1024;

export function watch(s: RequestScope): void {
  const { storage, watches } = s.services;
  const lines = watchLines(s);
  const start = resourceVersionParam(s.query) ?? null;
  const bookmarks = parseBool(s.query.get('allowWatchBookmarks'));
  const sendInitial = parseBool(s.query.get('sendInitialEvents'));
  const timeout = wholeNumberParam(s.query, 'timeoutSeconds') ?? 0;
  const raw = s.res;
  raw.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
  // Clients (fetch-based ones like client-node) resolve the watch call on the response headers;
  // HTTP/1.1 would otherwise hold them back until the first event.
  raw.flushHeaders?.();
  // A start the history cannot replay from is answered before anything is attached to the
  // connection: a drain listener left on a keep-alive socket would run this watch's replay later.
  const unreplayable = start !== null ? cannotReplayFrom(storage, start) : undefined;
  if (unreplayable !== undefined) {
    raw.write(lines.line('ERROR', gone(unreplayable).toStatus()));
    raw.end();
    return;
  }
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
    if (!blocked && !done && !queue.length) replay.idle();
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

  // ---- replay, then live events -------------------------------------------------------------
  const replay = new Replay(storage, s.kind.storageKey, s.kind.namespaced, lines, start, {
    send,
    waitForCommit,
    fail: (last) => stop(last),
    replayed: (endRv) => {
      if (sendInitial && bookmarks) send(lines.bookmark(endRv, { 'k8s.io/initial-events-end': 'true' }));
      for (const l of held.splice(0)) {
        heldBytes -= l.length;
        queue.push(l);
        queuedBytes += l.length;
      }
      flush();
    },
    caughtUp: () => !done && !blocked && !queue.length,
  });
  const onEvent = (ev: StoreEvent) => {
    if (done || replay.covers(ev)) return;
    const type = lines.liveType(ev);
    if (!type) return;
    const l = lines.eventLine(type, toWire(s, ev.object), ev);
    // eventLine() shares an event's bytes among watches unless it is rendered for this watch alone (tables).
    const shared = !lines.table;
    if (!replay.running) return send(l, shared);
    const before = own();
    const backlogBefore = backlog();
    held.push(l);
    heldBytes += l.length;
    if (shared) holdShared(l);
    account(before, backlogBefore);
  };

  // ---- start --------------------------------------------------------------------------------
  let stop: (last?: string, abort?: boolean) => void = () => {};
  const nsFilter = lines.nsFilter;
  const remove = storage.addWatcher({ gr: s.kind.storageKey, ns: s.kind.namespaced ? nsFilter : '', send: onEvent, close: () => stop() });
  const timers: NodeJS.Timeout[] = [];
  // A bookmark says every change up to its resourceVersion has been sent: only once the replay is out.
  if (bookmarks) timers.push(setInterval(() => !replay.running && send(lines.bookmark(storage.committedRv)), watches.bookmarkIntervalMs));
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
  replay.begin();
}
