/**
 * How long servers take to become Ready: from the moment the operator learns that one should run
 * (a new object, or a stopped one told to start) until its Ready condition turns True. Fed by the
 * informer's events (when a spawn starts) and by the queue after each reconcile (when it ends), so
 * reconcile itself stays stateless. The marks live in memory: after an operator restart a server
 * still on its way is timed from its creationTimestamp.
 */
import type { NotebookServer, Phase } from '../api/types.js';
import { getCondition } from './conditions.js';
import { isStopped } from './desired.js';
import type { InformerEvent } from './informer.js';

export type SpawnTrigger = 'create' | 'start';

/** Phases of a server on its way to Ready. */
const STARTING: ReadonlySet<Phase | undefined> = new Set<Phase | undefined>([undefined, 'Pending', 'Creating']);

export function isReady(obj: NotebookServer | undefined): boolean {
  return getCondition(obj?.status?.conditions, 'Ready')?.status === 'True';
}

export interface SpawnObservation {
  key: string;
  trigger: SpawnTrigger;
  seconds: number;
}

export class SpawnTimer {
  private readonly marks = new Map<string, { since: number; trigger: SpawnTrigger }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Start (or forget) timing from an informer event. */
  onEvent(ev: InformerEvent): void {
    const { key, obj, old } = ev;
    if (ev.type === 'deleted') {
      this.marks.delete(key);
      return;
    }
    if (obj.metadata.deletionTimestamp || isStopped(obj)) {
      this.marks.delete(key);
      return;
    }
    if (isReady(obj) || this.marks.has(key)) return;
    if (ev.type === 'added' && !ev.fromList) this.marks.set(key, { since: this.now(), trigger: 'create' });
    else if (ev.type === 'added') {
      // First sight after a start or relist: a server still on its way is timed from its creation.
      const created = Date.parse(obj.metadata.creationTimestamp ?? '');
      if (STARTING.has(obj.status?.phase)) this.marks.set(key, { since: Number.isNaN(created) ? this.now() : created, trigger: 'create' });
    } else if (old && isStopped(old)) this.marks.set(key, { since: this.now(), trigger: 'start' });
  }

  /** After a reconcile of `key`: the spawn ends when the object is Ready. */
  settle(key: string, obj: NotebookServer | undefined): SpawnObservation | undefined {
    const mark = this.marks.get(key);
    if (!mark || !isReady(obj)) return undefined;
    this.marks.delete(key);
    return { key, trigger: mark.trigger, seconds: Math.max(0, (this.now() - mark.since) / 1000) };
  }

  /** Servers still on their way (phase Pending/Creating or none yet), with seconds since their spawn began. */
  starting(get: (key: string) => NotebookServer | undefined): Array<{ key: string; seconds: number }> {
    const out: Array<{ key: string; seconds: number }> = [];
    const now = this.now();
    for (const [key, m] of this.marks) {
      const obj = get(key);
      if (obj && STARTING.has(obj.status?.phase)) out.push({ key, seconds: Math.max(0, (now - m.since) / 1000) });
    }
    return out;
  }

  get size(): number {
    return this.marks.size;
  }
}
