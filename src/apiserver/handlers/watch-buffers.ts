/**
 * The server's open watches and the bytes they hold: each watch's backlog and what its connection
 * was handed but has not sent, one count for a live event's line shared by several watches, and
 * the limits on them (per watch, in total, and how long a client may take nothing). The watch
 * handler (watch.ts) says what each watch sends; this says when a watch must end to make room.
 */
import type { Gauge } from 'prom-client';
import { SLOW_WATCH_MS, type ServerLimits } from '../limits.js';

type WatchLimits = Pick<ServerLimits, 'watchBufferBytes' | 'watchBuffersTotalBytes' | 'watchStallSeconds'>;

/** A watch line: a live event's shared bytes, or text of this watch's own. */
export type Line = Buffer | string;

/** A running watch as the server's bookkeeping sees it. */
export interface OpenWatch {
  /** Bytes waiting for the client. */
  readonly backlog: number;
  /** Bytes its connection holds: given to it, not yet sent. */
  readonly unsent: number;
  /** Since when its connection has held bytes it could not send (ms), or 0 while it holds none. */
  readonly stalledSince: number;
  /** Ends the watch normally (server closing, time limit). */
  stop(): void;
  /** Ends the watch of a client that does not keep up: its connection or stream is dropped with what waits. */
  drop(why: string): void;
  /** There may be room now for the line it waits to send. */
  resume(): void;
}

/** The server's open watches, how they behave, and the buffers they hold. */
export class Watches {
  private readonly open = new Set<OpenWatch>();
  private closed = false;
  private buffered = 0;
  /** Live-event lines waiting in some watch, and how many watches hold each: counted once in `buffered`. */
  private readonly sharedLines = new Map<Line, number>();
  /** Watches waiting for room to hand their connection a shared line, in the order they asked. */
  private readonly waiting = new Set<OpenWatch>();
  private wakeScheduled = false;
  private slowCheck: NodeJS.Timeout | undefined;
  /** No watch can have been stalled for SLOW_WATCH_MS before this (ms since the epoch). */
  private slowNotBefore = 0;
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
    this.waiting.delete(w);
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
    if (ownDelta < 0) this.freed();
    if (!grewBacklog) return;
    if (w.backlog > this.limits.watchBufferBytes) {
      this.drop(w, `its client left ${w.backlog} bytes untaken, more than the ${this.limits.watchBufferBytes} one watch may hold`);
    }
    this.enforceTotal();
  }

  /** One more watch holds the shared line `line`. */
  share(line: Line): void {
    const n = this.sharedLines.get(line) ?? 0;
    this.sharedLines.set(line, n + 1);
    if (n === 0) this.buffered += line.length;
  }

  /** A watch no longer holds the shared line `line` (sent, or the watch ended). */
  unshare(line: Line): void {
    const n = this.sharedLines.get(line) ?? 0;
    if (n > 1) return void this.sharedLines.set(line, n - 1);
    this.sharedLines.delete(line);
    if (n === 1) {
      this.buffered -= line.length;
      this.freed();
    }
  }

  /**
   * Whether `w` may hand its connection `bytes` of a shared line now: the connection's copy must fit
   * in the server's total, and watches whose clients stalled are ended to make room. When it does not
   * fit, `w` waits: its resume() is called once there may be room. It fits anyway when nothing sits in
   * connections to wait for.
   */
  admit(w: OpenWatch, bytes: number): boolean {
    const total = this.limits.watchBuffersTotalBytes;
    if (this.buffered + bytes > total) this.endSlow(bytes, `other watches need room in the server's ${total} bytes for all watches`, w);
    if (this.buffered + bytes <= total || !this.anyUnsent()) {
      this.waiting.delete(w);
      return true;
    }
    this.waiting.add(w);
    this.checkSlowLater();
    return false;
  }

  /** Ends watches whose connections have held what they were given for SLOW_WATCH_MS, longest first, until `need` more bytes fit. */
  private endSlow(need: number, because: string, except?: OpenWatch): void {
    const now = Date.now();
    // While the total is passed this runs on every write: scan the watches only once one can be slow.
    if (now < this.slowNotBefore) return;
    const total = this.limits.watchBuffersTotalBytes;
    const slow: OpenWatch[] = [];
    let firstOfRest = now;
    for (const v of this.open) {
      if (v === except || !v.stalledSince) continue;
      if (v.stalledSince <= now - SLOW_WATCH_MS) slow.push(v);
      else firstOfRest = Math.min(firstOfRest, v.stalledSince);
    }
    slow.sort((a, b) => a.stalledSince - b.stalledSince);
    for (const v of slow) {
      if (this.buffered + need <= total) return;
      this.drop(v, `its client has not taken the ${v.unsent} bytes last sent for ${((now - v.stalledSince) / 1000).toFixed(1)}s, and ${because}`);
    }
    // Every slow watch is gone; the others stalled later (and a watch that stalls from now on, later still).
    this.slowNotBefore = firstOfRest + SLOW_WATCH_MS;
  }

  private anyUnsent(): boolean {
    for (const v of this.open) if (v.unsent > 0) return true;
    return false;
  }

  /** While watches wait for room or the total is passed, look again when the longest-stalled connection becomes slow. */
  private checkSlowLater(): void {
    if (this.slowCheck || this.closed) return;
    let oldest = Infinity;
    for (const v of this.open) if (v.stalledSince && v.stalledSince < oldest) oldest = v.stalledSince;
    const delay = oldest === Infinity ? SLOW_WATCH_MS : Math.max(0, oldest + SLOW_WATCH_MS - Date.now()) + 10;
    this.slowCheck = setTimeout(() => {
      this.slowCheck = undefined;
      this.enforceTotal();
      this.wake();
    }, delay);
    this.slowCheck.unref();
  }

  /** Bytes were freed: the watches waiting for room try again, in order (never from inside the write or drop that freed them). */
  private freed(): void {
    if (!this.waiting.size || this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of [...this.waiting]) {
      w.resume();
      // The first that still finds no room keeps its place, and those behind it theirs.
      if (this.waiting.has(w)) return;
    }
  }

  private enforceTotal(): void {
    const total = this.limits.watchBuffersTotalBytes;
    if (this.buffered <= total) return;
    this.endSlow(0, `watches hold ${this.buffered} bytes their clients have not taken, more than the server's ${total}`);
    // Watches whose clients are not slow (yet) keep what they hold; the check runs again when the
    // longest-stalled connection becomes slow. A line queued for many watches is held once meanwhile.
    if (this.buffered > total) this.checkSlowLater();
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
    clearTimeout(this.slowCheck);
    for (const w of [...this.open]) w.stop();
  }
}
