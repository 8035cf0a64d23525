/**
 * What the Swarm and container backends share: labels, volumes, images, commits and the Docker
 * event stream. Each backend adds only how its object is written and observed.
 */
import type Docker from 'dockerode';
import { Observable, Subject, takeUntil } from 'rxjs';
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
import { MANAGED_BY, statusOf, wrapDockerError, type BackendOptions } from './docker.js';
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

export abstract class BaseBackend implements Backend {
  abstract readonly kind: BackendKind;
  protected readonly closed$ = new Subject<void>();
  protected readonly streams = new Set<NodeJS.ReadableStream>();
  private hostName?: string;

  constructor(
    readonly docker: Docker,
    protected readonly opts: BackendOptions = {},
  ) {}

  abstract find(uid: string): Promise<ObservedServer[]>;
  abstract listManaged(): Promise<ObservedServer[]>;
  abstract apply(desired: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult>;
  abstract remove(observed: ObservedServer): Promise<void>;
  /** Map one raw Docker event to a BackendEvent, or drop it. */
  protected abstract mapEvent(raw: any): Promise<BackendEvent | undefined> | BackendEvent | undefined;
  /** Docker event filter for this backend. */
  protected abstract eventFilters(): Record<string, string[]>;

  resolveImage(reference: string, pullPolicy: PullPolicy, onProgress?: (p: PullProgress) => void): Promise<ResolvedImage> {
    return resolveImage(this.docker, reference, pullPolicy ?? this.opts.pullPolicy ?? 'ifNotPresent', onProgress);
  }

  protected log(level: 'debug' | 'info' | 'warn', msg: string, meta?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, meta);
  }

  protected async dockerHostName(): Promise<string | undefined> {
    if (this.hostName === undefined) {
      try {
        const info: any = await this.docker.info();
        this.hostName = String(info?.Name ?? '');
      } catch (err) {
        throw wrapDockerError('docker info', err);
      }
    }
    return this.hostName || undefined;
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
   * between is lost (duplicates are harmless: the controller's queue coalesces them).
   */
  events(): Observable<BackendEvent> {
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
          stream = (await this.docker.getEvents({ since, filters: JSON.stringify(this.eventFilters()) } as object)) as NodeJS.ReadableStream;
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
                const ev = await this.mapEvent(raw);
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
    return { uid: attrs[LABELS.uid], type: 'container', action: action.split(':')[0], time: eventTime(raw) };
  }

  async close(): Promise<void> {
    this.closed$.next();
    for (const s of this.streams) (s as any).destroy?.();
    this.streams.clear();
  }
}

export function eventTime(raw: any): number {
  if (typeof raw?.timeNano === 'number') return Math.floor(raw.timeNano / 1e6);
  if (typeof raw?.time === 'number') return raw.time * 1000;
  return Date.now();
}
