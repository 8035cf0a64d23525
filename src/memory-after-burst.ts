/**
 * The operator's heap given back to the host once a burst of reconciles is over. During a burst
 * (thousands of creates, or a resync of thousands of servers) the old generation grows well past
 * what stays alive: reconciles wait on Docker and the API, so their garbage outlives the small
 * young generation (young-generation.ts) and is promoted. Only a compacting, memory-reducing
 * collection gives that space back, and V8's memory reducer starts one on its own schedule: in P4
 * (10,000 NotebookServers) anywhere from 15 s to more than 45 s after the queue drained, and until
 * then the operator held ~40 MB of committed, empty heap (RSS 160-168 MB instead of 115-130).
 *
 * So when a burst of at least `minReconciles` reconciles is followed by one quiet check interval
 * (nothing queued, nothing running, no reconcile since the last check), the operator runs that
 * collection itself: a pause of 100-200 ms while nothing waits on it, once per burst. Only
 * `nbswarm operator` does this (cli.ts): `up` and `serve` also run the API server, whose requests
 * would wait on the pause.
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';
import { v8FlagGiven } from './young-generation.js';

/** What the work queue says of itself (workqueue.ts). */
export interface QuietSource {
  /** Reconciles run so far (a counter that only grows). */
  readonly reconciled: number;
  /** Whether nothing is queued or running now. */
  readonly idle: boolean;
}

export interface MemoryAfterBurstStats {
  /** Collections run after a burst. */
  collections: number;
  /** The last one's pause, heap committed before and after (MB). */
  lastPauseMs?: number;
  lastHeapBeforeMB?: number;
  lastHeapAfterMB?: number;
}

export interface MemoryAfterBurstOptions {
  /** Reconciles since the last collection that make a burst. */
  minReconciles?: number;
  /** How often quiet is checked (ms); a burst ends after one whole interval without a reconcile. */
  checkEveryMs?: number;
  /** The collection (default: compactingCollection). */
  collect?: () => void;
}

/**
 * A collection that compacts the old generation and gives its empty pages back, as V8's memory
 * reducer does. A plain full collection (`gc()`) frees dead objects but keeps the pages they leave
 * half empty: on a heap of 23 MB live in 117 MB committed it returned 17 MB, with --optimize-for-size
 * set for two collections 50 MB (RSS 152 → 101 MB). The flag is set only around the two
 * collections, unless node's command line sets it.
 */
export function compactingCollection(): () => void {
  v8.setFlagsFromString('--expose-gc');
  // A context created after --expose-gc has `gc`; the main context was created before it.
  const gc = runInNewContext('gc') as () => void;
  const keepFlag = v8FlagGiven('optimize-for-size');
  return () => {
    if (!keepFlag) v8.setFlagsFromString('--optimize-for-size');
    try {
      gc();
      gc();
    } finally {
      if (!keepFlag) v8.setFlagsFromString('--no-optimize-for-size');
    }
  };
}

export class MemoryAfterBurst {
  readonly s: MemoryAfterBurstStats = { collections: 0 };
  private readonly timer: NodeJS.Timeout;
  private readonly minReconciles: number;
  private readonly collect: () => void;
  /** The reconcile count at the last collection, and at the last check. */
  private atCollection: number;
  private atCheck: number;

  constructor(
    private readonly source: QuietSource,
    private readonly log: Logger,
    opts: MemoryAfterBurstOptions = {},
  ) {
    this.minReconciles = opts.minReconciles ?? 1000;
    this.collect = opts.collect ?? compactingCollection();
    this.atCollection = this.atCheck = source.reconciled;
    this.timer = setInterval(() => this.check(), opts.checkEveryMs ?? 5000);
    // The checks never keep the process alive.
    this.timer.unref();
  }

  /** One check: collects when a burst has just ended. Exposed for tests. */
  check(): boolean {
    const n = this.source.reconciled;
    const quiet = n === this.atCheck && this.source.idle;
    this.atCheck = n;
    if (!quiet || n - this.atCollection < this.minReconciles) return false;
    this.atCollection = n;
    const before = process.memoryUsage().heapTotal;
    const t0 = performance.now();
    this.collect();
    const pauseMs = Math.round((performance.now() - t0) * 10) / 10;
    const after = process.memoryUsage().heapTotal;
    const mb = (b: number) => Math.round(b / 2 ** 17) / 8;
    Object.assign(this.s, { collections: this.s.collections + 1, lastPauseMs: pauseMs, lastHeapBeforeMB: mb(before), lastHeapAfterMB: mb(after) });
    this.log.debug('heap collected after a burst of reconciles', { reconciles: n, pauseMs, heapBeforeMB: mb(before), heapAfterMB: mb(after) });
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
