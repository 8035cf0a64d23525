/**
 * Docker connection, error wrapping (a failure names the Docker call, the daemon's message and a
 * hint) and backend selection.
 */
import Docker from 'dockerode';
import type { Logger } from '../log.js';
import { applyDockerDeadlines, DOCKER_TIMEOUT_CODE, type DockerDeadlines } from './docker-deadlines.js';
import { DEFAULT_OBSERVER_OPTIONS, type ObserverOptions } from './docker-observer.js';
import { BackendError, type Backend, type BackendKind, type PullPolicy } from './types.js';

export interface ConnectOptions {
  /** Overrides DOCKER_HOST; unix socket path, or tcp://host:port / http://host:port. */
  host?: string;
}

/**
 * Connect the way the docker CLI does: DOCKER_HOST when set, else the local socket. Dockerode reads
 * DOCKER_HOST itself; an explicit host is parsed here so the operator can be pointed elsewhere by flag.
 */
export function connectDocker(opts: ConnectOptions = {}): Docker {
  const host = opts.host ?? process.env.DOCKER_HOST;
  if (!host) return new Docker({ socketPath: '/var/run/docker.sock' });
  if (host.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  if (host.startsWith('/')) return new Docker({ socketPath: host });
  const u = new URL(host.replace(/^tcp:/, 'http:'));
  return new Docker({ host: u.hostname, port: Number(u.port || 2375), protocol: u.protocol === 'https:' ? 'https' : 'http' });
}

/** HTTP status of a dockerode error, if the daemon answered at all. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The daemon's own message (dockerode puts it in json.message), else the error text. */
export function daemonMessage(err: unknown): string {
  const e = err as { json?: { message?: string } | string | null; message?: string; reason?: string };
  if (e?.json && typeof e.json === 'object' && typeof e.json.message === 'string') return e.json.message.trim();
  if (typeof e?.json === 'string' && e.json.trim()) return e.json.trim();
  return String(e?.message ?? err)
    .replace(/^\(HTTP code \d+\)\s*/, '')
    .trim();
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'EPIPE']);

/**
 * Turn a dockerode failure into a BackendError that says which call failed, with what status and
 * daemon message, and what to do about it. Already-wrapped errors pass through unchanged.
 */
export function wrapDockerError(call: string, err: unknown, hint?: string, reason?: BackendError['reason']): BackendError {
  if (err instanceof BackendError) return err;
  const code = (err as { code?: string })?.code;
  const status = statusOf(err);
  if (code === DOCKER_TIMEOUT_CODE) {
    return new BackendError(
      `${call}: the Docker daemon did not answer within ${Math.round(((err as { timeoutMs?: number }).timeoutMs ?? 0) / 100) / 10} s`,
      'DockerUnavailable',
      call,
      hint ?? 'dockerd accepts connections but does not answer: check `docker info` and the daemon log; the call is retried with back-off',
      err,
    );
  }
  if (code && UNREACHABLE.has(code) && status === undefined) {
    return new BackendError(
      `${call}: cannot reach the Docker daemon (${code}: ${(err as Error).message})`,
      'DockerUnavailable',
      call,
      hint ??
        (code === 'EACCES'
          ? 'permission denied on the Docker socket: run as root or add the user to the docker group'
          : 'is dockerd running? start it with `dockerd --ip=127.0.0.1 &` (or `systemctl start docker`), or set DOCKER_HOST'),
      err,
    );
  }
  const msg = daemonMessage(err);
  hint ??= hintFromDaemon(err);
  const r: BackendError['reason'] = reason ?? (status === 409 ? 'Conflict' : 'DockerError');
  return new BackendError(`${call} failed${status ? ` (HTTP ${status})` : ''}: ${msg}`, r, call, hint, err);
}

/** A hint for the daemon messages operators meet most, or undefined. */
export function hintFromDaemon(err: unknown): string | undefined {
  const m = daemonMessage(err);
  if (/network .*not found|No such network/i.test(m)) {
    return 'the network named in the policy does not exist: create it (Swarm: `docker network create -d overlay --attachable NAME`), or remove it from the policy';
  }
  if (/port is already allocated|address already in use/i.test(m))
    return 'the host port is taken by another process or container: choose another port (range) in the policy';
  if (/No such image|pull access denied|manifest unknown/i.test(m)) {
    return 'the image is not on this host: build it or `docker load` it, or allow pulls in the policy (pullPolicy)';
  }
  if (/bind source path does not exist|invalid mount config/i.test(m))
    return 'a bind-mount source from the policy does not exist on this host: create it or fix the volume template';
  if (/not a swarm manager|This node is not a swarm manager/i.test(m)) {
    return 'this Docker host is not a Swarm manager: `docker swarm init --advertise-addr 127.0.0.1`, or use backend "container"';
  }
  return undefined;
}

/** Pick the backend kind from `docker info`; a half-configured Swarm is an error, not a silent fallback. */
export async function detectBackendKind(docker: Docker): Promise<BackendKind> {
  let info: any;
  try {
    info = await docker.info();
  } catch (err) {
    throw wrapDockerError('docker info', err);
  }
  const swarm = info?.Swarm ?? {};
  const state: string = swarm.LocalNodeState ?? 'inactive';
  if (state === 'active') {
    if (swarm.ControlAvailable) return 'service';
    throw new BackendError(
      'this Docker node is a Swarm worker: services can only be managed from a manager',
      'DockerError',
      'docker info',
      'point DOCKER_HOST at a Swarm manager, promote this node (`docker node promote`), or choose backend "container"',
    );
  }
  if (state === 'inactive' || state === '') return 'container';
  const detail = swarm.Error ? `: ${swarm.Error}` : '';
  const hints: Record<string, string> = {
    pending: 'the node is still joining a Swarm; wait, or `docker swarm leave --force` and re-init with `docker swarm init --advertise-addr 127.0.0.1`',
    error: 'Swarm is half-configured; `docker swarm leave --force` then `docker swarm init --advertise-addr 127.0.0.1`, or choose backend "container"',
    locked: 'the Swarm is locked (autolock): `docker swarm unlock` with the unlock key',
  };
  throw new BackendError(
    `Docker Swarm is in state "${state}"${detail}`,
    'DockerError',
    'docker info',
    hints[state] ?? 'fix the Swarm state (`docker info`), or choose backend "container"',
  );
}

export interface BackendOptions {
  docker?: Docker;
  host?: string;
  /** For diagnostics (event stream reconnects, images kept because they are in use). */
  log?: Logger;
  /** Default pull policy when the caller does not pass one. */
  pullPolicy?: PullPolicy;
  /** Reconnect back-off for events(), ms (first, max). */
  eventsBackoffMs?: [number, number];
  /**
   * Observation caches (the Docker observer's snapshot, image resolutions), so an idle resync
   * costs no per-server Docker calls. `false` turns them off (every call goes to Docker).
   */
  cache?: false | Partial<CacheOptions>;
  /**
   * Swarm: the registry every node pulls from (policy `registry`). On several nodes images resolve
   * to its digests; with one node and no registry, images stay local (no registry round trips).
   */
  registry?: { address?: string; pushLocalImages?: boolean };
  /** Swarm, several nodes: the image with the docker CLI that commits source servers on their node (policy sourceImages.builderImage). */
  builderImage?: string;
  /** How long such a build may take (default 10 minutes). */
  buildTimeoutMs?: number;
  /** Per-call deadlines of Docker API calls (defaults: DEFAULT_DOCKER_DEADLINES). */
  deadlines?: Partial<DockerDeadlines>;
}

export interface CacheOptions extends ObserverOptions {
  /** Image resolutions are re-checked after this, besides on image events. */
  imageTtlMs: number;
}

export const DEFAULT_CACHE: CacheOptions = { ...DEFAULT_OBSERVER_OPTIONS, imageTtlMs: 5000 };

/** Build the backend for `kind`, auto-detecting from `docker info` when asked. */
export async function createBackend(kind: 'auto' | BackendKind, opts: BackendOptions = {}): Promise<Backend> {
  const docker = opts.docker ?? connectDocker({ host: opts.host });
  applyDockerDeadlines(docker, opts.deadlines);
  const resolved = kind === 'auto' ? await detectBackendKind(docker) : kind;
  if (resolved === 'service') {
    const { SwarmBackend } = await import('./swarm.js');
    return new SwarmBackend(docker, opts);
  }
  const { ContainerBackend } = await import('./container.js');
  return new ContainerBackend(docker, opts);
}
