/** Events past their TTL are deleted (kube's --event-ttl), so progress reports do not pile up forever. */
import { errorFields, type Logger } from '../../log.js';
import type { Store } from '../storage/sqlite.js';
import type { CoreEvent, StoredObject } from '../types.js';

const EVENTS = '/events';

/** When an Event last happened: its newest timestamp of any kind. */
function lastSeen(e: CoreEvent): number {
  return Date.parse(e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.metadata.creationTimestamp ?? '');
}

export class EventExpiry {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly storage: Store,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    // Checked at least every minute, and twice per TTL when that is shorter (tests use seconds).
    this.timer = setInterval(() => this.expire(), Math.min(60_000, ttlSeconds * 500));
    this.timer.unref();
  }

  /** Deletes the Events older than the TTL at `now`; returns how many. */
  expire(now = Date.now()): number {
    const cutoff = now - this.ttlSeconds * 1000;
    let n = 0;
    try {
      const old: StoredObject[] = [];
      for (const e of this.storage.iterate(EVENTS, null)) {
        const t = lastSeen(e as CoreEvent);
        if (!Number.isNaN(t) && t < cutoff) old.push(e);
      }
      for (const e of old) {
        this.storage.write('DELETED', EVENTS, e.metadata.namespace ?? '', e.metadata.name, e, e);
        n++;
      }
    } catch (e) {
      this.log.warn('event expiry failed', errorFields(e, 'events'));
    }
    return n;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
