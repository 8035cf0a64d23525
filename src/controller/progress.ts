/**
 * How often to look again at a server that is on its way (per key, per stage): the task pending,
 * being prepared or started (Swarm task states raise no Docker event), then running but its server
 * not answering yet. This is the queue layer's memory of "how long has this key been polled", so
 * that reconcile itself stays a function of the caches and Docker.
 *
 * Each stage usually lasts tens to a few hundred ms, so polls start short and double up to a cap;
 * a fixed 400 ms step cost up to that much on every spawn. Polls are cheap: the Swarm backend
 * shares one read among all servers polling within 40 ms of each other. Requeues rather than an
 * inline loop keep the queue slot free for other keys between polls.
 */
import type { ReconcileOutcome } from './workqueue.js';

const PROBE_FIRST_MS = 25;
const PROBE_MAX_MS = 1000;
/**
 * A stage is polled at its first delay for this long before the delay doubles: Swarm's stages
 * (pending, assigned, preparing, starting) each last 50–300 ms, and doubling from 25 ms left gaps
 * of 100–200 ms by then, so a spawn saw its task running ~50 ms (median) after it was.
 */
const STAGE_FAST_MS = 1000;
/**
 * …but only while few servers are in progress: in a burst the Swarm backend reads every 40 ms
 * whatever the polls ask, and fast polls only added reconciles and Docker reads (a burst of 200
 * listed services 536 times instead of 458) on the cores dockerd needs.
 */
const STAGE_FAST_MAX_IN_PROGRESS = 4;
/**
 * The last stage (the container runs, its server does not answer yet) is polled with an HTTP probe
 * of the server on loopback and a read of the backend's event-kept snapshot: no Docker call, so it
 * stays quick in a burst too. Doubling to 1 s there made a burst of 10 Jupyter servers (3–5 s each
 * to answer) report Ready ~0.5 s late on average, against a raw poll of 25 ms.
 */
export const ANSWERING_STAGE = 'answering';
const ANSWERING_MAX_MS = 100;
/**
 * …and while many servers are in progress, their answering polls together stay near 40 a second
 * (the cap is 25 ms per server in progress, at most PROBE_MAX_MS): each is a whole reconcile and a
 * refused connect, and in a hub burst of 10 Jupyter servers (13 s each to answer on 2 cores) 100 ms
 * polls were ~1,300 reconciles taking CPU from the servers' own boot.
 */
const ANSWERING_SPACING_MS = 25;
/**
 * A stopped server whose task Swarm still reports running: the container's exit raises a Docker
 * event, but Swarm's report of the task down (what Stopped waits for) raises none and follows it
 * by tens to hundreds of ms. A fixed 1 s look-again made every hub stop wait up to that long.
 */
export const STOPPING_STAGE = 'stopping';

/** What a reconcile returns: a requeue delay, or the stage of a server in progress (polled). */
export interface ReconcileResult {
  requeueAfterMs?: number;
  progress?: string;
}

export class ProgressClock {
  private readonly keys = new Map<string, { stage: string; since: number; next: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The delay before `key`, now in `stage`, is looked at again. */
  next(key: string, stage: string): number {
    // A new stage (pending → preparing → starting → answering) starts its own sequence from its
    // first delay: the next stage usually follows within tens of ms.
    const now = this.now();
    const cur = this.keys.get(key);
    const same = cur !== undefined && cur.stage === stage;
    const d = same ? cur.next : PROBE_FIRST_MS;
    const since = same ? cur.since : now;
    const fast = now - since < STAGE_FAST_MS && this.keys.size <= STAGE_FAST_MAX_IN_PROGRESS;
    const max = stage === ANSWERING_STAGE ? Math.min(PROBE_MAX_MS, Math.max(ANSWERING_MAX_MS, ANSWERING_SPACING_MS * this.keys.size)) : PROBE_MAX_MS;
    this.keys.set(key, { stage, since, next: fast ? PROBE_FIRST_MS : Math.min(max, d * 2) });
    return Math.min(max, d);
  }

  /**
   * Poll from short again: the key is no longer in progress, or Docker just announced a change
   * (e.g. the task's container started) and the next step usually follows within milliseconds.
   */
  reset(key: string): void {
    this.keys.delete(key);
  }

  /** The queue's outcome for a reconcile result: a stage in progress becomes its poll delay. */
  outcome(key: string, res: ReconcileResult | void): ReconcileOutcome | undefined {
    if (res?.progress !== undefined) return { requeueAfterMs: this.next(key, res.progress) };
    this.reset(key);
    return res?.requeueAfterMs !== undefined ? { requeueAfterMs: res.requeueAfterMs } : undefined;
  }

  /** Keys in progress now. */
  get size(): number {
    return this.keys.size;
  }
}
