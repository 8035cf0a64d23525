/**
 * What the Swarm and container backends share: the Docker observer (snapshot + event stream),
 * image resolution, volumes, commits and image removal. Each backend adds only how its object is
 * written and read.
 */
import type Docker from 'dockerode';
import { merge, Observable, share, Subject, takeUntil, tap, type Subscription } from 'rxjs';
import { LABELS, MANAGED_BY } from '../api/names.js';
import type { Logger } from '../log.js';
import { dockerEventStream, eventTime } from './docker-events.js';
import { DockerObserver, type ObservationSource } from './docker-observer.js';
import { DEFAULT_CACHE, statusOf, wrapDockerError, type BackendOptions } from './docker.js';
import { ImageCache, resolveImage, type PullProgress } from './images.js';
import { volumeOwnerConflict, volumeOwnerError } from './volume-owner.js';
import {
  BackendError,
  type ApplyResult,
  type Backend,
  type BackendEvent,
  type BackendKind,
  type ClusterView,
  type DesiredServer,
  type ObservedServer,
  type PullPolicy,
  type RegistryAuth,
  type ResolvedImage,
} from './types.js';

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

export function labelFilter(...labels: string[]): string {
  return JSON.stringify({ label: labels });
}

export const MANAGED_FILTER = `${LABELS.managedBy}=${MANAGED_BY}`;

/** target → volume name of the named-volume mounts in a Docker answer (the key names differ per call). */
export function namedVolumes(mounts: unknown, nameKey: string, targetKey: string): Record<string, string> | undefined {
  if (!Array.isArray(mounts)) return undefined;
  const out: Record<string, string> = {};
  for (const m of mounts) {
    const name = m?.[nameKey];
    const target = m?.[targetKey];
    if (m?.Type === 'volume' && typeof name === 'string' && name && typeof target === 'string') out[target] = name;
  }
  return out;
}

/** Container event actions that say nothing about a server's lifecycle (probes use exec). */
const NOISE = /^(exec_|top$|attach$|resize$|archive-path$|extract-to-dir$|copy$|export$)/;

export abstract class BaseBackend implements Backend, ObservationSource {
  abstract readonly kind: BackendKind;
  protected readonly closed$ = new Subject<void>();
  /** Open Docker event streams, cut on close(). */
  protected readonly streams = new Set<NodeJS.ReadableStream>();
  protected readonly log?: Logger;
  /** Undefined when caching is off: every read goes to Docker. */
  private readonly observer?: DockerObserver;
  protected readonly images?: ImageCache;
  private hostName?: Promise<string | undefined>;
  private closing = false;
  private shared$?: Observable<BackendEvent>;
  /** Our own subscription to the events, which keeps the observer honest even when nobody else listens. */
  private watch?: Subscription;

  constructor(
    readonly docker: Docker,
    protected readonly opts: BackendOptions = {},
  ) {
    this.log = opts.log;
    if (opts.cache !== false) {
      const cache = { ...DEFAULT_CACHE, ...(opts.cache ?? {}) };
      this.observer = new DockerObserver(this, cache);
      this.images = new ImageCache(cache.imageTtlMs);
    }
  }

  /** Every managed object, observed from as few list calls as the backend can manage. */
  abstract listAll(): Promise<ObservedServer[]>;
  /** The objects labelled with `uid`, read from Docker now. */
  abstract fetchUid(uid: string): Promise<ObservedServer[]>;
  protected abstract applyNow(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer, opts?: { auth?: RegistryAuth }): Promise<ApplyResult>;
  protected abstract removeNow(observed: ObservedServer): Promise<void>;
  protected abstract restartNow(observed: ObservedServer): Promise<ObservedServer>;
  /** Map one raw Docker event to a BackendEvent, or drop it. */
  protected abstract mapEvent(raw: any): Promise<BackendEvent | undefined> | BackendEvent | undefined;
  /** Docker event filter for this backend. */
  protected abstract eventFilters(): Record<string, string[]>;

  /**
   * Whether every change to `o` shows up on our event stream. When not (a Swarm task being
   * scheduled or retried, a task on another node), the observer keeps it only briefly.
   */
  settled(_o: ObservedServer): boolean {
    return true;
  }

  find(uid: string): Promise<ObservedServer[]> {
    if (!this.observer) return this.fetchUid(uid);
    this.ensureWatch();
    return this.observer.find(uid);
  }

  async listManaged(scope?: { prefix?: string; fromCache?: boolean }): Promise<ObservedServer[]> {
    if (!this.observer) return (await this.listAll()).filter((o) => !scope?.prefix || o.name.startsWith(scope.prefix));
    this.ensureWatch();
    return this.observer.listManaged(scope);
  }

  async apply(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer, opts?: { auth?: RegistryAuth }): Promise<ApplyResult> {
    const t0 = Date.now();
    const res = await this.applyNow(desired, image, current, opts);
    if (res.action !== 'unchanged') this.observer?.wrote(desired.uid, [res.observed], t0);
    return res;
  }

  async remove(observed: ObservedServer): Promise<void> {
    const t0 = Date.now();
    await this.removeNow(observed);
    const uid = observed.labels[LABELS.uid];
    if (uid) this.observer?.removed(uid, observed.id, t0);
  }

  async restart(observed: ObservedServer): Promise<ObservedServer> {
    const t0 = Date.now();
    const after = await this.restartNow(observed);
    const uid = observed.labels[LABELS.uid];
    if (uid) this.observer?.wrote(uid, [after], t0);
    return after;
  }

  private ensureWatch(): void {
    if (this.watch || this.closing || !this.observer) return;
    this.observer.watchingFrom(Date.now());
    this.watch = this.events().subscribe({ error: () => undefined });
  }

  resolveImage(reference: string, pullPolicy: PullPolicy, onProgress?: (p: PullProgress) => void, opts?: { auth?: RegistryAuth }): Promise<ResolvedImage> {
    const policy = pullPolicy ?? this.opts.pullPolicy ?? 'ifNotPresent';
    // "always" means a pull each time it is asked; never answered from the cache.
    if (!this.images || policy === 'always') return this.resolveFresh(reference, policy, onProgress, opts);
    this.ensureWatch();
    return this.images.get(reference, () => this.resolveFresh(reference, policy, onProgress, opts));
  }

  /** Resolve `reference` from Docker now (the cache in front of it is resolveImage's). */
  protected resolveFresh(
    reference: string,
    pullPolicy: PullPolicy,
    onProgress?: (p: PullProgress) => void,
    _opts?: { auth?: RegistryAuth },
  ): Promise<ResolvedImage> {
    return resolveImage(this.docker, reference, pullPolicy, onProgress);
  }

  /** One Docker host: servers run where the daemon is. The Swarm backend reads its nodes. */
  async cluster(): Promise<ClusterView> {
    return { multiNode: false, nodes: [] };
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
        const existing = (await this.docker.getVolume(v.source).inspect()) as { Labels?: Record<string, string> };
        const problem = volumeOwnerConflict(existing.Labels ?? undefined, v.labels);
        if (problem) throw volumeOwnerError(v.source, problem);
        continue;
      } catch (err) {
        if (err instanceof BackendError) throw err;
        if (statusOf(err) !== 404) throw wrapDockerError(`docker volume inspect ${v.source}`, err);
      }
      try {
        await this.docker.createVolume({
          Name: v.source,
          Labels: { [LABELS.volume]: 'true', ...(v.labels ?? {}) },
          Driver: v.driver,
          DriverOpts: v.driverOptions,
        } as any);
      } catch (err) {
        throw wrapDockerError(`docker volume create ${v.source}`, err, 'check the volume template in the policy');
      }
    }
  }

  async listVolumes(labels: Record<string, string>): Promise<string[]> {
    const filter = labelFilter(...Object.entries(labels).map(([k, v]) => `${k}=${v}`));
    try {
      const res = await this.docker.listVolumes({ filters: filter } as object);
      return (res.Volumes ?? []).map((v) => v.Name);
    } catch (err) {
      throw wrapDockerError('docker volume ls', err);
    }
  }

  async removeVolume(name: string): Promise<'removed' | 'absent'> {
    try {
      await this.docker.getVolume(name).remove();
      return 'removed';
    } catch (err) {
      if (statusOf(err) === 404) return 'absent';
      throw wrapDockerError(
        `docker volume rm ${name}`,
        err,
        statusOf(err) === 409 ? 'a container still uses the volume; it is removed once that container is gone' : undefined,
      );
    }
  }

  async commitImage(observed: ObservedServer, repo: string, tag: string, labels: Record<string, string>, _opts?: { auth?: RegistryAuth }): Promise<string> {
    const call = `docker commit ${observed.containerId ?? '(no container)'} ${repo}:${tag}`;
    // The tag may now name another image.
    this.images?.invalidate();
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
      throw wrapDockerError(call, err, 'the source container may be on another node or gone; retry when it runs', 'CommitFailed');
    }
  }

  /** Images still referenced by a service spec (Swarm) must not be removed; overridden there. */
  protected async imageInUseByServices(_id: string): Promise<boolean> {
    return false;
  }

  async removeImage(id: string): Promise<void> {
    this.images?.invalidate();
    if (await this.imageInUseByServices(id)) {
      this.log?.debug('image still referenced by a service, kept', { image: id });
      return;
    }
    try {
      // No force: Docker refuses (409) while any container, even a stopped one, uses the image.
      await this.docker.getImage(id).remove();
    } catch (err) {
      const s = statusOf(err);
      if (s === 404) return;
      if (s === 409) {
        this.log?.debug('image in use, kept', { image: id, error: (err as Error).message });
        return;
      }
      throw wrapDockerError(`docker image rm ${id}`, err);
    }
  }

  /**
   * Docker events about managed objects. One connection is shared by every subscriber and by the
   * observer; image events only invalidate the image cache.
   */
  events(): Observable<BackendEvent> {
    const common = { streams: this.streams, backoffMs: this.opts.eventsBackoffMs, log: this.log };
    this.shared$ ??= merge(
      dockerEventStream(this.docker, {
        ...common,
        filters: this.eventFilters(),
        map: (raw) => this.mapEvent(raw),
        onLive: (live) => this.observer?.setLive(live),
      }),
      dockerEventStream(this.docker, {
        ...common,
        filters: { type: ['image'] },
        map: () => {
          this.images?.invalidate();
          return undefined;
        },
      }),
    ).pipe(
      tap((ev) => this.observer?.noteEvent(ev)),
      takeUntil(this.closed$),
      share(),
    );
    return this.shared$;
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
