/**
 * The status page's live feed: the state the operator's caches hold, pushed to every open page as
 * server-sent events. A page gets a snapshot when it connects, then only what changed — rows of
 * servers the informer reported (batched every 100 ms), new Events, the operator's health when it
 * changed (checked every second) and container stats (every 5 s, only while a page is open). No
 * page ever causes an API request: everything comes from the watch-fed caches, so a hundred open
 * pages cost what one does.
 */
import type { ServerResponse } from 'node:http';
import { Subscription, type Observable } from 'rxjs';
import type { NotebookServer } from '../api/types.js';
import type { Logger } from '../log.js';
import { reconcileRate, serverRow, type EventRow, type HealthView, type ServerRow, type StatsRow } from './model.js';

export interface HealthInput extends Omit<HealthView, 'reconcilesPerSecond'> {
  reconcilesTotal: number;
}

/** Where the feed reads from: the operator's caches and counters. */
export interface FeedSources {
  servers: { list(): NotebookServer[]; events$: Observable<{ type: string; key: string; obj: NotebookServer }> };
  events: { recent(n: number): EventRow[]; events$: Observable<{ type: string; obj: { row: EventRow } }> };
  health(): Promise<HealthInput>;
  /** Container stats by NotebookServer key; absent when the backend cannot give them. */
  stats?: () => Promise<Record<string, StatsRow>>;
}

export interface Snapshot {
  /** Server time (ms since the epoch), so the page computes ages on the server's clock. */
  now: number;
  servers: ServerRow[];
  events: EventRow[];
  health?: HealthView;
  stats: Record<string, StatsRow>;
  /** false until the operator's caches hold their first list. */
  ready: boolean;
}

const BATCH_MS = 100;
const HEALTH_MS = 1000;
const STATS_MS = 5000;
export const HEARTBEAT_MS = 15_000;
export const RECENT_EVENTS = 50;
/** Buffered bytes after which a slow page is dropped (it reconnects and gets a fresh snapshot). */
const MAX_BUFFERED = 4 << 20;
export const MAX_CLIENTS = 200;

export class StatusFeed {
  private readonly clients = new Set<ServerResponse>();
  private sources?: FeedSources;
  private readonly subs = new Subscription();
  private pendingUpserts = new Map<string, NotebookServer>();
  private pendingRemovals = new Set<string>();
  private pendingEvents: EventRow[] = [];
  private batchTimer?: NodeJS.Timeout;
  private healthTimer?: NodeJS.Timeout;
  private statsTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private health?: HealthView;
  private healthJson = '';
  private rateSamples: Array<[number, number]> = [];
  private stats: Record<string, StatsRow> = {};
  private statsRunning = false;
  private closed = false;

  constructor(private readonly log: Logger) {}

  /** Start feeding from the operator (before this, pages see an empty, not-ready snapshot). */
  attach(sources: FeedSources): void {
    this.sources = sources;
    this.subs.add(
      sources.servers.events$.subscribe((ev) => {
        if (ev.type === 'deleted') {
          this.pendingUpserts.delete(ev.key);
          this.pendingRemovals.add(ev.key);
        } else {
          this.pendingRemovals.delete(ev.key);
          this.pendingUpserts.set(ev.key, ev.obj);
        }
        this.scheduleBatch();
      }),
    );
    this.subs.add(
      sources.events.events$.subscribe((ev) => {
        if (ev.type === 'deleted') return;
        this.pendingEvents.push(ev.obj.row);
        if (this.pendingEvents.length > RECENT_EVENTS) this.pendingEvents.splice(0, this.pendingEvents.length - RECENT_EVENTS);
        this.scheduleBatch();
      }),
    );
    if (this.clients.size > 0) this.startTimers();
    void this.refreshHealth();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The state now (also what `nbswarm status` and /api/state read). */
  async snapshot(): Promise<Snapshot> {
    const s = this.sources;
    if (!s) return { now: Date.now(), servers: [], events: [], stats: {}, ready: false };
    await this.refreshHealth();
    const servers = s.servers
      .list()
      .map(serverRow)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { now: Date.now(), servers, events: s.events.recent(RECENT_EVENTS), health: this.health, stats: this.stats, ready: this.health?.synced ?? false };
  }

  async healthNow(): Promise<HealthView | undefined> {
    await this.refreshHealth();
    return this.health;
  }

  /** A page opened the event stream: send the snapshot, then changes. */
  async subscribe(res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopTimers();
    });
    if (this.clients.size === 1) this.startTimers();
    this.send(res, 'snapshot', await this.snapshot());
  }

  close(): void {
    this.closed = true;
    this.subs.unsubscribe();
    this.stopTimers();
    if (this.batchTimer) clearTimeout(this.batchTimer);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private send(res: ServerResponse, event: string, data: unknown): void {
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED) {
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    for (const c of this.clients) this.send(c, event, data);
  }

  private scheduleBatch(): void {
    if (this.batchTimer || this.closed) return;
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      this.flush();
    }, BATCH_MS);
  }

  private flush(): void {
    if (this.pendingUpserts.size || this.pendingRemovals.size) {
      const upsert = [...this.pendingUpserts.values()].map(serverRow);
      const remove = [...this.pendingRemovals];
      this.pendingUpserts = new Map();
      this.pendingRemovals = new Set();
      this.broadcast('servers', { now: Date.now(), upsert, remove });
    }
    if (this.pendingEvents.length) {
      const rows = this.pendingEvents;
      this.pendingEvents = [];
      this.broadcast('kevents', rows);
    }
  }

  private startTimers(): void {
    if (!this.sources || this.healthTimer) return;
    this.healthTimer = setInterval(() => void this.tickHealth(), HEALTH_MS);
    this.heartbeatTimer = setInterval(() => {
      for (const c of this.clients) if (!c.writableEnded) c.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    if (this.sources.stats) {
      this.statsTimer = setInterval(() => void this.tickStats(), STATS_MS);
      void this.tickStats();
    }
  }

  private stopTimers(): void {
    for (const t of [this.healthTimer, this.statsTimer, this.heartbeatTimer]) if (t) clearInterval(t);
    this.healthTimer = this.statsTimer = this.heartbeatTimer = undefined;
  }

  private async refreshHealth(): Promise<void> {
    if (!this.sources) return;
    try {
      const h = await this.sources.health();
      const { reconcilesTotal, ...rest } = h;
      const rate = reconcileRate(this.rateSamples, Date.now(), reconcilesTotal);
      this.rateSamples = rate.samples;
      this.health = { ...rest, reconcilesPerSecond: rate.perSecond };
    } catch (err) {
      this.log.debug('status page: health check failed', { error: (err as Error).message });
    }
  }

  private async tickHealth(): Promise<void> {
    await this.refreshHealth();
    const json = JSON.stringify(this.health ?? null);
    if (json !== this.healthJson) {
      this.healthJson = json;
      this.broadcast('health', this.health);
    }
  }

  private async tickStats(): Promise<void> {
    if (this.statsRunning || !this.sources?.stats) return;
    this.statsRunning = true;
    try {
      this.stats = await this.sources.stats();
      this.broadcast('stats', this.stats);
    } catch (err) {
      this.log.debug('status page: container stats failed', { error: (err as Error).message });
    } finally {
      this.statsRunning = false;
    }
  }
}
