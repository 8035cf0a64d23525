/**
 * The Docker observer: a snapshot of the operator's Docker objects by resource UID, so an idle
 * resync costs no Docker call per server (1,000 idle servers must cost a handful of list calls per
 * resync, not 1,000 reads). One full list fills it; the backend's own Docker event stream marks UIDs
 * dirty (their next read goes to Docker); the backend's writes go through it. An answer Docker may
 * change without an event on our stream (a Swarm task being scheduled or retried, a task on
 * another node, anything before the stream was open) is kept only briefly.
 *
 * The clock is injected, so every expiry rule is unit-tested without waiting.
 */
import { LABELS } from '../api/names.js';
import type { BackendEvent, ObservedServer } from './types.js';

export interface ObserverOptions {
  /** A full list older than this is taken again even when the event stream reported nothing. */
  maxAgeMs: number;
  /** Entries whose changes Docker may not announce by event (a Swarm task being scheduled, a task on another node) are re-read after this. */
  unsettledTtlMs: number;
  /**
   * The same for an object in progress (task pending/preparing/starting): it moves on within
   * moments and callers poll for that, so a cached answer must not hide it. Coalesces reads only.
   */
  progressTtlMs: number;
  /** A list that says "missing" within this long after our own create is not believed (the write-through entry wins). */
  writeGraceMs: number;
  /**
   * After a Swarm task's container died, how long observations of its server last only
   * unsettledTtl: the manager reports the task ended (and restarts it or gives up) after the
   * container's event, with no event of its own, so a read taken at the container's death still
   * shows the task running.
   */
  taskReportLagMs: number;
}

export const DEFAULT_OBSERVER_OPTIONS: ObserverOptions = {
  maxAgeMs: 30_000,
  unsettledTtlMs: 1000,
  progressTtlMs: 20,
  writeGraceMs: 5000,
  taskReportLagMs: 10_000,
};

/** Task container events after which Swarm's report of the task lags (see taskReportLagMs). */
const TASK_ENDED = new Set(['die', 'kill', 'oom']);

/** How the observer reads Docker: the backend's list and per-UID read, and which observations events keep current. */
export interface ObservationSource {
  /** Every managed object, from as few list calls as the backend can manage. */
  listAll(): Promise<ObservedServer[]>;
  /** The objects labelled with `uid`, read from Docker now. */
  fetchUid(uid: string): Promise<ObservedServer[]>;
  /** Whether every later change to `o` shows up on the backend's event stream. */
  settled(o: ObservedServer): boolean;
}

/** States a server leaves by itself within moments, often without a Docker event. */
const IN_PROGRESS = new Set<string>(['pending', 'preparing', 'starting']);

/** What the observer last knew about one resource UID's Docker objects. */
interface Entry {
  servers: ObservedServer[];
  /** When the observation began (ms): a change Docker announced after this makes the entry stale. */
  at: number;
  /** When the backend last wrote (created/updated/removed) the resource's object. */
  wroteAt?: number;
  /**
   * When that write (and the read of its result) had finished: a read that began before this may
   * have reached Docker before the write did, so it never replaces the write's own observation.
   */
  writeDoneAt?: number;
}

/** Whether `e` knows more than a read begun at `started`: it was observed later, or a write was still under way then. */
function knowsMoreThan(e: Entry, started: number): boolean {
  return e.at > started || (e.writeDoneAt ?? -Infinity) > started;
}

export class DockerObserver {
  private readonly entries = new Map<string, Entry>();
  /** uid → when an event about it arrived, and the object's name (for scoped lists). */
  private readonly dirty = new Map<string, { at: number; name?: string }>();
  /** uid → when an event said its object was removed. */
  private readonly goneAt = new Map<string, number>();
  /** uid → when one of its Swarm task containers died (see taskReportLagMs). */
  private readonly taskEndedAt = new Map<string, number>();
  /** When the last full list began; every uid absent from `entries` was missing then. */
  private listedAt?: number;
  private listing?: Promise<void>;
  /** Events from this time on reach us (the stream resumes from it after a reconnect). */
  private watchSince?: number;
  private eventsLive = false;

  constructor(
    private readonly source: ObservationSource,
    private readonly opts: ObserverOptions = DEFAULT_OBSERVER_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The backend subscribed to its events now: changes from here on are announced. */
  watchingFrom(at = this.now()): void {
    this.watchSince = at;
  }

  /** A Docker event stream opened (true) or ended (false). */
  setLive(live: boolean): void {
    this.eventsLive = live;
  }

  noteEvent(ev: BackendEvent): void {
    if (ev.type === 'node') return this.noteNode(ev.name);
    if (!ev.uid) return;
    const now = this.now();
    this.dirty.set(ev.uid, { at: now, name: ev.name });
    if ((ev.type === 'service' && ev.action === 'remove') || (ev.type === 'container' && ev.action === 'destroy')) this.goneAt.set(ev.uid, now);
    if (ev.type === 'task' && TASK_ENDED.has(ev.action)) this.taskEndedAt.set(ev.uid, now);
  }

  /** Whether Swarm may not yet have reported the end of a task of `uid` whose container died. */
  private awaitingTaskReport(uid: string): boolean {
    const at = this.taskEndedAt.get(uid);
    if (at === undefined) return false;
    if (this.now() - at < this.opts.taskReportLagMs) return true;
    this.taskEndedAt.delete(uid);
    return false;
  }

  /**
   * A Swarm node changed (down, drained, back): its tasks move or stop without an event of their
   * own, so everything observed on it (or pinned to it) is read again. Without a name, everything.
   */
  private noteNode(hostname: string | undefined): void {
    const now = this.now();
    for (const [uid, e] of this.entries) {
      if (hostname === undefined || e.servers.some((o) => o.node === hostname || o.pinNode === hostname || o.node === undefined))
        this.dirty.set(uid, { at: now, name: e.servers[0]?.name });
    }
  }

  async find(uid: string): Promise<ObservedServer[]> {
    await this.ensureListed();
    const e = this.entries.get(uid);
    if (this.isStale(uid, e)) return this.refetch(uid);
    return e ? [...e.servers] : [];
  }

  /**
   * Every managed object in scope. Read from Docker now, unless `fromCache`: then the snapshot
   * answers when nothing in scope is stale.
   */
  async listManaged(scope?: { prefix?: string; fromCache?: boolean }): Promise<ObservedServer[]> {
    const inScope = (o: ObservedServer) => !scope?.prefix || o.name.startsWith(scope.prefix);
    if (!scope?.fromCache) await this.refreshAll(true);
    else {
      await this.ensureListed();
      // Changes to other operators' objects (a shared daemon) cost this scope nothing.
      if (this.anyStale(scope.prefix)) await this.refreshAll(true);
    }
    const out: ObservedServer[] = [];
    for (const e of this.entries.values()) for (const o of e.servers) if (inScope(o)) out.push(o);
    return out;
  }

  /**
   * The backend wrote `uid`'s object (begun at `startedAt`) and now observes `servers`: a find
   * right after a create must see it even before Docker's event arrives, or the next reconcile
   * would create a second object.
   */
  wrote(uid: string, servers: ObservedServer[], startedAt: number): void {
    this.entries.set(uid, { servers, at: startedAt, wroteAt: startedAt, writeDoneAt: this.now() });
  }

  /** The backend removed object `id` of `uid` (begun at `startedAt`). */
  removed(uid: string, id: string, startedAt: number): void {
    const left = (this.entries.get(uid)?.servers ?? []).filter((o) => o.id !== id);
    this.wrote(uid, left, startedAt);
  }

  private isStale(uid: string, e: Entry | undefined): boolean {
    const at = e?.at ?? this.listedAt ?? 0;
    const d = this.dirty.get(uid);
    if (d !== undefined && d.at >= at) return true;
    const age = this.now() - at;
    const ttl = this.opts.unsettledTtlMs;
    // Observed before our event stream could tell us about changes: only a short-lived answer.
    if (!this.eventsLive || this.watchSince === undefined || at < this.watchSince) return age > ttl;
    if (e && (this.awaitingTaskReport(uid) || e.servers.some((o) => !this.source.settled(o)))) {
      // Measured: a "starting" answer kept for 1 s made the reconciler's 100/200/400 ms polls see
      // it again after the task ran, so a spawn took up to 1.9 s instead of ~0.45 s.
      return age > (e.servers.some((o) => IN_PROGRESS.has(o.state)) ? this.opts.progressTtlMs : ttl);
    }
    return false;
  }

  private anyStale(prefix?: string): boolean {
    for (const [uid, e] of this.entries) {
      if (prefix && e.servers.length && !e.servers.some((o) => o.name.startsWith(prefix))) continue;
      if (this.isStale(uid, e)) return true;
    }
    for (const [uid, d] of this.dirty) {
      if (prefix && d.name !== undefined && !d.name.startsWith(prefix)) continue;
      if (!this.entries.has(uid) && this.isStale(uid, undefined)) return true;
    }
    return false;
  }

  private async ensureListed(): Promise<void> {
    const age = this.listedAt === undefined ? Infinity : this.now() - this.listedAt;
    if (age > this.opts.maxAgeMs || (!this.eventsLive && age > this.opts.unsettledTtlMs)) await this.refreshAll(false);
  }

  /** One full list; callers share a pass in progress unless they need one begun after now. */
  private async refreshAll(fresh: boolean): Promise<void> {
    if (this.listing) {
      const cur = this.listing;
      await cur;
      if (!fresh) return;
      if (this.listing && this.listing !== cur) return this.listing;
    }
    const started = this.now();
    this.listing = (async () => {
      const all = await this.source.listAll();
      this.absorbList(all, started);
    })().finally(() => {
      this.listing = undefined;
    });
    return this.listing;
  }

  private absorbList(all: ObservedServer[], started: number): void {
    const grace = this.opts.writeGraceMs;
    const byUid = new Map<string, ObservedServer[]>();
    for (const o of all) {
      const uid = o.labels[LABELS.uid];
      if (!uid) continue;
      const l = byUid.get(uid);
      if (l) l.push(o);
      else byUid.set(uid, [o]);
    }
    for (const [uid, servers] of byUid) {
      const e = this.entries.get(uid);
      // A fetch or write that began after this list knows better, and so does a write that was
      // still under way when the list began.
      if (e && knowsMoreThan(e, started)) continue;
      this.entries.set(uid, { servers, at: started, wroteAt: e?.wroteAt });
    }
    for (const [uid, e] of this.entries) {
      if (byUid.has(uid) || knowsMoreThan(e, started)) continue;
      if (this.trustWrite(uid, e, started, grace)) continue;
      this.entries.delete(uid);
    }
    for (const [uid, d] of this.dirty) if (d.at < started) this.dirty.delete(uid);
    for (const [uid, t] of this.goneAt) if (t < started - grace) this.goneAt.delete(uid);
    this.listedAt = Math.max(this.listedAt ?? 0, started);
  }

  /** A read that says "missing" shortly after our own create is not believed unless Docker said it was removed. */
  private trustWrite(uid: string, e: Entry, readStarted: number, grace: number): boolean {
    if (!e.servers.length || e.wroteAt === undefined || readStarted - e.wroteAt >= grace) return false;
    const gone = this.goneAt.get(uid);
    return gone === undefined || gone < e.wroteAt;
  }

  private async refetch(uid: string): Promise<ObservedServer[]> {
    const started = this.now();
    const servers = await this.source.fetchUid(uid);
    const e = this.entries.get(uid);
    if (e && knowsMoreThan(e, started)) return [...e.servers];
    if (!servers.length && e && this.trustWrite(uid, e, started, this.opts.writeGraceMs)) return [...e.servers];
    this.entries.set(uid, { servers, at: started, wroteAt: e?.wroteAt });
    const d = this.dirty.get(uid);
    if (d !== undefined && d.at < started) this.dirty.delete(uid);
    return [...servers];
  }
}
