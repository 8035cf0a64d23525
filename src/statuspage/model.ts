/**
 * What the status page shows, as pure functions of the operator's caches: one row per
 * NotebookServer, the recent Events, the operator's health, CPU and memory from Docker stats. The
 * browser only renders these (textContent, never HTML from data), so every value here may come from
 * a hostile object and still cannot inject markup or a javascript: link.
 */
import type { NotebookServer } from '../api/types.js';

export interface ServerRow {
  /** "namespace/name". */
  key: string;
  namespace: string;
  name: string;
  user: string;
  server: string;
  /** The mode that runs (status.mode, else spec.mode). */
  mode: string;
  phase: string;
  ready: boolean;
  /** Asked to stop (spec.stopped or the stop annotation). */
  stopped: boolean;
  node: string;
  /** status.endpoint.hostUrl when it is an http(s) URL; '' otherwise. */
  url: string;
  createdAt: string;
  /** While starting: which of the start-up stages it is in (index into START_STAGES), else -1. */
  stage: number;
  message: string;
  image: string;
}

/**
 * The stages a start goes through, named as the operator's Events name them (Created → Pending →
 * ImagePulling → Starting → Ready), each matched by the Ready condition's reason.
 */
export const START_STAGES = [
  { label: 'Created', reasons: [] as string[] },
  { label: 'Scheduled', reasons: ['Pending'] },
  { label: 'Image', reasons: ['Preparing'] },
  { label: 'Starting', reasons: ['Starting'] },
  { label: 'Ready', reasons: ['Running'] },
] as const;

const STOP_ANNOTATION = 'nbswarm.io/stopped';

/** An http(s) URL, or '' (a status written by someone else could hold `javascript:`). */
export function safeHttpUrl(value: unknown): string {
  if (typeof value !== 'string' || value.length > 2048) return '';
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : '';
  } catch {
    return '';
  }
}

const str = (v: unknown, max = 512): string => (typeof v === 'string' ? v.slice(0, max) : typeof v === 'number' ? String(v) : '');

export function startStage(obj: NotebookServer): number {
  const phase = obj.status?.phase;
  if (phase !== undefined && phase !== 'Pending' && phase !== 'Creating') return -1;
  const reason = obj.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? '';
  const i = START_STAGES.findIndex((s) => (s.reasons as readonly string[]).includes(reason));
  return i >= 0 ? i : 0;
}

export function serverRow(obj: NotebookServer): ServerRow {
  const m = obj.metadata ?? {};
  const st = obj.status ?? {};
  const spec = obj.spec ?? ({} as NotebookServer['spec']);
  const ready = st.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return {
    key: `${m.namespace ?? ''}/${m.name ?? ''}`,
    namespace: str(m.namespace, 253),
    name: str(m.name, 253),
    user: str(spec.user, 253),
    server: str(spec.servername, 253),
    mode: str((st as { mode?: string }).mode ?? spec.mode, 63),
    phase: str(st.phase, 32),
    ready,
    stopped: spec.stopped === true || m.annotations?.[STOP_ANNOTATION] !== undefined,
    node: str(st.backend?.node, 253),
    url: safeHttpUrl(st.endpoint?.hostUrl),
    createdAt: str(m.creationTimestamp, 64),
    stage: startStage(obj),
    message: str(st.message, 1024),
    image: str(st.backend?.image ?? spec.image, 512),
  };
}

/** The Events the page lists, slimmed to what it shows. */
export interface EventRow {
  uid: string;
  namespace: string;
  /** The NotebookServer it is about. */
  object: string;
  type: string;
  reason: string;
  message: string;
  count: number;
  /** RFC 3339; the newest of lastTimestamp / eventTime / creation. */
  time: string;
}

export function eventRow(e: any): EventRow {
  const time = str(e?.lastTimestamp ?? e?.series?.lastObservedTime ?? e?.eventTime ?? e?.metadata?.creationTimestamp, 64);
  return {
    uid: str(e?.metadata?.uid ?? `${e?.metadata?.namespace}/${e?.metadata?.name}`, 300),
    namespace: str(e?.metadata?.namespace, 253),
    object: str(e?.involvedObject?.name ?? e?.regarding?.name, 253),
    type: str(e?.type, 32),
    reason: str(e?.reason, 128),
    message: str(e?.message ?? e?.note, 1024),
    count: typeof e?.count === 'number' ? e.count : 1,
    time,
  };
}

/** The newest `n` events, newest first. */
export function newestEvents(events: EventRow[], n: number): EventRow[] {
  return [...events].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0)).slice(0, n);
}

export interface HealthView {
  /** This replica leads (writes); the page of a standby says who does. */
  leader: boolean;
  leaderIdentity: string;
  identity: string;
  queueDepth: number;
  inFlight: number;
  /** Keys waiting on back-off or requeue timers. */
  delayed: number;
  reconcilesPerSecond: number;
  reconcileErrors: number;
  /** null until the first check answered. */
  dockerReachable: boolean | null;
  backend: string;
  /** NotebookServers in the cache. */
  servers: number;
  synced: boolean;
}

/**
 * Reconciles per second over a sliding window of (time, total) samples; keeps the window at
 * `windowMs` and returns the new samples with the rate.
 */
export function reconcileRate(
  samples: Array<[number, number]>,
  now: number,
  total: number,
  windowMs = 10_000,
): { samples: Array<[number, number]>; perSecond: number } {
  const kept = samples.filter(([t]) => now - t <= windowMs);
  kept.push([now, total]);
  const [t0, n0] = kept[0]!;
  const perSecond = now > t0 ? ((total - n0) * 1000) / (now - t0) : 0;
  return { samples: kept, perSecond: Math.round(perSecond * 10) / 10 };
}

/** CPU and memory of one server's container (Docker stats). */
export interface StatsRow {
  /** % of one CPU (200 = two CPUs busy); undefined until two samples exist. */
  cpuPercent?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
}

export interface CpuSample {
  containerNs: number;
  systemNs: number;
  onlineCpus: number;
}

/** The CPU sample of a Docker stats answer (cgroup v1 and v2), or undefined when it has none. */
export function cpuSample(stats: any): CpuSample | undefined {
  const c = stats?.cpu_stats;
  const total = Number(c?.cpu_usage?.total_usage);
  const system = Number(c?.system_cpu_usage);
  if (!Number.isFinite(total) || !Number.isFinite(system) || system <= 0) return undefined;
  const online = Number(c?.online_cpus) || (Array.isArray(c?.cpu_usage?.percpu_usage) ? c.cpu_usage.percpu_usage.length : 1);
  return { containerNs: total, systemNs: system, onlineCpus: online };
}

/** `docker stats`' CPU %: the container's share of the host's CPU time between two samples, × CPUs. */
export function cpuPercent(prev: CpuSample | undefined, cur: CpuSample | undefined): number | undefined {
  if (!prev || !cur) return undefined;
  const dc = cur.containerNs - prev.containerNs;
  const ds = cur.systemNs - prev.systemNs;
  if (ds <= 0 || dc < 0) return undefined;
  return Math.round((dc / ds) * cur.onlineCpus * 1000) / 10;
}

/** `docker stats`' memory: usage without the page cache (inactive_file on cgroup v2, cache on v1). */
export function memoryUsage(stats: any): { memoryBytes?: number; memoryLimitBytes?: number } {
  const m = stats?.memory_stats;
  const usage = Number(m?.usage);
  if (!Number.isFinite(usage)) return {};
  const cache = Number(m?.stats?.inactive_file ?? m?.stats?.total_inactive_file ?? m?.stats?.cache ?? 0) || 0;
  const limit = Number(m?.limit);
  return { memoryBytes: Math.max(0, usage - cache), memoryLimitBytes: Number.isFinite(limit) && limit > 0 ? limit : undefined };
}
