/**
 * Prometheus metrics of every Docker API call the operator makes, by call and outcome, and whether
 * the daemon answers at all. Measured at the one place every dockerode request passes (the modem's
 * dial), so no backend code has to remember to count.
 *
 *   nbswarm_docker_requests_total{call, code}        call: "GET /containers/{id}/json"; code: 2xx,
 *                                                    the daemon's HTTP status, or "error" (no answer)
 *   nbswarm_docker_request_duration_seconds{call}    until the answer (a stream: until it starts)
 *   nbswarm_docker_reachable                         1 when the daemon answered a ping (checked at most every 5 s)
 */
import type Docker from 'dockerode';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

type DialCallback = (err: (Error & { statusCode?: number }) | null, data?: unknown) => void;
interface Modem {
  dial(options: { path: string; method: string }, callback: DialCallback): unknown;
}

/** Collections whose next path segment is an object's ID or name (not an action). */
const COLLECTION_ACTIONS: Record<string, Set<string>> = {
  containers: new Set(['json', 'create', 'prune']),
  services: new Set(['create']),
  tasks: new Set([]),
  nodes: new Set([]),
  networks: new Set(['create', 'prune']),
  volumes: new Set(['create', 'prune']),
  secrets: new Set(['create']),
  configs: new Set(['create']),
  exec: new Set([]),
  plugins: new Set(['pull', 'privileges', 'create']),
};
/** Actions that may follow an image name (which itself contains "/"). */
const IMAGE_ACTIONS = new Set(['json', 'history', 'push', 'tag', 'get']);
const IMAGE_COLLECTION = new Set(['json', 'create', 'load', 'search', 'prune', 'get', 'build']);

/**
 * The `call` label of a request: method and path with IDs and names replaced, so the label set is
 * bounded ("POST /services/{id}/update", "GET /images/{name}/json", "GET /events").
 */
export function dockerCallLabel(method: string, rawPath: string): string {
  let path = rawPath.split('?')[0] ?? '';
  path = path.replace(/^\/v\d+\.\d+(?=\/)/, ''); // an explicit API version prefix
  const parts = path.split('/').filter(Boolean);
  const m = method.toUpperCase();
  if (parts[0] === 'images' && parts.length > 1) {
    if (parts.length === 2 && IMAGE_COLLECTION.has(parts[1]!)) return `${m} /images/${parts[1]}`;
    const last = parts[parts.length - 1]!;
    if (parts.length > 2 && IMAGE_ACTIONS.has(last)) return `${m} /images/{name}/${last}`;
    return `${m} /images/{name}`;
  }
  const actions = COLLECTION_ACTIONS[parts[0] ?? ''];
  if (actions && parts.length > 1 && !actions.has(parts[1]!)) {
    const rest = parts.slice(2).map((p) => (/^[a-z_]+$/.test(p) ? p : '{x}'));
    return `${m} /${[parts[0], '{id}', ...rest].join('/')}`;
  }
  return `${m} /${parts.map((p) => (/^[a-z_]+$/.test(p) ? p : '{x}')).join('/')}`;
}

export interface DockerMetrics {
  /** Whether the daemon answered a ping within 2 s (cached for 5 s, so scrapes and pages cost one ping). */
  reachable(): Promise<boolean>;
}

const PING_TIMEOUT_MS = 2000;
const PING_CACHE_MS = 5000;

/** Count every call `docker` makes into `registry`; returns the reachability check. */
export function instrumentDocker(docker: Docker, registry: Registry): DockerMetrics {
  const requests = new Counter({
    name: 'nbswarm_docker_requests_total',
    help: 'Docker API requests by call and outcome (2xx, the HTTP status of an error, or "error" when the daemon did not answer)',
    labelNames: ['call', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'nbswarm_docker_request_duration_seconds',
    help: 'Docker API request latency by call (streams: until the stream starts)',
    labelNames: ['call'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const modem = (docker as unknown as { modem: Modem }).modem;
  const dial = modem.dial.bind(modem);
  modem.dial = (options, callback) => {
    // dial prefixes the path with the API version; read it first.
    const call = dockerCallLabel(options.method ?? 'GET', options.path ?? '/');
    const started = process.hrtime.bigint();
    return dial(options, (err, data) => {
      const code = !err ? '2xx' : typeof err.statusCode === 'number' ? String(err.statusCode) : 'error';
      requests.inc({ call, code });
      duration.observe({ call }, Number(process.hrtime.bigint() - started) / 1e9);
      callback(err, data);
    });
  };

  let last: { at: number; ok: Promise<boolean> } | undefined;
  const reachable = (): Promise<boolean> => {
    if (last && Date.now() - last.at < PING_CACHE_MS) return last.ok;
    let timer: NodeJS.Timeout | undefined;
    const ok = Promise.race([
      docker.ping().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), PING_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    last = { at: Date.now(), ok };
    return ok;
  };
  new Gauge({
    name: 'nbswarm_docker_reachable',
    help: '1 when the Docker daemon answered a ping (checked at most every 5 s)',
    registers: [registry],
    async collect() {
      this.set((await reachable()) ? 1 : 0);
    },
  });
  return { reachable };
}
