/**
 * API server benchmark (not a test): create 10,000 custom objects at concurrency 32, list them,
 * then fan a stream of updates out to 100 watchers. Prints one JSON document.
 *
 *   node dist/bench/apiserver/run.js [--quick] [--objects N] [--concurrency C] [--watchers W] [--updates U] [--synchronous NORMAL|FULL]
 *
 * The server runs as its own process (so its RSS is its own) and is talked to over HTTP/2 with
 * TLS, as client-go does. A second create phase (`createHttp1`) runs the same creates over C
 * keep-alive HTTP/1.1 TLS connections, as kubectl and client-node connect. `--quick` is 3,000
 * objects, 20 watchers and 300 updates (bench/run.ts P6 passes it). NBSWARM_BENCH_SERVER_NODE_ARGS
 * adds node flags to the server process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
import https from 'node:https';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { repoPath } from '../../src/paths.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const QUICK = args.includes('--quick');
const N = arg('objects', QUICK ? 3000 : 10000), C = arg('concurrency', 32), WATCHERS = arg('watchers', QUICK ? 20 : 100), UPDATES = arg('updates', QUICK ? 300 : 1000), PACED = arg('paced', QUICK ? 20 : 100);
const SYNC = args.includes('--synchronous') ? args[args.indexOf('--synchronous') + 1]! : 'NORMAL';
const MAIN = fileURLToPath(new URL('../../src/apiserver/main.js', import.meta.url));
const W = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';

function rssMiB(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) / 1024;
  return { rss: Math.round(kb('VmRSS')), peak: Math.round(kb('VmHWM')) };
}

/** CPU time (user + system) the process has used so far, in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 100) / 100;
}

interface Client {
  req(method: string, path: string, body?: unknown, type?: string): Promise<{ status: number; body: any }>;  
  session: http2.ClientHttp2Session;
}

function connect(url: string, ca: string, token: string): Client {
  const session = http2.connect(url, { ca });
  session.on('error', () => {});
  return {
    session,
    req(method, path, body, type = 'application/json') {
      return new Promise((resolve, reject) => {
        const s = session.request({ ':method': method, ':path': path, authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': type } : {}) });
        const chunks: Buffer[] = [];
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => resolve({ status, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
        s.on('error', reject);
        s.end(body === undefined ? undefined : JSON.stringify(body));
      });
    },
  };
}

/** HTTP/1.1 over TLS with a keep-alive pool of `sockets` connections, as client-node's default agent. */
function connect1(url: string, ca: string, token: string, sockets: number): { req: Client['req']; agent: https.Agent } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: sockets, ca });
  const u = new URL(url);
  return {
    agent,
    req(method, path, body, type = 'application/json') {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const r = https.request({ host: u.hostname, port: u.port, method, path, agent, headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data !== undefined ? { 'content-type': type, 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
          res.on('error', reject);
        });
        r.on('error', reject);
        r.end(data);
      });
    },
  };
}

async function pool(n: number, conc: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-'));
  const child = spawn(process.execPath, [...(process.env.NBSWARM_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean), MAIN, 'serve', '--port', '0', '--data-dir', dataDir, '--watch-window', '20000', ...(SYNC !== 'NORMAL' ? ['--synchronous', SYNC] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).url);
      });
      child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const ca = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
    const token = readFileSync(join(dataDir, 'tokens.csv'), 'utf8').split('\n').find((l) => l.includes(',admin,admin'))!.split(',')[0];
    // Several connections, as several clients would open.
    const clients = Array.from({ length: 4 }, () => connect(url, ca, token));
    const crd = YAML.parse(readFileSync(repoPath('test/fixtures/widget-crd.yaml'), 'utf8'));
    const c0 = await clients[0].req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    if (c0.status !== 201) throw new Error(`CRD create: ${JSON.stringify(c0.body)}`);
    const rssStart = rssMiB(child.pid!);

    // 1. create
    const createLat: number[] = [];
    let cpu0 = cpuMs(child.pid!);
    let t0 = performance.now();
    await pool(N, C, async (i) => {
      const t = performance.now();
      const r = await clients[i % clients.length].req('POST', W, { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: `w-${i}`, labels: { batch: String(i % 10) } }, spec: { user: `user${i % 100}`, size: i, tags: ['bench'] } });
      if (r.status !== 201) throw new Error(`create ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      createLat.push(performance.now() - t);
    });
    const createSecs = (performance.now() - t0) / 1000;
    const createCpuMs = cpuMs(child.pid!) - cpu0;
    const rssAfterCreate = rssMiB(child.pid!);

    // 1b. the same creates over C HTTP/1.1 connections (warmed first, so TLS handshakes are not timed)
    const h1 = connect1(url, ca, token, C);
    await pool(C, C, async (i) => {
      const r = await h1.req('GET', `${W}/w-${i}`);
      if (r.status !== 200) throw new Error(`warm-up get: ${r.status}`);
    });
    const create1Lat: number[] = [];
    cpu0 = cpuMs(child.pid!);
    t0 = performance.now();
    await pool(N, C, async (i) => {
      const t = performance.now();
      const r = await h1.req('POST', W, { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: `h-${i}`, labels: { batch: String(i % 10) } }, spec: { user: `user${i % 100}`, size: i, tags: ['bench'] } });
      if (r.status !== 201) throw new Error(`http/1.1 create ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      create1Lat.push(performance.now() - t);
    });
    const create1Secs = (performance.now() - t0) / 1000;
    const create1CpuMs = cpuMs(child.pid!) - cpu0;
    h1.agent.destroy();

    // 2. list: one full list, then paged with limit=500, then a Table list as kubectl get does
    t0 = performance.now();
    const full = await clients[0].req('GET', W);
    const listAllMs = performance.now() - t0;
    if (full.body.items.length !== 2 * N) throw new Error(`listed ${full.body.items.length}`);
    t0 = performance.now();
    let cont = '', paged = 0, pages = 0;
    do {
      const r = await clients[0].req('GET', `${W}?limit=500${cont ? `&continue=${cont}` : ''}`);
      paged += r.body.items.length;
      pages++;
      cont = r.body.metadata.continue ?? '';
    } while (cont);
    const listPagedMs = performance.now() - t0;
    t0 = performance.now();
    const sel = await clients[0].req('GET', `${W}?labelSelector=batch%3D3`);
    const listSelMs = performance.now() - t0;

    // 3. watchers: 100 streams over 4 connections in a worker thread (so parsing 100k events does
    //    not share an event loop with the updating client), then UPDATES updates at concurrency C.
    const rv = full.body.metadata.resourceVersion;
    const sent = new Float64Array(new SharedArrayBuffer(8 * (UPDATES + PACED)));
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { url, ca, token, rv, watchers: WATCHERS, sent, updates: UPDATES, paced: PACED } });
    const workerDone = new Promise<{ received: number; deliver: number[]; paced: number[]; burstSecs: number }>((resolve, reject) => {
      worker.on('message', (m: { type: string; received?: number; deliver?: number[]; paced?: number[]; burstSecs?: number }) => {
        if (m.type === 'done') resolve({ received: m.received!, deliver: m.deliver!, paced: m.paced!, burstSecs: m.burstSecs! });
      });
      worker.on('error', reject);
    });
    await new Promise<void>((resolve) => worker.on('message', (m: { type: string }) => m.type === 'ready' && resolve()));
    const burstDone = new Promise<void>((resolve) => worker.on('message', (m: { type: string }) => m.type === 'burst-done' && resolve()));
    const updLat: number[] = [];
    t0 = performance.now();
    await pool(UPDATES, C, async (i) => {
      const t = performance.now();
      sent[i] = performance.timeOrigin + t;
      const r = await clients[i % clients.length].req('PATCH', `${W}/w-${i % N}`, { spec: { size: 1_000_000 + i } }, 'application/merge-patch+json');
      if (r.status !== 200) throw new Error(`update ${i}: ${r.status}`);
      updLat.push(performance.now() - t);
    });
    const updSecs = (performance.now() - t0) / 1000;
    const want = UPDATES * WATCHERS;
    await burstDone;
    // Paced updates (one every 20 ms, after the burst has drained) show per-event latency without backlog.
    for (let j = 0; j < PACED; j++) {
      const i = UPDATES + j;
      sent[i] = performance.timeOrigin + performance.now();
      await clients[0].req('PATCH', `${W}/w-${i % N}`, { spec: { size: 1_000_000 + i } }, 'application/merge-patch+json');
      await new Promise((r) => setTimeout(r, 20));
    }
    const { received, deliver, paced, burstSecs } = await workerDone;
    const fanSecs = (performance.now() - t0) / 1000;
    const rssEnd = rssMiB(child.pid!);
    await worker.terminate();
    for (const c of clients) c.session.close();

    const result = {
      benchmark: 'apiserver',
      node: process.version,
      objects: N, concurrency: C, watchers: WATCHERS, updates: UPDATES, synchronous: SYNC,
      create: { protocol: 'HTTP/2 (4 connections)', seconds: +createSecs.toFixed(2), opsPerSec: Math.round(N / createSecs), p50Ms: pct(createLat, 50), p99Ms: pct(createLat, 99), serverCpuMsPerOp: +(createCpuMs / N).toFixed(3), serverCpuShare: +(createCpuMs / 1000 / createSecs).toFixed(2) },
      createHttp1: { protocol: `HTTP/1.1 (${C} keep-alive connections)`, seconds: +create1Secs.toFixed(2), opsPerSec: Math.round(N / create1Secs), p50Ms: pct(create1Lat, 50), p99Ms: pct(create1Lat, 99), serverCpuMsPerOp: +(create1CpuMs / N).toFixed(3), serverCpuShare: +(create1CpuMs / 1000 / create1Secs).toFixed(2) },
      list: { allItemsMs: Math.round(listAllMs), pagedLimit500Ms: Math.round(listPagedMs), pages, pagedItems: paged, labelSelectedMs: Math.round(listSelMs), labelSelectedItems: sel.body.items.length },
      update: { seconds: +updSecs.toFixed(2), opsPerSec: Math.round(UPDATES / updSecs), p50Ms: pct(updLat, 50), p99Ms: pct(updLat, 99) },
      fanout: { burstEventsDelivered: deliver.length, burstEventsExpected: want, burstEventsPerSec: Math.round(deliver.length / burstSecs), burstDeliveryP50Ms: pct(deliver, 50), burstDeliveryP99Ms: pct(deliver, 99), pacedUpdates: PACED, pacedEventsDelivered: paced.length, pacedDeliveryP50Ms: pct(paced, 50), pacedDeliveryP99Ms: pct(paced, 99), allDeliveredAfterSec: +fanSecs.toFixed(2), totalDelivered: received },
      serverRssMiB: { start: rssStart.rss, afterCreate: rssAfterCreate.rss, end: rssEnd.rss, peak: rssEnd.peak },
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Worker: opens the watchers and reports delivery latencies once every update has reached all of them. */
async function watchers(): Promise<void> {
  const d = workerData as { url: string; ca: string; token: string; rv: string; watchers: number; sent: Float64Array; updates: number; paced: number };
  const sessions = Array.from({ length: 4 }, () => http2.connect(d.url, { ca: d.ca }));
  const deliver: number[] = [];
  const paced: number[] = [];
  let received = 0;
  let burstSeen = 0;
  let burstSecs = 0;
  let first = 0;
  const want = (d.updates + d.paced) * d.watchers;
  const finish = () => parentPort!.postMessage({ type: 'done', received, deliver, paced, burstSecs });
  await Promise.all(Array.from({ length: d.watchers }, (_, w) => new Promise<void>((ready) => {
    const s = sessions[w % sessions.length].request({ ':method': 'GET', ':path': `${W}?watch=1&resourceVersion=${d.rv}&allowWatchBookmarks=true`, authorization: `Bearer ${d.token}` });
    let buf = '';
    s.on('response', () => ready());
    s.on('data', (c: Buffer) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const ev = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (ev.type !== 'MODIFIED') continue;
        const seq = ev.object.spec.size - 1_000_000;
        const now = performance.timeOrigin + performance.now();
        const at = d.sent[seq];
        if (seq < d.updates) {
          first ||= d.sent[0];
          deliver.push(now - at);
          if (++burstSeen === d.updates * d.watchers) {
            burstSecs = (now - first) / 1000;
            parentPort!.postMessage({ type: 'burst-done' });
          }
        } else paced.push(now - at);
        if (++received === want) {
          finish();
          for (const x of sessions) x.destroy();
        }
      }
    });
    s.on('error', () => {});
  })));
  parentPort!.postMessage({ type: 'ready' });
  setTimeout(finish, 120_000).unref();
}

if (isMainThread) await main();
else await watchers();
