/**
 * Batched reads by key: callers that ask while a read is in flight, or within the spacing of the
 * previous read, share ONE next read for all their keys. That read begins after each of them
 * asked, so its answer is as fresh as a read of their own.
 *
 * Why: while Swarm tasks are pending nothing announces their progress, so every server being
 * spawned is polled, and a burst of 20 made ~100 service lists plus ~120 task lists, each a store
 * walk in the manager that also slows its scheduling. Sharing reads halved those lists.
 */
type Waiter<V> = { resolve: (v: V) => void; reject: (e: unknown) => void };

export interface ReadBatcherOptions {
  /** Shortest gap between two reads, given how many keys wait for the next one. */
  spacingMs: (waitingKeys: number) => number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export class ReadBatcher<K, V> {
  private waiting = new Map<K, Waiter<V>[]>();
  private draining = false;
  private lastReadAt = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  /** `read` answers for a batch of keys; a key it leaves out gets `missing`. */
  constructor(
    private readonly read: (keys: K[]) => Promise<Map<K, V>>,
    private readonly missing: V,
    private readonly opts: ReadBatcherOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  get(key: K): Promise<V> {
    return new Promise((resolve, reject) => {
      const w = this.waiting.get(key);
      if (w) w.push({ resolve, reject });
      else this.waiting.set(key, [{ resolve, reject }]);
      if (!this.draining) {
        this.draining = true;
        // Callers of the same tick join this read.
        queueMicrotask(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.size) {
        const wait = this.lastReadAt + this.opts.spacingMs(this.waiting.size) - this.now();
        if (wait > 0) await this.sleep(wait);
        this.lastReadAt = this.now();
        const batch = this.waiting;
        this.waiting = new Map();
        try {
          const got = await this.read([...batch.keys()]);
          for (const [key, ws] of batch) for (const w of ws) w.resolve(got.get(key) ?? this.missing);
        } catch (err) {
          for (const ws of batch.values()) for (const w of ws) w.reject(err);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
