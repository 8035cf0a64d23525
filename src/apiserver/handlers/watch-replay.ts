/**
 * A watch's replay: the current state (a watch without a resourceVersion) or the history after a
 * resourceVersion, read a page at a time, the next page once the client has taken the last; and
 * which live events the replay already shows, so that each change reaches the client once.
 */
import { gone } from '../errors.js';
import type { Store, StoreEvent } from '../storage/sqlite.js';
import type { WatchLines } from './watch-lines.js';

/** Rows of the current state (or history entries) read per page of a replay, and the bytes that end a page early. */
const PAGE_ROWS = 200;
const PAGE_BYTES = 256 * 1024;

/** Key order as storage iterates: namespace, then name. */
const after = (ns: string, name: string, key: [string, string]) => (ns !== key[0] ? ns > key[0] : name > key[1]);

/** What the replay needs from its watch. */
export interface ReplayTarget {
  /** Queues a line for the client. */
  send(line: string): void;
  /** The lines queued next wait for the writes being committed now (a read never shows a write before it is). */
  waitForCommit(): void;
  /** Ends the watch with `last` (an ERROR line). */
  fail(last: string): void;
  /** The replay is out, up to resourceVersion `rv`. */
  replayed(rv: number): void;
  /** Whether the watch goes on and its client has taken all it was sent. */
  caughtUp(): boolean;
}

/** Why a watch cannot start at resourceVersion `start` (the client must relist), or undefined when it can. */
export function cannotReplayFrom(storage: Store, start: number): string | undefined {
  // An RV this store never issued (e.g. from before a data-dir reset) or one compacted away.
  if (start > storage.currentRv) return `too large resource version: ${start}, current: ${storage.currentRv}`;
  if (start < storage.compactedRv) return `too old resource version: ${start} (${storage.compactedRv + 1})`;
  return undefined;
}

export class Replay {
  /** Until the replay is out, live events wait. */
  running = true;
  /** Initial state: the pages read so far, each with the last key it covers (null: the rest) and the resourceVersion it was read at. */
  private readonly pages: { upTo: [string, string] | null; rv: number }[] = [];
  private cursor: [string, string] = ['', ''];
  /** History: the newest resourceVersion sent, and the one the replay ends at. */
  private historyFrom: number;
  private readonly historyTo: number = 0;
  /** The newest resourceVersion the replay covers, once it is out. */
  private lastPageRv = Infinity;
  private scheduled = false;
  private readonly readPage: () => void;

  /** `start`: the resourceVersion the client watches from (checked with cannotReplayFrom), or null for the current state. */
  constructor(
    private readonly storage: Store,
    private readonly storageKey: string,
    private readonly namespaced: boolean,
    private readonly lines: WatchLines,
    private readonly start: number | null,
    private readonly target: ReplayTarget,
  ) {
    this.historyFrom = start ?? 0;
    if (start !== null) {
      // History holds committed changes only; the ones being committed arrive as live events.
      this.historyTo = Math.max(start, storage.committedRv);
      this.readPage = () => this.readHistoryPage();
    } else {
      this.readPage = () => this.readStatePage();
    }
  }

  /** Reads the first page. */
  begin(): void {
    this.readPage();
  }

  /** The client has taken everything: read the next page of the replay (never from inside a write). */
  idle(): void {
    if (!this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running && this.target.caughtUp()) this.readPage();
    });
  }

  /** Whether a live event is already in what the replay read (or will read). */
  covers(ev: StoreEvent): boolean {
    if (this.start !== null) return ev.rv <= this.historyTo;
    if (ev.rv > this.lastPageRv) return false;
    for (const p of this.pages) {
      if (p.upTo === null || !after(ev.ns, ev.name, p.upTo)) return ev.rv <= p.rv;
    }
    // Beyond what the replay has read so far: its next pages will show it.
    return this.running;
  }

  private end(endRv: number): void {
    this.running = false;
    this.lastPageRv = endRv;
    this.target.replayed(endRv);
  }

  private readStatePage(): void {
    const { nsFilter } = this.lines;
    const rows: { ns: string; name: string; data: string }[] = [];
    let bytes = 0;
    const it = this.storage.iterateRows(this.storageKey, this.namespaced ? nsFilter || null : '', this.cursor);
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
    const rv = this.storage.currentRv;
    const last = rows[rows.length - 1];
    if (last) this.cursor = [last.ns, last.name];
    this.pages.push({ upTo: exhausted ? null : this.cursor, rv });
    // The barrier goes before the lines it holds back.
    this.target.waitForCommit();
    for (const r of rows) {
      const l = this.lines.rowLine('ADDED', r.data);
      if (l !== null) this.target.send(l);
    }
    if (exhausted) this.end(rv);
  }

  private readHistoryPage(): void {
    const { nsFilter } = this.lines;
    const page = this.storage.historyPage(this.storageKey, this.historyFrom, this.historyTo, PAGE_ROWS);
    if (page === 'expired') {
      // Compacted while the replay ran: the client must relist.
      const why = `too old resource version: ${this.historyFrom} (${this.storage.compactedRv + 1})`;
      return this.target.fail(this.lines.line('ERROR', gone(why).toStatus()));
    }
    for (const r of page) {
      this.historyFrom = r.rv;
      if (this.namespaced && nsFilter && r.ns !== nsFilter) continue;
      const l = this.lines.rowLine(r.type, r.data);
      if (l !== null) this.target.send(l);
    }
    if (page.length < PAGE_ROWS || this.historyFrom >= this.historyTo) this.end(this.historyTo);
  }
}
