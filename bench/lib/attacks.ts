/**
 * Resource attacks on the embedded API server, and the instruments that watch the server while
 * they run: its RSS from /proc and the latency of /healthz. The server runs as a child process
 * (its memory is its own), in a temporary data dir on a free loopback port. Used by
 * bench/apiserver/attacks.ts (numbers, before/after with `--server-main`) and by the limits test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { procRss } from './proc.js';
import { replyText } from '../../src/util/http-reply.js';

export const DEFAULT_SERVER_MAIN = fileURLToPath(new URL('../../src/apiserver/main.js', import.meta.url));

export interface ServerProcess {
  pid: number;
  url: string;
  port: number;
  caPem: string;
  adminToken: string;
  dataDir: string;
  child: ChildProcess;
  /** stderr so far (the server's warnings and errors). */
  stderr(): string;
  /** SIGTERM (SIGKILL after 5 s), then removes the data dir unless it was given. */
  stop(): Promise<void>;
}

/** Starts `node MAIN serve` on a free loopback port; `args` are extra `serve` flags. */
export async function spawnApiServer(opts: { main?: string; dataDir?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'nbswarm-attack-'));
  const child = spawn(process.execPath, [opts.main ?? DEFAULT_SERVER_MAIN, 'serve', '--port', '0', '--data-dir', dataDir, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 1 << 20) err = err.slice(-(1 << 19));
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) resolve(JSON.parse(line).url);
    });
    child.once('exit', (code) => reject(new Error(`the API server exited early with ${code}: ${err.slice(-2000)}`)));
  });
  const caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
  const adminToken = readFileSync(join(dataDir, 'tokens.csv'), 'utf8')
    .split('\n')
    .find((l) => l.includes(',admin,admin'))!
    .split(',')[0];
  return {
    pid: child.pid!,
    url,
    port: Number(new URL(url).port),
    caPem,
    adminToken,
    dataDir,
    child,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type Target = Pick<ServerProcess, 'url' | 'caPem' | 'adminToken'>;

export interface Reply {
  status: number;
  text: string;
  ms: number;
}

/** One HTTP/1.1 request on its own connection; a reply that takes longer than `timeoutMs` is status 0. */
export function request(
  srv: Target,
  method: string,
  path: string,
  opts: { body?: string; contentType?: string; token?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve) => {
    const u = new URL(path, srv.url);
    const r = https.request(
      u,
      {
        method,
        ca: srv.caPem,
        agent: false,
        headers: {
          authorization: `Bearer ${opts.token ?? srv.adminToken}`,
          accept: 'application/json',
          ...(opts.body !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(opts.body) } : {}),
        },
      },
      (res) =>
        void replyText(res).then(
          (text) => done(res.statusCode ?? 0, text),
          () => done(0, 'response error'),
        ),
    );
    let settled = false;
    const done = (status: number, text: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.destroy();
      resolve({ status, text, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(0, `no reply within ${opts.timeoutMs} ms`), opts.timeoutMs ?? 120_000);
    r.on('error', (e) => done(0, e.message));
    r.end(opts.body);
  });
}

interface HealthSummary {
  maxMs: number;
  p99Ms: number;
  samples: number;
  failures: number;
}

/**
 * /healthz asked every `everyMs` (one at a time, each on a fresh connection) while an attack runs.
 * The probe runs in a worker thread: the attack's own client work (reading 300 sockets at once) would
 * otherwise delay the probe's event loop and count as the server's latency.
 */
export class HealthProbe {
  private readonly worker: Worker;
  private readonly summary: Promise<HealthSummary>;

  constructor(srv: Target, everyMs = 100, timeoutMs = 120_000) {
    const target: Target = { url: srv.url, caPem: srv.caPem, adminToken: srv.adminToken };
    this.worker = new Worker(new URL(import.meta.url), { workerData: { healthProbe: { target, everyMs, timeoutMs } } });
    this.summary = new Promise((resolve, reject) => {
      this.worker.once('message', resolve);
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`the health probe exited with ${code} before reporting`)));
    });
  }

  /** Stops probing once the probe in flight has its answer. */
  stop(): Promise<HealthSummary> {
    this.worker.postMessage('stop');
    return this.summary;
  }
}

/** The worker side of HealthProbe. */
async function probeHealth(o: { target: Target; everyMs: number; timeoutMs: number }): Promise<HealthSummary> {
  const samples: number[] = [];
  let failures = 0;
  let running = true;
  parentPort!.once('message', () => (running = false));
  while (running) {
    const r = await request(o.target, 'GET', '/healthz', { timeoutMs: o.timeoutMs });
    if (r.status !== 200) failures++;
    samples.push(r.ms);
    await new Promise((ok) => setTimeout(ok, o.everyMs));
  }
  samples.sort((a, b) => a - b);
  const at = (p: number) => (samples.length ? Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]) : 0);
  return { maxMs: at(1), p99Ms: at(0.99), samples: samples.length, failures };
}

/** The server's RSS sampled every `everyMs`: its peak over the attack, in MiB. */
export class RssSampler {
  readonly startMiB: number;
  private peak: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 50,
  ) {
    this.startMiB = this.peak = procRss(pid) / 2 ** 20;
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    const v = procRss(this.pid) / 2 ** 20;
    if (v > this.peak) this.peak = v;
  }

  stop(): { startMiB: number; peakMiB: number; endMiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { startMiB: Math.round(this.startMiB), peakMiB: Math.round(this.peak), endMiB: Math.round(procRss(this.pid) / 2 ** 20) };
  }
}

export const WIDGETS = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';

/** Creates the Widget CRD (test/fixtures/widget-crd.yaml: spec.extra keeps unknown fields) and waits until it is served. */
export async function installWidgets(srv: Target, crd: object): Promise<void> {
  const r = await request(srv, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: JSON.stringify(crd) });
  if (r.status !== 201 && r.status !== 409) throw new Error(`CRD create: ${r.status} ${r.text.slice(0, 300)}`);
  for (let i = 0; i < 100; i++) {
    if ((await request(srv, 'GET', WIDGETS)).status === 200) return;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error('widgets are not served');
}

export function widget(name: string, extra: object): string {
  return JSON.stringify({ apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name }, spec: { user: 'u', extra } });
}

/** A map of `keys` members (`k0`…) of `valueBytes` each. */
export function wideMap(keys: number, valueBytes: number): Record<string, string> {
  const v = 'v'.repeat(valueBytes);
  return Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k${i}`, v]));
}

/**
 * Opens an HTTP/1.1 connection, sends `head` (request line and headers, no body) and stops reading:
 * whatever the server answers piles up in its buffers.
 */
export function stalledRequest(srv: Target, path: string, headers: Record<string, string> = {}): Promise<tls.TLSSocket> {
  const u = new URL(srv.url);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca: srv.caPem, ALPNProtocols: ['http/1.1'] }, () => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: ${u.host}`,
        `Authorization: Bearer ${srv.adminToken}`,
        'Accept: application/json',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      sock.write(lines.join('\r\n') + '\r\n\r\n');
      sock.pause();
      resolve(sock);
    });
    sock.on('error', (e) => reject(e));
  });
}

/**
 * How many stalled connections the server has closed: a paused socket learns of the close only by
 * reading up to it (past what the kernel still held for it: up to a few MiB a connection), so every
 * socket is read, and what arrives thrown away, until all have closed or `waitMs` has passed.
 */
export async function closedByServer(socks: tls.TLSSocket[], waitMs = 10_000): Promise<number> {
  const closed = new Set<tls.TLSSocket>();
  for (const s of socks) {
    if (s.destroyed || s.readableEnded) closed.add(s);
    s.on('end', () => closed.add(s));
    s.on('close', () => closed.add(s));
    s.on('error', () => closed.add(s));
    s.on('data', () => {});
    s.resume();
  }
  const until = Date.now() + waitMs;
  while (closed.size < socks.length && Date.now() < until) await sleep(50);
  return closed.size;
}

/**
 * HTTP/2 POST streams that send `bytes` of an unfinished JSON body and never end it. Returns the
 * session and how many streams the server answered or reset so far.
 */
export function unfinishedUploads(
  srv: Target,
  streams: number,
  bytes: number,
): { session: http2.ClientHttp2Session; answered: () => number; statuses: Map<number, number> } {
  const session = http2.connect(srv.url, { ca: srv.caPem });
  session.on('error', () => {});
  let answered = 0;
  const statuses = new Map<number, number>();
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  for (let i = 0; i < streams; i++) {
    const s = session.request({ ':method': 'POST', ':path': WIDGETS, 'content-type': 'application/json', authorization: `Bearer ${srv.adminToken}` });
    s.on('error', () => {});
    let counted = false;
    const count = (status: number) => {
      if (counted) return;
      counted = true;
      answered++;
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    };
    s.on('response', (h) => count(Number(h[':status'])));
    s.on('close', () => count(0));
    s.on('data', () => {});
    s.write('{"apiVersion":"example.nbswarm.io/v1","kind":"Widget","metadata":{"name":"u' + i + '"},"spec":{"user":"u","extra":{"x":"');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    pump();
  }
  return { session, answered: () => answered, statuses };
}

/** Opens HTTP/2 sessions that do nothing after the handshake; `open()` counts those the server has not closed. */
export async function idleSessions(srv: Target, n: number): Promise<{ open: () => number; close: () => void }> {
  const sessions = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<http2.ClientHttp2Session>((resolve, reject) => {
          const s = http2.connect(srv.url, { ca: srv.caPem });
          s.on('error', () => {});
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  return {
    open: () => sessions.filter((s) => !s.closed && !s.destroyed).length,
    close: () => {
      for (const s of sessions) s.destroy();
    },
  };
}

/** JSON nested `depth` levels deep inside a Widget's spec.extra. */
export function deepWidget(name: string, depth: number): string {
  return `{"apiVersion":"example.nbswarm.io/v1","kind":"Widget","metadata":{"name":"${name}"},"spec":{"user":"u","extra":{"d":${'['.repeat(depth)}${']'.repeat(depth)}}}}`;
}

export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

if (!isMainThread && (workerData as { healthProbe?: unknown } | null)?.healthProbe) {
  parentPort!.postMessage(await probeHealth((workerData as { healthProbe: Parameters<typeof probeHealth>[0] }).healthProbe));
}
