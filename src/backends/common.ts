/**
 * What the Swarm and container backends share: labels, volumes, images, commits and the Docker
 * event stream. Each backend adds only how its object is written and observed.
 */
import type Docker from 'dockerode';
import { merge, Observable, share, Subject, takeUntil, tap, type Subscription } from 'rxjs';
import { LABELS } from '../api/types.js';
import {
  BackendError,
  type ApplyResult,
  type Backend,
  type BackendEvent,
  type BackendKind,
  type DesiredServer,
  type ObservedServer,
  type PullPolicy,
  type ResolvedImage,
} from './types.js';
import { DEFAULT_CACHE, MANAGED_BY, statusOf, wrapDockerError, type BackendOptions, type CacheOptions } from './docker.js';
import { resolveImage, type PullProgress } from './images.js';

/** Label holding the host IP a server's port was asked to be published on (for observe). */
export const HOST_IP_LABEL = 'nbswarm.io/host-ip';

/** Labels written on the service/container: the caller's plus what observe and "unchanged" rely on. */
export function objectLabels(d: DesiredServer): Record<string, string> {
  return {
    ...d.labels,
    [LABELS.uid]: d.uid,
    [LABELS.namespace]: d.namespace,
    [LABELS.name]: d.name,
    [LABELS.generation]: String(d.generation),
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.specHash]: d.specHash,
    [LABELS.image]: d.image,
    [LABELS.port]: String(d.port),
    [HOST_IP_LABEL]: d.networkMode === 'host' ? '' : d.publishHostIp,
  };
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

export function labelFilter(...labels: string[]): string {
  return JSON.stringify({ label: labels });
}

export const MANAGED_FILTER = `${LABELS.managedBy}=${MANAGED_BY}`;

/** Container event actions that say nothing about a server's lifecycle (probes use exec). */
const NOISE = /^(exec_|top$|attach$|resize$|archive-path$|extract-to-dir$|copy$|export$)/;

/** States a server leaves by itself within moments, often without a Docker event. */
const IN_PROGRESS = new Set<string>(['pending', 'preparing', 'starting']);

/** What the backend last knew about one resource UID's Docker objects. */
interface CacheEntry {
  servers: ObservedServer[];
  /** When the observation began (ms): a change Docker announced after this makes the entry stale. */
  at: number;
  /** When this backend last wrote (created/updated/removed) the resource's object. */
  wroteAt?: number;
}

export abstract class BaseBackend implements Backend {
  abstract readonly kind: BackendKind;
  protected readonly closed$ = new Subject<void>();
  protected readonly streams = new Set<NodeJS.ReadableStream>();
  private hostName?: Promise<string | undefined>;
  private closing = false;

  // Observation cache (issue 7, P3): an idle resync must not cost a Docker call per server. One
  // list pass fills a snapshot by uid; our own event stream marks uids dirty; apply/remove write
  // through. Entries whose changes Docker may not announce (see settled()) expire quickly.
  private readonly cacheOpts?: CacheOptions;
  private readonly entries = new Map<string, CacheEntry>();
  /** uid → when an event about it arrived (local clock), and the object's name (for scoped lists). */
  private readonly dirty = new Map<string, { at: number; name?: string }>();
  /** uid → when an event said its object was removed. */
  private readonly goneAt = new Map<string, number>();
  /** When the last full list began; every uid absent from `entries` was missing then. */
  private listedAt?: number;
  private listing?: Promise<void>;
  private readonly images = new Map<string, { p: Promise<ResolvedImage>; at: number }>();
  private imageGen = 0;
  private shared$?: Observable<BackendEvent>;
  private watch?: Subscription;
  /** Events from this time on reach us (the stream resumes from it after a reconnect). */
  private watchSince?: number;
  private eventsLive = false;

  constructor(
    readonly docker: Docker,
    protected readonly opts: BackendOptions = {},
  ) {
    if (opts.cache !== false) this.cacheOpts = { ...DEFAULT_CACHE, ...(opts.cache ?? {}) };
  }

  /** Every managed object, observed from as few list calls as the backend can manage. */
  protected abstract listAll(): Promise<ObservedServer[]>;
  /** The objects labelled with `uid`, read from Docker now. */
  protected abstract fetchUid(uid: string): Promise<ObservedServer[]>;
  protected abstract applyNow(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult>;
  protected abstract removeNow(observed: ObservedServer): Promise<void>;
  /** Map one raw Docker event to a BackendEvent, or drop it. */
  protected abstract mapEvent(raw: any): Promise<BackendEvent | undefined> | BackendEvent | undefined;
  /** Docker event filter for this backend. */
  protected abstract eventFilters(): Record<string, string[]>;

  /**
   * Whether every change to `o` shows up on our event stream. When not (a Swarm task being
   * scheduled or retried, a task on another node), a cached observation is only kept briefly.
   */
  protected settled(_o: ObservedServer): boolean {
    return true;
  }

  async find(uid: string): Promise<ObservedServer[]> {
    if (!this.cacheOpts) return this.fetchUid(uid);
    this.ensureWatch();
    await this.ensureListed();
    const e = this.entries.get(uid);
    if (this.isStale(uid, e)) return this.refetch(uid);
    return e ? [...e.servers] : [];
  }

  async listManaged(scope?: { prefix?: string; fromCache?: boolean }): Promise<ObservedServer[]> {
    const inScope = (o: ObservedServer) => !scope?.prefix || o.name.startsWith(scope.prefix);
    if (!this.cacheOpts) return (await this.listAll()).filter(inScope);
    this.ensureWatch();
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

  async apply(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult> {
    const t0 = Date.now();
    const res = await this.applyNow(desired, image, current);
    if (this.cacheOpts && res.action !== 'unchanged') {
      // Write-through: a find right after a create must see it even before Docker's event arrives,
      // or the next reconcile would create a second object.
      this.entries.set(desired.uid, { servers: [res.observed], at: t0, wroteAt: t0 });
    }
    return res;
  }

  async remove(observed: ObservedServer): Promise<void> {
    const t0 = Date.now();
    await this.removeNow(observed);
    const uid = observed.labels[LABELS.uid];
    if (this.cacheOpts && uid) {
      const left = (this.entries.get(uid)?.servers ?? []).filter((o) => o.id !== observed.id);
      this.entries.set(uid, { servers: left, at: t0, wroteAt: t0 });
    }
  }

  private isStale(uid: string, e: CacheEntry | undefined): boolean {
    const at = e?.at ?? this.listedAt ?? 0;
    const d = this.dirty.get(uid);
    if (d !== undefined && d.at >= at) return true;
    const age = Date.now() - at;
    const ttl = this.cacheOpts!.unsettledTtlMs;
    // Observed before our event stream could tell us about changes: only a short-lived answer.
    if (!this.eventsLive || this.watchSince === undefined || at < this.watchSince) return age > ttl;
    if (e && e.servers.some((o) => !this.settled(o))) {
      // Measured (issue 7): a "starting" answer kept for 1 s made the reconciler's 100/200/400 ms
      // polls see it again after the task ran, so a spawn took up to 1.9 s instead of ~0.45 s.
      return age > (e.servers.some((o) => IN_PROGRESS.has(o.state)) ? this.cacheOpts!.progressTtlMs : ttl);
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
    const o = this.cacheOpts!;
    const age = this.listedAt === undefined ? Infinity : Date.now() - this.listedAt;
    if (age > o.maxAgeMs || (!this.eventsLive && age > o.unsettledTtlMs)) await this.refreshAll(false);
  }

  /** One full list; callers share a pass in progress unless they need one begun after now. */
  private async refreshAll(fresh: boolean): Promise<void> {
    if (this.listing) {
      const cur = this.listing;
      await cur;
      if (!fresh) return;
      if (this.listing && this.listing !== cur) return this.listing;
    }
    const started = Date.now();
    this.listing = (async () => {
      const all = await this.listAll();
      this.absorbList(all, started);
    })().finally(() => {
      this.listing = undefined;
    });
    return this.listing;
  }

  private absorbList(all: ObservedServer[], started: number): void {
    const grace = this.cacheOpts!.writeGraceMs;
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
      // A fetch or write that began after this list knows better.
      if (e && e.at > started) continue;
      this.entries.set(uid, { servers, at: started, wroteAt: e?.wroteAt });
    }
    for (const [uid, e] of this.entries) {
      if (byUid.has(uid) || e.at > started) continue;
      if (this.trustWrite(uid, e, started, grace)) continue;
      this.entries.delete(uid);
    }
    for (const [uid, d] of this.dirty) if (d.at < started) this.dirty.delete(uid);
    for (const [uid, t] of this.goneAt) if (t < started - grace) this.goneAt.delete(uid);
    this.listedAt = Math.max(this.listedAt ?? 0, started);
  }

  /** A read that says "missing" shortly after our own create is not believed unless Docker said it was removed. */
  private trustWrite(uid: string, e: CacheEntry, readStarted: number, grace: number): boolean {
    if (!e.servers.length || e.wroteAt === undefined || readStarted - e.wroteAt >= grace) return false;
    const gone = this.goneAt.get(uid);
    return gone === undefined || gone < e.wroteAt;
  }

  private async refetch(uid: string): Promise<ObservedServer[]> {
    const started = Date.now();
    const servers = await this.fetchUid(uid);
    const e = this.entries.get(uid);
    if (e && e.at > started) return [...e.servers];
    if (!servers.length && e && this.trustWrite(uid, e, started, this.cacheOpts!.writeGraceMs)) return [...e.servers];
    this.entries.set(uid, { servers, at: started, wroteAt: e?.wroteAt });
    const d = this.dirty.get(uid);
    if (d !== undefined && d.at < started) this.dirty.delete(uid);
    return [...servers];
  }

  /** Our own subscription to Docker events keeps the cache honest even when nobody else listens. */
  private ensureWatch(): void {
    if (this.watch || this.closing || !this.cacheOpts) return;
    this.watchSince = Date.now();
    this.watch = this.events().subscribe({ error: () => undefined });
  }

  private noteEvent(ev: BackendEvent): void {
    if (!ev.uid) return;
    const now = Date.now();
    this.dirty.set(ev.uid, { at: now, name: ev.name });
    if ((ev.type === 'service' && ev.action === 'remove') || (ev.type === 'container' && ev.action === 'destroy')) this.goneAt.set(ev.uid, now);
  }

  protected invalidateImages(): void {
    this.imageGen++;
    this.images.clear();
  }

  resolveImage(reference: string, pullPolicy: PullPolicy, onProgress?: (p: PullProgress) => void): Promise<ResolvedImage> {
    const policy = pullPolicy ?? this.opts.pullPolicy ?? 'ifNotPresent';
    // "always" means a pull each time it is asked; never answered from the cache.
    if (!this.cacheOpts || policy === 'always') return resolveImage(this.docker, reference, policy, onProgress);
    this.ensureWatch();
    const hit = this.images.get(reference);
    if (hit && Date.now() - hit.at <= this.cacheOpts.imageTtlMs) return hit.p;
    const gen = this.imageGen;
    const p = resolveImage(this.docker, reference, policy, onProgress);
    const entry = { p, at: Date.now() };
    this.images.set(reference, entry);
    p.then(
      () => {
        if (gen !== this.imageGen && this.images.get(reference) === entry) this.images.delete(reference);
      },
      () => {
        if (this.images.get(reference) === entry) this.images.delete(reference);
      },
    );
    return p;
  }

  protected log(level: 'debug' | 'info' | 'warn', msg: string, meta?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, meta);
  }

  /** The daemon's host name; one `docker info` however many observations ask at once. */
  protected dockerHostName(): Promise<string | undefined> {
    this.hostName ??= this.docker.info().then(
      (info: any) => String(info?.Name ?? '') || undefined,
      (err: unknown) => {
        this.hostName = undefined;
        throw wrapDockerError('docker info', err);
      },
    );
    return this.hostName;
  }

  /**
   * Create the named volumes the server mounts, labelled, before the object that uses them.
   * Existing volumes are left as they are: they hold users' files and are never recreated.
   */
  protected async ensureVolumes(d: DesiredServer): Promise<void> {
    for (const v of d.volumes) {
      if (v.type !== 'volume') continue;
      try {
        await this.docker.getVolume(v.source).inspect();
        continue;
      } catch (err) {
        if (statusOf(err) !== 404) throw wrapDockerError(`docker volume inspect ${v.source}`, err);
      }
      try {
        await this.docker.createVolume({ Name: v.source, Labels: { [LABELS.volume]: 'true', ...(v.labels ?? {}) } } as any);
      } catch (err) {
        throw wrapDockerError(`docker volume create ${v.source}`, err, 'check the volume template in the policy');
      }
    }
  }

  async commitImage(observed: ObservedServer, repo: string, tag: string, labels: Record<string, string>): Promise<string> {
    const call = `docker commit ${observed.containerId ?? '(no container)'} ${repo}:${tag}`;
    // The tag may now name another image.
    this.invalidateImages();
    if (!observed.containerId) {
      throw new BackendError(
        `cannot commit ${observed.name}: it has no container right now (state ${observed.state})`,
        'CommitFailed',
        call,
        'start the source server first; a commit needs its container',
      );
    }
    try {
      // The commit API takes the image config as the request body; Docker merges the container's
      // own config under it, so these labels are added to (and override) the container's labels.
      const res: any = await this.docker.getContainer(observed.containerId).commit({
        repo,
        tag,
        pause: true,
        comment: `nbswarm: snapshot of ${observed.name}`,
        _body: { Labels: labels },
      } as any);
      const id = String(res?.Id ?? res?.ID ?? '');
      if (!id) throw new Error(`unexpected commit answer ${JSON.stringify(res)}`);
      return id.startsWith('sha256:') ? id : `sha256:${id}`;
    } catch (err) {
      const e = wrapDockerError(call, err, 'the source container may be on another node or gone; retry when it runs', 'CommitFailed');
      throw e;
    }
  }

  /** Images still referenced by a service spec (Swarm) must not be removed; overridden there. */
  protected async imageInUseByServices(_id: string): Promise<boolean> {
    return false;
  }

  async removeImage(id: string): Promise<void> {
    this.invalidateImages();
    if (await this.imageInUseByServices(id)) {
      this.log('debug', 'image still referenced by a service, kept', { image: id });
      return;
    }
    try {
      // No force: Docker refuses (409) while any container, even a stopped one, uses the image.
      await this.docker.getImage(id).remove();
    } catch (err) {
      const s = statusOf(err);
      if (s === 404) return;
      if (s === 409) {
        this.log('debug', 'image in use, kept', { image: id, message: (err as Error).message });
        return;
      }
      throw wrapDockerError(`docker image rm ${id}`, err);
    }
  }

  /**
   * Docker events about managed objects. The daemon's stream ends when dockerd restarts or the
   * connection drops; we reconnect with back-off, resuming from the last event time so nothing in
   * between is lost (duplicates are harmless: the controller's queue coalesces them). One
   * connection is shared by every subscriber and by the observation cache; image events only
   * invalidate the image cache.
   */
  events(): Observable<BackendEvent> {
    this.shared$ ??= merge(
      this.stream(this.eventFilters(), (raw) => this.mapEvent(raw), (live) => {
        this.eventsLive = live;
      }),
      this.stream({ type: ['image'] }, () => {
        this.invalidateImages();
        return undefined;
      }),
    ).pipe(
      tap((ev) => this.noteEvent(ev)),
      takeUntil(this.closed$),
      share(),
    );
    return this.shared$;
  }

  private stream(
    filters: Record<string, string[]>,
    mapEvent: (raw: any) => Promise<BackendEvent | undefined> | BackendEvent | undefined,
    onLive?: (live: boolean) => void,
  ): Observable<BackendEvent> {
    const [first, max] = this.opts.eventsBackoffMs ?? [250, 10000];
    return new Observable<BackendEvent>((sub) => {
      let stopped = false;
      let delay = first;
      let since = Math.floor(Date.now() / 1000);
      let current: NodeJS.ReadableStream | undefined;
      let timer: NodeJS.Timeout | undefined;

      const schedule = (why: string) => {
        if (stopped) return;
        this.log('warn', 'docker event stream ended; reconnecting', { reason: why, delayMs: delay });
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, max);
      };

      const connect = async () => {
        if (stopped) return;
        let stream: NodeJS.ReadableStream;
        try {
          stream = (await this.docker.getEvents({ since, filters: JSON.stringify(filters) } as object)) as NodeJS.ReadableStream;
        } catch (err) {
          schedule((err as Error).message);
          return;
        }
        if (stopped) {
          (stream as any).destroy?.();
          return;
        }
        current = stream;
        this.streams.add(stream);
        onLive?.(true);
        let buf = '';
        let chain = Promise.resolve();
        stream.on('data', (chunk: Buffer | string) => {
          delay = first;
          buf += chunk.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let raw: any;
            try {
              raw = JSON.parse(line);
            } catch {
              continue;
            }
            if (typeof raw.time === 'number') since = Math.max(since, raw.time);
            // Keep the order of events even when mapping one needs a Docker call.
            chain = chain.then(async () => {
              try {
                const ev = await mapEvent(raw);
                if (ev && !stopped) sub.next(ev);
              } catch (err) {
                this.log('debug', 'could not map docker event', { error: (err as Error).message });
              }
            });
          }
        });
        let ended = false;
        const onEnd = (why: string) => {
          if (ended) return;
          ended = true;
          onLive?.(false);
          this.streams.delete(stream);
          schedule(why);
        };
        stream.on('end', () => onEnd('end'));
        stream.on('close', () => onEnd('close'));
        stream.on('error', (err: Error) => onEnd(err.message));
      };

      void connect();
      const closedSub = this.closed$.subscribe(() => sub.complete());
      return () => {
        stopped = true;
        onLive?.(false);
        closedSub.unsubscribe();
        if (timer) clearTimeout(timer);
        if (current) {
          this.streams.delete(current);
          (current as any).destroy?.();
        }
      };
    }).pipe(takeUntil(this.closed$));
  }

  protected containerEvent(raw: any): BackendEvent | undefined {
    const attrs = raw?.Actor?.Attributes ?? {};
    if (attrs[LABELS.managedBy] !== MANAGED_BY) return undefined;
    const action = String(raw.Action ?? raw.status ?? '');
    if (NOISE.test(action)) return undefined;
    return { uid: attrs[LABELS.uid], name: attrs.name, type: 'container', action: action.split(':')[0], time: eventTime(raw) };
  }

  async close(): Promise<void> {
    this.closing = true;
    this.closed$.next();
    this.watch?.unsubscribe();
    for (const s of this.streams) (s as any).destroy?.();
    this.streams.clear();
  }
}

export function eventTime(raw: any): number {
  if (typeof raw?.timeNano === 'number') return Math.floor(raw.timeNano / 1e6);
  if (typeof raw?.time === 'number') return raw.time * 1000;
  return Date.now();
}
