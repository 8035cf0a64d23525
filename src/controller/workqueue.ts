/**
 * A keyed work queue with controller-runtime's guarantees (client-go workqueue + rate limiter):
 *  - coalescing: a key waiting in the queue is not queued twice, however many events name it;
 *  - per-key serialisation: a key being reconciled is never handed out again; events for it in the
 *    meantime mark it dirty and it runs once more afterwards (so no event is lost, none duplicated);
 *  - bounded parallelism across keys;
 *  - per-key exponential back-off on failure (reset on success) and `requeueAfter`;
 *  - two lanes: `high` (requeue-after and retry timers, Docker events, changes to existing
 *    objects) is served before `low` (lists, resyncs, first sight of new objects), so servers
 *    that are converging are not stuck behind thousands of first-time keys. A key waiting in
 *    `low` moves to `high` when it is enqueued there; each lane is FIFO. While both lanes wait,
 *    `high` holds at most half the slots: in a burst the servers already created poll their
 *    progress in `high`, and with strict priority those polls could hold every slot while the
 *    rest of the burst waited to be created.
 * The plumbing (ready signals → bounded concurrent handlers) is an rxjs mergeMap: one signal per
 * queued key, and each handler slot takes the next key from the lanes when it starts, so the
 * lane order (not the signal order) decides what runs. The state that gives the guarantees lives
 * in the sets below, touched only synchronously so no race exists between "is it processing?" and
 * "queue it".
 */
import { Subject, Subscription, defer, from, mergeMap, catchError, of } from 'rxjs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ReconcileOutcome {
  /** Run this key again after this many ms (level-triggered polling while something converges). */
  requeueAfterMs?: number;
}

export type Lane = 'high' | 'low';

export type ReconcileHandler = (key: string, reasons: string[]) => Promise<ReconcileOutcome | void>;

export interface WorkQueueOptions {
  handler: ReconcileHandler;
  /** Max handlers running at once across keys. */
  concurrency: number;
  /** First retry delay after a failure (doubles per consecutive failure). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Registry for prom-client metrics; a private one when omitted. */
  registry?: Registry;
  /** Metric name prefix. */
  metricPrefix?: string;
  /** Called with every handler error (the queue itself never throws). */
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

export interface WorkQueueStats {
  /** Keys waiting to run now. */
  depth: number;
  /** depth split by lane. */
  depthByLane: Record<Lane, number>;
  /** Keys waiting on a timer (back-off or requeueAfter). */
  delayed: number;
  inFlight: number;
  maxInFlight: number;
  /** Highest number of handlers ever seen running at once for one key. Must be 1. */
  maxConcurrentPerKey: number;
  reconcilesTotal: number;
  errorsTotal: number;
  perKey: Record<string, { reconciles: number; errors: number; enqueued: number; failures: number }>;
}

export class WorkQueue {
  private readonly ready = new Subject<void>();
  /** Insertion-ordered sets: FIFO per lane with O(1) membership, removal and promotion. */
  private readonly lanes: Record<Lane, Set<string>> = { high: new Set(), low: new Set() };
  private readonly processing = new Set<string>();
  /** Handlers running per lane the key was taken from. */
  private readonly inFlightByLane: Record<Lane, number> = { high: 0, low: 0 };
  /** Slots `high` may hold while keys wait in `low`. */
  private readonly highShare: number;
  /** Keys dirtied while running, with the lane they go back to. */
  private readonly dirty = new Map<string, Lane>();
  private readonly reasons = new Map<string, string[]>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; handle: NodeJS.Timeout }>();
  private readonly active = new Map<string, number>();
  private readonly perKey = new Map<string, { reconciles: number; errors: number; enqueued: number }>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly sub: Subscription;
  private stopped = false;
  private maxInFlight = 0;
  private maxPerKey = 0;
  private total = 0;
  private errors = 0;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  readonly registry: Registry;
  private readonly mReconciles: Counter<'result'>;
  private readonly mDuration: Histogram<'result'>;

  constructor(private readonly opts: WorkQueueOptions) {
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.highShare = Math.max(1, Math.ceil(Math.max(1, opts.concurrency) / 2));
    this.maxDelayMs = opts.maxDelayMs ?? 60_000;
    this.registry = opts.registry ?? new Registry();
    const p = opts.metricPrefix ?? 'nbswarm_workqueue_';
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.mReconciles = new Counter({ name: `${p}reconciles_total`, help: 'Reconciles run, by result', labelNames: ['result'], registers: [this.registry] });
    this.mDuration = new Histogram({
      name: `${p}work_duration_seconds`,
      help: 'How long one reconcile took, by result',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    new Gauge({
      name: `${p}depth`,
      help: 'Keys waiting to be reconciled now',
      registers: [this.registry],
      collect() {
        this.set(self.queuedSize());
      },
    });
    new Gauge({
      name: `${p}delayed`,
      help: 'Keys waiting on back-off or requeueAfter',
      registers: [this.registry],
      collect() {
        this.set(self.timers.size);
      },
    });
    new Gauge({
      name: `${p}in_flight`,
      help: 'Reconciles running now',
      registers: [this.registry],
      collect() {
        this.set(self.processing.size);
      },
    });
    new Gauge({
      name: `${p}max_concurrent_per_key`,
      help: 'Highest number of reconciles ever running at once for one key (1 by design)',
      registers: [this.registry],
      collect() {
        this.set(self.maxPerKey);
      },
    });
    this.sub = this.ready
      .pipe(mergeMap(() => defer(() => from(this.runNext())).pipe(catchError(() => of(undefined))), Math.max(1, opts.concurrency)))
      .subscribe();
  }

  /** Queue `key` now (coalesced) in `lane`. Safe from any source, any time. */
  enqueue(key: string, reason = 'event', lane: Lane = 'low'): void {
    if (this.stopped) return;
    const pk = this.counts(key);
    pk.enqueued++;
    const rs = this.reasons.get(key) ?? [];
    if (rs.length < 20 && !rs.includes(reason)) rs.push(reason);
    this.reasons.set(key, rs);
    if (this.processing.has(key)) {
      if (this.dirty.get(key) !== 'high') this.dirty.set(key, lane);
      return;
    }
    if (this.lanes.high.has(key)) return;
    if (this.lanes.low.has(key)) {
      // Promotion keeps the number of outstanding signals equal to the number of queued keys.
      if (lane === 'high') {
        this.lanes.low.delete(key);
        this.lanes.high.add(key);
      }
      return;
    }
    this.lanes[lane].add(key);
    this.ready.next();
  }

  private queuedSize(): number {
    return this.lanes.high.size + this.lanes.low.size;
  }

  private isQueued(key: string): boolean {
    return this.lanes.high.has(key) || this.lanes.low.has(key);
  }

  /** Queue `key` after `ms` in the high lane (it is converging or retrying); an earlier pending timer for the key wins. */
  enqueueAfter(key: string, ms: number, reason = 'requeue'): void {
    if (this.stopped) return;
    if (ms <= 0) return this.enqueue(key, reason, 'high');
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.handle);
    const handle = setTimeout(() => {
      this.timers.delete(key);
      this.enqueue(key, reason, 'high');
    }, ms);
    handle.unref?.();
    this.timers.set(key, { at, handle });
  }

  /** Back-off for the next retry of `key` given its consecutive failures so far. */
  backoffFor(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.max(0, failures - 1));
  }

  /** Forget the key's failure history and counts (the object was deleted): nothing stays per deleted key. */
  forget(key: string): void {
    this.failures.delete(key);
    // A reconcile of the key still running recreates its counts; they go with the next forget.
    if (!this.processing.has(key)) this.perKey.delete(key);
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t.handle);
      this.timers.delete(key);
    }
  }

  private counts(key: string) {
    let c = this.perKey.get(key);
    if (!c) {
      c = { reconciles: 0, errors: 0, enqueued: 0 };
      this.perKey.set(key, c);
    }
    return c;
  }

  private pickLane(): Lane {
    if (this.lanes.high.size === 0) return 'low';
    if (this.lanes.low.size > 0 && this.inFlightByLane.high >= this.highShare) return 'low';
    return 'high';
  }

  private async runNext(): Promise<void> {
    const lane = this.pickLane();
    const next = this.lanes[lane].values().next();
    if (next.done) return;
    this.lanes[lane].delete(next.value);
    this.inFlightByLane[lane]++;
    try {
      return await this.run(next.value);
    } finally {
      this.inFlightByLane[lane]--;
    }
  }

  private async run(key: string): Promise<void> {
    if (this.stopped) return;
    this.processing.add(key);
    const reasons = this.reasons.get(key) ?? [];
    this.reasons.delete(key);
    const n = (this.active.get(key) ?? 0) + 1;
    this.active.set(key, n);
    this.maxPerKey = Math.max(this.maxPerKey, n);
    this.maxInFlight = Math.max(this.maxInFlight, this.processing.size);
    const pk = this.counts(key);
    pk.reconciles++;
    this.total++;
    let retryIn: number | undefined;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const out = await this.opts.handler(key, reasons);
      this.failures.delete(key);
      this.mReconciles.inc({ result: 'success' });
      this.mDuration.observe({ result: 'success' }, seconds());
      if (out?.requeueAfterMs !== undefined && out.requeueAfterMs >= 0) retryIn = out.requeueAfterMs;
    } catch (err) {
      const f = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, f);
      pk.errors++;
      this.errors++;
      this.mReconciles.inc({ result: 'error' });
      this.mDuration.observe({ result: 'error' }, seconds());
      retryIn = this.backoffFor(f);
      try {
        this.opts.onError?.(key, err, retryIn);
      } catch {
        // a logging failure must not break the queue
      }
    } finally {
      const left = (this.active.get(key) ?? 1) - 1;
      if (left <= 0) this.active.delete(key);
      else this.active.set(key, left);
      this.processing.delete(key);
    }
    const dirtyLane = this.dirty.get(key);
    if (dirtyLane) {
      this.dirty.delete(key);
      this.requeueDirty(key, dirtyLane);
    }
    if (retryIn !== undefined) this.enqueueAfter(key, retryIn, 'retry');
    if (this.idle) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private requeueDirty(key: string, lane: Lane): void {
    if (this.stopped || this.isQueued(key)) return;
    this.lanes[lane].add(key);
    this.ready.next();
  }

  /** Whether nothing is queued or running (timers may still be pending). */
  get idle(): boolean {
    return this.processing.size === 0 && this.queuedSize() === 0;
  }

  /** Reconciles run so far. */
  get reconciled(): number {
    return this.total;
  }

  /** Resolves when nothing is queued or running (timers may still be pending). */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  stats(): WorkQueueStats {
    const stats = {
      depth: this.queuedSize(),
      depthByLane: { high: this.lanes.high.size, low: this.lanes.low.size },
      delayed: this.timers.size,
      inFlight: this.processing.size,
      maxInFlight: this.maxInFlight,
      maxConcurrentPerKey: this.maxPerKey,
      reconcilesTotal: this.total,
      errorsTotal: this.errors,
    } as WorkQueueStats;
    // One entry per key: built only when read, and not enumerable, so a /stats scrape or a
    // progress poll at 10,000 resources does not build and serialise it.
    Object.defineProperty(stats, 'perKey', {
      enumerable: false,
      get: () => {
        const perKey: WorkQueueStats['perKey'] = {};
        for (const [k, v] of this.perKey) perKey[k] = { ...v, failures: this.failures.get(k) ?? 0 };
        return perKey;
      },
    });
    return stats;
  }

  /** Stop handing out keys; waits for running handlers to finish. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.handle);
    this.timers.clear();
    this.lanes.high.clear();
    this.lanes.low.clear();
    if (this.processing.size > 0) {
      await new Promise<void>((r) => {
        const check = () => (this.processing.size === 0 ? r() : setTimeout(check, 20));
        check();
      });
    }
    this.sub.unsubscribe();
    this.ready.complete();
  }
}
