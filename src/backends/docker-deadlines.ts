/**
 * A deadline on every Docker API call. A dockerd that accepts connections and then never answers
 * (hung on a lock, a storage driver stuck on I/O, a proxy in front of it that stalls) would
 * otherwise hold each reconcile that calls it forever, and with all workers held, every other
 * server's reconcile waits too. Past its deadline a call fails with an error that names it; the
 * resource gets a condition and is retried with back-off like any other Docker failure.
 *
 * Applied at the one place every dockerode request passes (the modem's dial), by kind of call:
 * image transfers and commits get long deadlines, waits for a container to stop a medium one,
 * everything else a short one. For a stream (the event stream, an image pull's progress), the
 * deadline covers the daemon starting to answer (dockerd sends the headers at once), not the
 * stream's length: an event stream that cannot be opened is retried instead of waited for forever.
 * Calls that are long-lived by design before they answer (attach, exec, `wait`, followed logs) get none.
 */
import type Docker from 'dockerode';
import { dockerCallLabel } from './docker-metrics.js';

export interface DockerDeadlines {
  /** Reads, creates, updates, removals of services, volumes, secrets. Default 60 s. */
  callMs: number;
  /** Calls that wait for a container to stop (stop, restart, kill, rm -f): the stop grace period and then some. Default 120 s. */
  stopMs: number;
  /** Image pulls, pushes, loads, builds and commits. Default 30 min. */
  imageMs: number;
}

export const DEFAULT_DOCKER_DEADLINES: Readonly<DockerDeadlines> = { callMs: 60_000, stopMs: 120_000, imageMs: 30 * 60_000 };

/** Error code of a call that got no answer in time (the daemon is there, or at least its socket is). */
export const DOCKER_TIMEOUT_CODE = 'EDOCKERTIMEOUT';

const IMAGE_CALLS = new Set([
  'POST /images/create',
  'POST /images/{name}/push',
  'POST /images/load',
  'GET /images/{name}/get',
  'GET /images/get',
  'POST /commit',
  'POST /build',
]);
const STOP_CALLS = new Set(['POST /containers/{id}/stop', 'POST /containers/{id}/restart', 'POST /containers/{id}/kill', 'DELETE /containers/{id}']);
const UNBOUNDED_CALLS = new Set(['POST /containers/{id}/wait', 'POST /containers/{id}/attach', 'POST /exec/{id}/start']);

interface DialOptions {
  method?: string;
  path?: string;
  hijack?: boolean;
  openStdin?: boolean;
  abortSignal?: AbortSignal;
  options?: Record<string, unknown>;
}
type DialCallback = (err: (Error & { statusCode?: number }) | null, data?: unknown) => void;
interface Modem {
  dial(options: DialOptions, callback: DialCallback): unknown;
}

/** The deadline (ms) of one call, or undefined for calls that are long-lived by design. Pure. */
export function deadlineOf(method: string, path: string, d: DockerDeadlines, opts: { hijack?: boolean; follow?: boolean } = {}): number | undefined {
  const call = dockerCallLabel(method, path);
  if (opts.hijack || UNBOUNDED_CALLS.has(call)) return undefined;
  if (opts.follow && /\/logs$/.test(call)) return undefined;
  if (IMAGE_CALLS.has(call)) return d.imageMs;
  if (STOP_CALLS.has(call)) return d.stopMs;
  return d.callMs;
}

const APPLIED = Symbol('nbswarm.dockerDeadlines');

/**
 * Give every call `docker` makes a deadline. Idempotent: a connection already given deadlines
 * keeps its first ones.
 */
export function applyDockerDeadlines(docker: Docker, deadlines: Partial<DockerDeadlines> = {}): void {
  const d: DockerDeadlines = { ...DEFAULT_DOCKER_DEADLINES, ...deadlines };
  const modem = (docker as unknown as { modem: Modem & { [APPLIED]?: true } }).modem;
  if (modem[APPLIED]) return;
  modem[APPLIED] = true;
  const dial = modem.dial.bind(modem);
  modem.dial = (options, callback) => {
    const method = options.method ?? 'GET';
    const path = options.path ?? '/';
    const ms = deadlineOf(method, path, d, { hijack: !!(options.hijack || options.openStdin), follow: !!options.options?.follow });
    if (ms === undefined) return dial(options, callback);
    const call = dockerCallLabel(method, path);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, ms);
    timer.unref();
    // dockerode passes a caller's own signal as options.abortSignal; both end the call.
    const signal = options.abortSignal ? AbortSignal.any([options.abortSignal, controller.signal]) : controller.signal;
    return dial({ ...options, abortSignal: signal }, (err, data) => {
      clearTimeout(timer);
      if (err && timedOut) {
        const e = new Error(`${call}: no answer from the Docker daemon within ${formatMs(ms)}`) as Error & { code: string; timeoutMs: number };
        e.code = DOCKER_TIMEOUT_CODE;
        e.timeoutMs = ms;
        return callback(e);
      }
      callback(err, data);
    });
  };
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
