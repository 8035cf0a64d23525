/**
 * API server benchmark (not a test): create 10,000 NotebookServer objects of ~1 KB (the objects P6
 * puts into etcd) at concurrency 32, list them, then fan a stream of updates out to 100 watchers.
 * Prints one JSON document.
 *
 *   node dist/bench/apiserver/run.js [--quick] [--objects N] [--concurrency C] [--warmup W] [--watchers W] [--updates U] [--paced P] [--synchronous NORMAL|FULL] [--stop-after http2-creates|creates|all] [--server-main FILE]
 *   (--help lists the defaults; args.ts refuses what it does not know)
 *
 * The server runs as its own process (so its RSS and CPU are its own) and is talked to over HTTP/2
 * with TLS, as client-go does. A second create phase (`createHttp1`) runs the same creates over C
 * keep-alive HTTP/1.1 TLS connections, as kubectl and client-node connect (both in clients.ts).
 * Each create phase reports the server's and this client's CPU per create. `nodeCeiling` runs the
 * same HTTP/2 creates against a Node server that only parses and echoes them (null-server.ts):
 * what any Node HTTPS server can answer on this machine with this client, the roof over the API
 * server's rate.
 * `--warmup` (1,000) untimed creates come first, as the etcd anchor's untimed puts do.
 * `--quick` is 3,000 objects, 20 watchers and 300 updates (bench/run.ts P6 passes it);
 * `--stop-after creates` ends the run after the create phases, `--stop-after http2-creates` after
 * the first (P6's rounds paired with etcd need no more). `--server-main` runs another build's
 * src/apiserver/main.js with this client (before/after comparisons with the same client).
 * NBSWARM_BENCH_SERVER_NODE_ARGS adds node flags to the server process (e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof`). A create's response is checked by its status and for being whole,
 * not parsed (as the etcd anchor's client does with a put's): the client's CPU shares the machine
 * with the server.
 * One user sends everything, so the server is started with per-user allowances that cover
 * --concurrency and --watchers (the defaults, 100 requests and 250 watches, unless more are asked).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { loadCrd } from '../../src/controller/crd.js';
import { DEFAULT_LIMITS } from '../../src/apiserver/limits.js';
import { sampleObject } from '../etcd.js';
import { procCpuMs, procRss, procRssPeak, selfCpuMs, threadCpuMsByRole } from '../lib/proc.js';
import { terminate } from '../lib/child-rpc.js';
import { leaveNothingBehind } from '../lib/teardown.js';
import { words } from '../lib/argv.js';
import { parseApiServerBenchArgs } from './args.js';
import { connect1, h2Clients, type Request } from './clients.js';

// The watchers' worker thread loads this module too: it reads its sizes from workerData, not the command line.
const ARGS = parseApiServerBenchArgs(isMainThread ? process.argv.slice(2) : []);
const {
  objects: N,
  concurrency: C,
  warmup: WARMUP,
  watchers: WATCHERS,
  updates: UPDATES,
  paced: PACED,
  synchronous: SYNC,
  serverMain: MAIN,
  stopAfter: STOP_AFTER,
} = ARGS;
const NULL_SERVER = fileURLToPath(new URL('./null-server.js', import.meta.url));
const NS = 'default';
const R = `/apis/nbswarm.io/v1alpha1/namespaces/${NS}/notebookservers`;
/** The annotation an update carries its sequence number in, for the watchers to time its delivery. */
const SEQ = 'bench.nbswarm.io/seq';

function rssMiB(pid: number): { rss: number; peak: number } {
  return { rss: Math.round(procRss(pid) / 2 ** 20), peak: Math.round(procRssPeak(pid) / 2 ** 20) };
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 100) / 100;
}

/** The JSON of create `i` named `name`, encoded before any clock starts (as the etcd anchor's puts are). */
function createBody(i: number, name: string): string {
  const o = sampleObject(i, NS);
  (o.metadata as { name: string }).name = name;
  return JSON.stringify(o);
}

async function pool(n: number, conc: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

interface CreatePhase {
  protocol: string;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU per create (ms), from /proc. */
  serverCpuMsPerOp: number;
  /**
   * The server's CPU per create by thread: its event loop (every request goes through it, so it
   * caps the rate when the machine has cores to spare), its SQLite writer, and V8's and libuv's
   * helper threads.
   */
  serverThreadCpuMsPerOp: Record<string, number>;
  /** Share of one core the server used during the phase. */
  serverCpuShare: number;
  /** This client's CPU per create (ms): the other half of the machine's budget. */
  clientCpuMsPerOp: number;
}

/** `bodies.length` creates at concurrency C through `req`, timed, with both sides' CPU. */
async function createPhase(protocol: string, serverPid: number, bodies: string[], req: Request): Promise<CreatePhase> {
  const lat: number[] = [];
  const server0 = procCpuMs(serverPid);
  const threads0 = threadCpuMsByRole(serverPid);
  const client0 = selfCpuMs();
  const t0 = performance.now();
  await pool(bodies.length, C, async (i) => {
    const t = performance.now();
    const r = await req('POST', R, bodies[i], 'application/json', false);
    if (r.status !== 201) throw new Error(`${protocol} create ${i}: ${r.status} ${r.body}`);
    lat.push(performance.now() - t);
  });
  const secs = (performance.now() - t0) / 1000;
  const serverCpu = procCpuMs(serverPid) - server0;
  const threads = threadCpuMsByRole(serverPid);
  const clientCpu = selfCpuMs() - client0;
  const n = bodies.length;
  return {
    protocol,
    seconds: +secs.toFixed(2),
    opsPerSec: Math.round(n / secs),
    p50Ms: pct(lat, 50),
    p99Ms: pct(lat, 99),
    serverCpuMsPerOp: +(serverCpu / n).toFixed(3),
    serverThreadCpuMsPerOp: Object.fromEntries(
      Object.entries(threads)
        .map(([name, ms]) => [name, +((ms - (threads0[name] ?? 0)) / n).toFixed(3)] as const)
        .filter(([, perOp]) => perOp > 0),
    ),
    serverCpuShare: +(serverCpu / 1000 / secs).toFixed(2),
    clientCpuMsPerOp: +(clientCpu / n).toFixed(3),
  };
}

/** The data dirs this run made; main's finally removes its own, the way out removes what is left. */
const dataDirs = new Set<string>();
if (isMainThread) leaveNothingBehind('bench/apiserver', dataDirs);

/** Starts a child that prints `{"url": …}` as its first stdout line, and waits for that line. */
async function startChild(argv: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).url);
    });
    child.once('exit', (c) => reject(new Error(`${argv.join(' ')} exited ${c}`)));
  });
  return { child, url };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-'));
  dataDirs.add(dataDir);
  const { child, url } = await startChild([
    ...words(process.env.NBSWARM_BENCH_SERVER_NODE_ARGS),
    MAIN,
    'serve',
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--watch-window',
    '20000',
    // One user sends every request: its allowance must cover the concurrency and watchers asked for
    // (past the defaults, a run would measure 429s).
    '--max-inflight-per-user',
    String(Math.max(DEFAULT_LIMITS.maxInflightPerUser, C)),
    '--max-watches-per-user',
    String(Math.max(DEFAULT_LIMITS.maxWatchesPerUser, WATCHERS)),
    ...(SYNC !== 'NORMAL' ? ['--synchronous', SYNC] : []),
  ]);
  let ceiling: ChildProcess | undefined;
  try {
    const pki = join(dataDir, 'pki');
    const ca = readFileSync(join(pki, 'ca.crt'), 'utf8');
    const token = readFileSync(join(dataDir, 'tokens.csv'), 'utf8')
      .split('\n')
      .find((l) => l.includes(',admin,admin'))!
      .split(',')[0];
    const h2 = h2Clients(url, ca, token);
    const c0 = await h2.req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', loadCrd());
    if (c0.status !== 201) throw new Error(`CRD create: ${JSON.stringify(c0.body)}`);
    // Untimed creates first, as many as the etcd anchor's untimed puts: the same start for both
    // stores (a fresh Node process runs its first thousand requests unoptimised; Go is compiled).
    await pool(WARMUP, C, async (i) => {
      const r = await h2.req('POST', R, createBody(N + i, `warm-${i}`));
      if (r.status !== 201) throw new Error(`warm-up create: ${r.status} ${JSON.stringify(r.body)}`);
    });
    const rssStart = rssMiB(child.pid!);

    // 1. create over HTTP/2
    const create = await createPhase(
      'HTTP/2 (4 connections)',
      child.pid!,
      Array.from({ length: N }, (_, i) => createBody(i, `obj-${i}`)),
      h2.req,
    );
    const rssAfterCreate = rssMiB(child.pid!);
    const serverRssMiB = { start: rssStart.rss, afterCreate: rssAfterCreate.rss };
    const about = { benchmark: 'apiserver', node: process.version, objects: N, concurrency: C, objectBytes: createBody(0, 'obj-0').length, synchronous: SYNC };
    if (STOP_AFTER === 'http2-creates') {
      process.stdout.write(JSON.stringify({ ...about, create, serverRssMiB }, null, 2) + '\n');
      h2.close();
      return;
    }

    // 1b. the same creates over C HTTP/1.1 connections (warmed first, so TLS handshakes are not timed)
    const h1 = connect1(url, ca, token, C);
    await pool(C, C, async (i) => {
      const r = await h1.req('GET', `${R}/obj-${i}`);
      if (r.status !== 200) throw new Error(`warm-up get: ${r.status}`);
    });
    const createHttp1 = await createPhase(
      `HTTP/1.1 (${C} keep-alive connections)`,
      child.pid!,
      Array.from({ length: N }, (_, i) => createBody(i, `h-${i}`)),
      h1.req,
    );
    h1.agent.destroy();

    // 1c. the roof: the same HTTP/2 creates against a Node server that only parses and echoes them
    const nullServer = await startChild([NULL_SERVER, join(pki, 'apiserver.key'), join(pki, 'apiserver.crt')]);
    ceiling = nullServer.child;
    const nh2 = h2Clients(nullServer.url, ca, token);
    await pool(WARMUP, C, async (i) => void (await nh2.req('POST', R, createBody(N + i, `warm-${i}`))));
    const nodeCeiling = await createPhase(
      'HTTP/2 (4 connections) to a Node server that parses and echoes',
      ceiling.pid!,
      Array.from({ length: N }, (_, i) => createBody(i, `obj-${i}`)),
      nh2.req,
    );
    nh2.close();
    await terminate(ceiling, 5000);

    const head = { ...about, create, createHttp1, nodeCeiling };
    if (STOP_AFTER === 'creates') {
      process.stdout.write(JSON.stringify({ ...head, serverRssMiB }, null, 2) + '\n');
      h2.close();
      return;
    }

    // 2. list: one full list, then paged with limit=500, then a label-selected list
    let t0 = performance.now();
    const full = await h2.req('GET', R);
    const listAllMs = performance.now() - t0;
    if (full.body.items.length !== 2 * N + WARMUP) throw new Error(`listed ${full.body.items.length}, want ${2 * N + WARMUP}`);
    t0 = performance.now();
    let cont = '',
      paged = 0,
      pages = 0;
    do {
      const r = await h2.req('GET', `${R}?limit=500${cont ? `&continue=${cont}` : ''}`);
      paged += r.body.items.length;
      pages++;
      cont = r.body.metadata.continue ?? '';
    } while (cont);
    const listPagedMs = performance.now() - t0;
    t0 = performance.now();
    const sel = await h2.req('GET', `${R}?labelSelector=${encodeURIComponent('nbswarm.io/user=user3')}`);
    const listSelMs = performance.now() - t0;

    // 3. watchers: WATCHERS streams over 4 connections in a worker thread (so parsing 100k events
    //    does not share an event loop with the updating client), then UPDATES updates at concurrency C.
    const rv = full.body.metadata.resourceVersion;
    const sent = new Float64Array(new SharedArrayBuffer(8 * (UPDATES + PACED)));
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { url, ca, token, rv, watchers: WATCHERS, sent, updates: UPDATES, paced: PACED } });
    // A watch the server ends (a client that does not keep up) would leave the counts short forever: fail instead.
    const watchEnded = new Promise<never>((_, reject) => {
      worker.on('message', (m: { type: string; why?: string }) => m.type === 'ended' && reject(new Error(`a watch ended early: ${m.why}`)));
      worker.on('error', reject);
    });
    watchEnded.catch(() => {});
    const workerDone = Promise.race([
      watchEnded,
      new Promise<{ received: number; deliver: number[]; paced: number[]; burstSecs: number }>((resolve) => {
        worker.on('message', (m: { type: string; received?: number; deliver?: number[]; paced?: number[]; burstSecs?: number }) => {
          if (m.type === 'done') resolve({ received: m.received!, deliver: m.deliver!, paced: m.paced!, burstSecs: m.burstSecs! });
        });
      }),
    ]);
    await Promise.race([watchEnded, new Promise<void>((resolve) => worker.on('message', (m: { type: string }) => m.type === 'ready' && resolve()))]);
    const burstDone = Promise.race([
      watchEnded,
      new Promise<void>((resolve) => worker.on('message', (m: { type: string }) => m.type === 'burst-done' && resolve())),
    ]);
    const update = (i: number) => h2.req('PATCH', `${R}/obj-${i % N}`, { metadata: { annotations: { [SEQ]: String(i) } } }, 'application/merge-patch+json');
    const updLat: number[] = [];
    t0 = performance.now();
    await pool(UPDATES, C, async (i) => {
      const t = performance.now();
      sent[i] = performance.timeOrigin + t;
      const r = await update(i);
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
      await update(i);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { received, deliver, paced, burstSecs } = await workerDone;
    const fanSecs = (performance.now() - t0) / 1000;
    const rssEnd = rssMiB(child.pid!);
    await worker.terminate();
    h2.close();

    const result = {
      ...head,
      watchers: WATCHERS,
      updates: UPDATES,
      list: {
        allItemsMs: Math.round(listAllMs),
        pagedLimit500Ms: Math.round(listPagedMs),
        pages,
        pagedItems: paged,
        labelSelectedMs: Math.round(listSelMs),
        labelSelectedItems: sel.body.items.length,
      },
      update: { seconds: +updSecs.toFixed(2), opsPerSec: Math.round(UPDATES / updSecs), p50Ms: pct(updLat, 50), p99Ms: pct(updLat, 99) },
      fanout: {
        burstEventsDelivered: deliver.length,
        burstEventsExpected: want,
        burstEventsPerSec: Math.round(deliver.length / burstSecs),
        burstDeliveryP50Ms: pct(deliver, 50),
        burstDeliveryP99Ms: pct(deliver, 99),
        pacedUpdates: PACED,
        pacedEventsDelivered: paced.length,
        pacedDeliveryP50Ms: pct(paced, 50),
        pacedDeliveryP99Ms: pct(paced, 99),
        allDeliveredAfterSec: +fanSecs.toFixed(2),
        totalDelivered: received,
      },
      serverRssMiB: { ...serverRssMiB, end: rssEnd.rss, peak: rssEnd.peak },
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    if (ceiling) await terminate(ceiling, 5000);
    await terminate(child, 5000);
    rmSync(dataDir, { recursive: true, force: true });
    dataDirs.delete(dataDir);
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
  await Promise.all(
    Array.from(
      { length: d.watchers },
      (_, w) =>
        new Promise<void>((ready) => {
          const s = sessions[w % sessions.length].request({
            ':method': 'GET',
            ':path': `${R}?watch=1&resourceVersion=${d.rv}&allowWatchBookmarks=true`,
            authorization: `Bearer ${d.token}`,
          });
          let buf = '';
          s.on('response', () => ready());
          s.on('data', (c: Buffer) => {
            buf += c;
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const ev = JSON.parse(buf.slice(0, i));
              buf = buf.slice(i + 1);
              if (ev.type !== 'MODIFIED') continue;
              const seq = Number(ev.object.metadata.annotations?.[SEQ]);
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
          s.on('close', () => {
            if (received < want)
              parentPort!.postMessage({ type: 'ended', why: `watch ${w} closed after ${received} of ${want} events in all (see the server's log)` });
          });
        }),
    ),
  );
  parentPort!.postMessage({ type: 'ready' });
  setTimeout(finish, 120_000).unref();
}

if (isMainThread) await main();
else await watchers();
