/**
 * What one watch shows, and as what lines: its selection (namespace, name, label and field
 * selectors; a change that moves an object into or out of it is an ADDED or DELETED for this
 * watch), and its lines — live events, stored rows of a replay, bookmarks, errors — as JSON or,
 * for a watch that asked for a Table, Table rows.
 */
import { toTable } from '../registry/table.js';
import { fieldMatches, matches } from '../request/selectors.js';
import type { StoreEvent } from '../storage/sqlite.js';
import type { StoredObject } from '../types.js';
import { selectors, toWire, wantsTable, type RequestScope } from './scope.js';
import type { Line } from './watch-buffers.js';

export type EventKind = StoreEvent['type'] | 'ERROR' | 'BOOKMARK';

/** One watch's selection and how it writes lines. */
export interface WatchLines {
  /** The namespace the watch is limited to ('' for all, and for cluster-scoped kinds). */
  readonly nsFilter: string;
  /** Lines are Table rows, rendered for this watch alone (never shared with other watches). */
  readonly table: boolean;
  /** An object (or a Status, for ERROR) as a line of this watch's own. */
  line(type: EventKind, o: object): string;
  /** A live event's line: one per event (and version) for every watch that shows it as is, as bytes connections can share. */
  eventLine(type: EventKind, o: object, ev: StoreEvent): Line;
  /** A stored row as a watch line, or null when the watch does not show it. */
  rowLine(type: EventKind, data: string): string | null;
  /** What a live event is for this watch, or undefined when the watch does not show it. */
  liveType(ev: StoreEvent): EventKind | undefined;
  /** A bookmark at resourceVersion `rv`. */
  bookmark(rv: number, annotations?: Record<string, string>): string;
}

export function watchLines(s: RequestScope): WatchLines {
  const { storage } = s.services;
  const { labels, fields: selected } = selectors(s);
  const fields = [...selected];
  if (s.name) fields.push({ path: 'metadata.name', neg: false, value: s.name });
  const table = wantsTable(s);
  const includeObject = s.query.get('includeObject') ?? 'Metadata';
  const nsFilter = s.kind.namespaced ? s.namespace : '';
  // Stored rows in the requested version can be sent as stored, without parsing them.
  const rowHead = `{"apiVersion":${JSON.stringify(s.apiVersion)},`;
  const spliceable = !labels.length && !fields.length && !s.kind.fromStorage && !table;

  let first = true;
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
  const liveType = (ev: StoreEvent): EventKind | undefined => {
    if (s.kind.namespaced && nsFilter && ev.ns !== nsFilter) return undefined;
    const [shown, was] = visibility(ev);
    const now = ev.type !== 'DELETED' && shown;
    // A change that moves an object into or out of the selection is an ADDED or DELETED for this watch.
    if (ev.type === 'DELETED') return shown || was ? 'DELETED' : undefined;
    if (ev.type === 'ADDED') return now ? 'ADDED' : undefined;
    if (now && was) return 'MODIFIED';
    if (now) return 'ADDED';
    if (was) return 'DELETED';
    return undefined;
  };
  const rowLine = (type: EventKind, data: string): string | null => {
    if (spliceable && data.startsWith(rowHead)) return `{"type":"${type}","object":${data}}\n`;
    const o = JSON.parse(data) as StoredObject;
    return visible(o) ? line(type, toWire(s, o)) : null;
  };
  const bookmark = (rv: number, annotations?: Record<string, string>) => {
    const o = { kind: s.kind.kind, apiVersion: s.apiVersion, metadata: { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) } };
    return JSON.stringify({ type: 'BOOKMARK', object: o }) + '\n';
  };
  return { nsFilter, table, line, eventLine, rowLine, liveType, bookmark };
}
