/** watch: replay (initial state or history from a resourceVersion), then live events, bookmarks and a time limit. */
import type { Gauge } from 'prom-client';
import { badRequest, gone } from '../errors.js';
import { toTable } from '../registry/table.js';
import { parseBool } from '../request/info.js';
import { fieldMatches, matches } from '../request/selectors.js';
import type { StoreEvent } from '../storage/sqlite.js';
import type { StoredObject } from '../types.js';
import { selectors, toWire, wantsTable, type RequestScope } from './scope.js';

/** The server's open watches and how they behave. */
export class Watches {
  private readonly open = new Set<() => void>();
  private closed = false;

  constructor(
    readonly bookmarkIntervalMs: number,
    /** Upper bound for a watch without timeoutSeconds; each gets a random length in [max/2, max), like kube's min-request-timeout. */
    readonly maxWatchSeconds: number,
    private readonly gauge: Gauge,
  ) {}

  /** Registers a running watch; `stop` ends it when the server closes. */
  add(stop: () => void): void {
    this.gauge.inc();
    this.open.add(stop);
    if (this.closed) stop();
  }

  remove(stop: () => void): void {
    if (this.open.delete(stop)) this.gauge.dec();
  }

  close(): void {
    this.closed = true;
    for (const stop of [...this.open]) stop();
  }
}

type EventKind = StoreEvent['type'] | 'ERROR' | 'BOOKMARK';

export function watch(s: RequestScope): void {
  const { storage, watches } = s.services;
  const { labels, fields: selected } = selectors(s);
  const fields = [...selected];
  if (s.name) fields.push({ path: 'metadata.name', neg: false, value: s.name });
  const rvParam = s.query.get('resourceVersion') ?? '';
  const bookmarks = parseBool(s.query.get('allowWatchBookmarks'));
  const sendInitial = parseBool(s.query.get('sendInitialEvents'));
  const timeout = Number(s.query.get('timeoutSeconds') ?? 0);
  const table = wantsTable(s);
  const includeObject = s.query.get('includeObject') ?? 'Metadata';
  const nsFilter = s.kind.namespaced ? s.namespace : '';
  let start: number | null = null;
  if (rvParam !== '' && rvParam !== '0') {
    start = Number(rvParam);
    if (!Number.isInteger(start) || start < 0) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rvParam)}: must be an integer`);
  }
  const raw = s.res;
  raw.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
  // Clients (fetch-based ones like client-node) resolve the watch call on the response headers;
  // HTTP/1.1 would otherwise hold them back until the first event.
  raw.flushHeaders?.();
  let stop: () => void = () => {};
  // Until what the replay shows is committed, lines wait here (a read never shows a write before
  // it is committed); live events that arrive meanwhile queue behind them.
  let ready = true;
  const queued: string[] = [];
  // A write to a stream the client already closed must end this watch, never throw out of a timer.
  const write = (chunk: string): boolean => {
    if (!ready) return queued.push(chunk) > 0;
    try {
      return raw.write(chunk);
    } catch {
      stop();
      return false;
    }
  };
  raw.on('error', () => stop());
  let first = true;
  const emit = (type: EventKind, o: object, ev?: StoreEvent) => {
    if (ev && !table) {
      // 100 watchers of one resource need one JSON.stringify per event, not 100.
      ev.wire ??= new Map();
      const k = `${type}|${s.apiVersion}`;
      let line = ev.wire.get(k);
      if (line === undefined) {
        const text = storage.textOf(o);
        line = (text !== undefined ? `{"type":${JSON.stringify(type)},"object":${text}}` : JSON.stringify({ type, object: o })) + '\n';
        ev.wire.set(k, line);
      }
      return write(line);
    }
    let obj: object = o;
    if (table && type !== 'ERROR' && type !== 'BOOKMARK') {
      const so = o as StoredObject;
      obj = toTable(s.kind, s.version.name, [so], includeObject, { resourceVersion: so.metadata.resourceVersion }, first);
      first = false;
    }
    return write(JSON.stringify({ type, object: obj }) + '\n');
  };
  const visible = (o: StoredObject) => {
    if (s.kind.namespaced && nsFilter && o.metadata.namespace !== nsFilter) return false;
    if (!matches(labels, o.metadata.labels)) return false;
    return !fields.length || fieldMatches(fields, toWire(s, o));
  };
  const bookmark = (rv: number, annotations?: Record<string, string>) => {
    const o = { kind: s.kind.kind, apiVersion: s.apiVersion, metadata: { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) } };
    write(JSON.stringify({ type: 'BOOKMARK', object: o }) + '\n');
  };
  // Replay first, then go live: both run in this synchronous block, so no write can slip between.
  // Live events up to `seen` are in the replay already.
  let seen: number;
  if (start === null) {
    // No resourceVersion (or "0"): synthetic ADDED events for the current state, as kube sends.
    // That state may hold writes still being committed: its lines wait for that commit.
    seen = storage.currentRv;
    ready = !storage.pending;
    for (const o of storage.iterate(s.kind.storageKey, s.kind.namespaced ? nsFilter || null : '')) if (visible(o)) emit('ADDED', toWire(s, o));
    if (sendInitial && bookmarks) bookmark(seen, { 'k8s.io/initial-events-end': 'true' });
  } else {
    const hist = start > storage.currentRv ? 'future' : storage.since(s.kind.storageKey, start);
    if (hist === 'future' || hist === 'expired') {
      // An RV this store never issued (e.g. from before a data-dir reset) or one compacted away: make the client relist.
      const why = hist === 'future' ? `too large resource version: ${start}, current: ${storage.currentRv}` : `too old resource version: ${start} (${storage.compactedRv + 1})`;
      emit('ERROR', gone(why).toStatus());
      raw.end();
      return;
    }
    // History holds committed changes only; the ones being committed arrive as live events.
    for (const ev of hist) if (visible(ev.object)) emit(ev.type, toWire(s, ev.object));
    seen = Math.max(start, storage.committedRv);
    if (sendInitial && bookmarks) bookmark(storage.committedRv, { 'k8s.io/initial-events-end': 'true' });
  }
  const onEvent = (ev: StoreEvent) => {
    if (ev.rv <= seen) return;
    if (s.kind.namespaced && nsFilter && ev.ns !== nsFilter) return;
    const now = ev.type !== 'DELETED' && visible(ev.object);
    const before = ev.prev ? visible(ev.prev) : false;
    // A change that moves an object into or out of the selection is an ADDED or DELETED for this watch.
    if (ev.type === 'DELETED') {
      if (visible(ev.object) || before) emit('DELETED', toWire(s, ev.object), ev);
    } else if (ev.type === 'ADDED') {
      if (now) emit('ADDED', toWire(s, ev.object), ev);
    } else if (now && before) emit('MODIFIED', toWire(s, ev.object), ev);
    else if (now) emit('ADDED', toWire(s, ev.object), ev);
    else if (before) emit('DELETED', toWire(s, ev.object), ev);
  };
  const remove = storage.addWatcher({ gr: s.kind.storageKey, ns: s.kind.namespaced ? nsFilter : '', send: onEvent, close: () => stop() });
  const timers: NodeJS.Timeout[] = [];
  // A bookmark says every change up to its resourceVersion has been sent: only once the replay is out.
  if (bookmarks) timers.push(setInterval(() => ready && bookmark(storage.committedRv), watches.bookmarkIntervalMs));
  const max = watches.maxWatchSeconds;
  const limit = timeout > 0 ? Math.min(timeout, max) * 1000 : (max / 2 + (Math.random() * max) / 2) * 1000;
  let done = false;
  stop = () => {
    if (done) return;
    done = true;
    remove();
    for (const t of timers) clearInterval(t);
    watches.remove(stop);
    try {
      raw.end();
    } catch {
      // the client is already gone
    }
  };
  timers.push(setTimeout(stop, limit));
  raw.on('close', stop);
  s.req.on('close', stop);
  watches.add(stop);
  if (!ready) {
    storage.afterCommit(() => {
      ready = true;
      for (const line of queued.splice(0)) write(line);
    }, () => stop());
  }
}
