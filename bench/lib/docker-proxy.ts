/**
 * A counting proxy on a Unix socket in front of the Docker daemon. The operator under test is pointed
 * at it (dockerode `socketPath`), so every Docker API call it makes is seen and classified without
 * touching its code — the honest way to check "0 writes when idle" (P3, P5).
 *
 * Plain requests are forwarded with node:http (streamed both ways, so /events and logs keep
 * flowing); hijacked ones (Connection: Upgrade, used by attach/exec) are spliced as raw sockets
 * after the request head has been counted.
 */
import http from 'node:http';
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';

/** Collections whose second path segment is a verb on the collection, not an object id. */
const COLLECTION_VERBS: Record<string, Set<string>> = {
  containers: new Set(['json', 'create', 'prune']),
  services: new Set(['create']),
  tasks: new Set<string>(),
  nodes: new Set<string>(),
  networks: new Set(['create', 'prune']),
  volumes: new Set(['create', 'prune']),
  secrets: new Set(['create']),
  configs: new Set(['create']),
  plugins: new Set(['pull', 'privileges', 'create']),
  exec: new Set<string>(),
  swarm: new Set(['init', 'join', 'leave', 'update', 'unlockkey', 'unlock']),
  system: new Set(['df']),
};

/** Image and distribution names contain '/' and ':', so only a known trailing verb is kept. */
const IMAGE_VERBS = new Set(['json', 'history', 'push', 'tag', 'get']);
const IMAGE_COLLECTION_VERBS = new Set(['json', 'create', 'load', 'search', 'prune', 'get']);

/**
 * "/v1.41/services/abc123/update?version=4" → "/services/{id}/update". Strips the API version
 * prefix and the query, and replaces object ids and image names with placeholders so that calls
 * can be counted by kind.
 */
export function normalisePath(rawPath: string): string {
  let p = rawPath.split('?')[0] ?? '';
  p = p.replace(/^\/v\d+(\.\d+)?(?=\/)/, '');
  const segs = p.split('/').filter((s) => s.length > 0);
  if (segs.length === 0) return '/';
  const [head, ...rest] = segs;
  if (head === 'images' || head === 'distribution') {
    if (rest.length === 0) return `/${head}`;
    if (rest.length === 1 && head === 'images' && IMAGE_COLLECTION_VERBS.has(rest[0]!)) return `/images/${rest[0]}`;
    const last = rest[rest.length - 1]!;
    if (rest.length > 1 && IMAGE_VERBS.has(last)) return `/${head}/{name}/${last}`;
    return `/${head}/{name}`;
  }
  const verbs = COLLECTION_VERBS[head!];
  if (!verbs) return '/' + segs.join('/');
  if (rest.length === 0) return `/${head}`;
  if (verbs.has(rest[0]!)) return '/' + [head, ...rest].join('/');
  return '/' + [head, '{id}', ...rest.slice(1)].join('/');
}

/** "GET /services" etc. — the key the proxy counts by. */
export function callKind(method: string, rawPath: string): string {
  return `${method.toUpperCase()} ${normalisePath(rawPath)}`;
}

/**
 * A write is any call that can change daemon state: every method other than GET/HEAD. The event
 * stream is a GET, so it is a read; attach/wait are POSTs but do not change state, so they are
 * listed separately instead of inflating the write count.
 */
const NON_WRITE_POSTS = new Set(['/containers/{id}/attach', '/containers/{id}/wait', '/containers/{id}/resize', '/exec/{id}/resize']);
export function isWrite(method: string, rawPath: string): boolean {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return false;
  return !NON_WRITE_POSTS.has(normalisePath(rawPath));
}

/** "GET /services" is a list; "GET /services/{id}" an inspect. Used for the "≤ 1 list per resync per kind" target. */
export function isList(method: string, rawPath: string): boolean {
  if (method.toUpperCase() !== 'GET') return false;
  const n = normalisePath(rawPath);
  return /^\/(containers\/json|services|tasks|nodes|networks|volumes|images\/json|secrets|configs)$/.test(n);
}

export interface CallCounts {
  /** "METHOD /normalised/path" → number of requests. */
  byKind: Record<string, number>;
  total: number;
  writes: number;
  lists: number;
}

export interface CountingProxy {
  readonly socketPath: string;
  /** Counts since start (or since the last reset). */
  counts(): CallCounts;
  /** Counts since `from` (a previous counts() snapshot). */
  since(from: CallCounts): CallCounts;
  reset(): void;
  /** Start recording every call as [Date.now(), kind] (a timeline to explain a latency). */
  startTrace(): void;
  stopTrace(): Array<[number, string]>;
  close(): Promise<void>;
}

function emptyCounts(): CallCounts {
  return { byKind: {}, total: 0, writes: 0, lists: 0 };
}

function cloneCounts(c: CallCounts): CallCounts {
  return { byKind: { ...c.byKind }, total: c.total, writes: c.writes, lists: c.lists };
}

export function diffCounts(now: CallCounts, from: CallCounts): CallCounts {
  const byKind: Record<string, number> = {};
  for (const [k, v] of Object.entries(now.byKind)) {
    const d = v - (from.byKind[k] ?? 0);
    if (d > 0) byKind[k] = d;
  }
  return { byKind, total: now.total - from.total, writes: now.writes - from.writes, lists: now.lists - from.lists };
}

/**
 * Start a counting proxy listening on `socketPath`, forwarding to `upstream` (the daemon's socket).
 */
export async function startCountingProxy(socketPath: string, upstream = '/var/run/docker.sock'): Promise<CountingProxy> {
  let counts = emptyCounts();
  let trace: Array<[number, string]> | undefined;
  const count = (method: string, url: string) => {
    const k = callKind(method, url);
    trace?.push([Date.now(), k]);
    counts.byKind[k] = (counts.byKind[k] ?? 0) + 1;
    counts.total++;
    if (isWrite(method, url)) counts.writes++;
    if (isList(method, url)) counts.lists++;
  };
  // Keep-alive to the daemon so the proxy adds as little per-call latency as it can.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    count(req.method ?? 'GET', req.url ?? '/');
    const up = http.request({ socketPath: upstream, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders as unknown as http.OutgoingHttpHeaders);
      // Streaming responses (/events, logs) must reach the client chunk by chunk.
      res.flushHeaders();
      upRes.pipe(res);
      res.on('close', () => upRes.destroy());
    });
    up.on('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `counting proxy: upstream error: ${err.message}` }));
      } else res.destroy();
    });
    req.pipe(up);
    req.on('aborted', () => up.destroy());
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, clientSock: net.Socket, head: Buffer) => {
    count(req.method ?? 'POST', req.url ?? '/');
    const upSock = net.connect(upstream);
    sockets.add(upSock);
    upSock.on('close', () => sockets.delete(upSock));
    upSock.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upSock.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) upSock.write(head);
      upSock.pipe(clientSock);
      clientSock.pipe(upSock);
    });
    const end = () => {
      upSock.destroy();
      clientSock.destroy();
    };
    upSock.on('error', end);
    clientSock.on('error', end);
  });

  if (existsSync(socketPath)) unlinkSync(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });

  return {
    socketPath,
    counts: () => cloneCounts(counts),
    since: (from) => diffCounts(counts, from),
    reset: () => {
      counts = emptyCounts();
    },
    startTrace: () => {
      trace = [];
    },
    stopTrace: () => {
      const t = trace ?? [];
      trace = undefined;
      return t;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (existsSync(socketPath)) unlinkSync(socketPath);
    },
  };
}
