/**
 * P6 anchor: Debian's etcd 3.4 — the store under a real kube-apiserver — on loopback with a
 * temporary data dir, taking puts of the same ~1 KB objects the API-server bench creates, at the same
 * concurrency, through its JSON gateway (POST /v3/kv/put, base64 key/value). Each put is durable
 * (etcd fsyncs its WAL before answering), as are the embedded API server's creates.
 *
 * Standalone: node dist/bench/etcd.js [--n 5000] [--concurrency 32] [--warmup 1000] [--tls]
 */
import { Command, Option } from 'commander';
import { terminate } from './lib/child-rpc.js';
import { leaveNothingBehind } from './lib/teardown.js';
import { wholeNumber } from './lib/argv.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { ensureTls } from '../src/apiserver/tls.js';
import { freeLoopbackPort } from '../src/controller/netutil.js';
import { replyText } from '../src/util/http-reply.js';
import { fileURLToPath } from 'node:url';
import { mapLimit, round, roundSummary, sleep, summarize, type Summary } from './lib/stats.js';
import { procCpuMs, selfCpuMs } from './lib/proc.js';

export const ETCD_BIN = process.env.NBSWARM_ETCD ?? '/usr/bin/etcd';

/** A NotebookServer-shaped custom object of ~1 KB (the size both stores are fed). */
export function sampleObject(i: number, namespace = 'bench', bytes = 1024): Record<string, unknown> {
  const obj: any = {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: `obj-${i}`, namespace, labels: { 'bench.nbswarm.io/set': 'p6', 'nbswarm.io/user': `user${i % 100}` } },
    spec: {
      user: `user${i % 100}`,
      servername: `s${i}`,
      image: 'local/busybox:test',
      mode: 'custom',
      command: ['httpd', '-f', '-p', '8888'],
      stopped: true,
      env: [] as unknown[],
    },
  };
  // Pad with env entries to reach the target size, as real objects grow by env, not by junk fields.
  let k = 0;
  while (JSON.stringify(obj).length < bytes - 40) obj.spec.env.push({ name: `PAD_${k++}`, value: 'x'.repeat(24) });
  return obj;
}

/** Data dirs of the etcds started here and not yet stopped (what a standalone run removes on its way out). */
const etcdDirs = new Set<string>();

export interface EtcdHandle {
  url: string;
  proc: ChildProcess;
  /** How to reach the client URL (a keep-alive pool; over TLS when etcd serves it). */
  agent: http.Agent;
  stop(): Promise<void>;
}

/**
 * etcd on loopback with a temporary data dir. `tls`: its client URL serves HTTPS with a certificate
 * from a throw-away CA (the API server's own TLS code makes both), as etcd under a kube-apiserver is
 * reached; the peer URL stays plain (one member, nothing crosses it).
 */
export async function startEtcd(opts: { tls?: boolean } = {}): Promise<EtcdHandle> {
  if (!existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} not found: apt-get install etcd-server`);
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-etcd-'));
  etcdDirs.add(dir);
  const client = await freeLoopbackPort();
  const peer = await freeLoopbackPort();
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const tlsArgs: string[] = [];
  let agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  if (opts.tls) {
    const pkiDir = join(dir, 'client-tls');
    const material = ensureTls(pkiDir, ['127.0.0.1']);
    tlsArgs.push('--cert-file', join(pkiDir, 'pki', 'apiserver.crt'), '--key-file', join(pkiDir, 'pki', 'apiserver.key'));
    agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca: material.caPem });
  }
  const proc = spawn(
    ETCD_BIN,
    [
      '--name',
      'bench',
      '--data-dir',
      dir,
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `bench=http://127.0.0.1:${peer}`,
      '--log-level',
      'error',
      '--logger',
      'zap',
      ...tlsArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await gatewayRequest(url, agent, 'GET', '/health');
      if (r.status === 200) break;
    } catch {
      /* not up yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      etcdDirs.delete(dir);
      throw new Error(`etcd did not start: ${stderr}`);
    }
    await sleep(100);
  }
  return {
    url,
    proc,
    agent,
    stop: async () => {
      agent.destroy();
      await terminate(proc, 5000);
      rmSync(dir, { recursive: true, force: true });
      etcdDirs.delete(dir);
    },
  };
}

function gatewayRequest(base: string, agent: http.Agent, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = (base.startsWith('https:') ? https : http).request(
      `${base}${path}`,
      { method, agent, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} },
      (res) => void replyText(res).then((text) => resolve({ status: res.statusCode ?? 0, body: text }), reject),
    );
    req.on('error', reject);
    req.end(data);
  });
}

export interface EtcdResult {
  version: string;
  /** Whether the client URL served HTTPS. */
  tls: boolean;
  n: number;
  concurrency: number;
  /** Untimed puts before the clock starts. */
  warmup: number;
  valueBytes: number;
  wallMs: number;
  putsPerSec: number;
  latencyMs: Summary;
  /** etcd's CPU per put (ms, all its threads), from /proc. */
  serverCpuMsPerOp: number;
  /** This client's CPU per put (ms). */
  clientCpuMsPerOp: number;
}

/** `n` puts of ~1 KB values at `concurrency` → puts/s and per-put latency. */
export async function benchEtcd(opts: { n?: number; concurrency?: number; valueBytes?: number; warmup?: number; tls?: boolean } = {}): Promise<EtcdResult> {
  const n = opts.n ?? 5000;
  const tls = opts.tls ?? false;
  const warmup = opts.warmup ?? 1000;
  const concurrency = opts.concurrency ?? 32;
  const valueBytes = opts.valueBytes ?? 1024;
  const etcd = await startEtcd({ tls });
  const request = (method: string, path: string, body?: unknown) => gatewayRequest(etcd.url, etcd.agent, method, path, body);
  try {
    const ver = await request('GET', '/version');
    const version = (JSON.parse(ver.body) as { etcdserver?: string }).etcdserver ?? '?';
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    // Encode before the clock starts: the bench measures the store, not JSON.stringify.
    const bodies = Array.from({ length: n }, (_, i) => ({
      key: b64(`/registry/nbswarm.io/notebookservers/bench/obj-${i}`),
      value: b64(JSON.stringify(sampleObject(i, 'bench', valueBytes))),
    }));
    // Untimed puts of the same objects first (as many as the API server's untimed creates): the
    // connection pool, the gateway and the store start warm on both sides.
    await mapLimit(
      Array.from({ length: Math.max(warmup, concurrency) }, (_, i) => i),
      concurrency,
      (i) => request('POST', '/v3/kv/put', { key: b64(`/warm/${i}`), value: b64(JSON.stringify(sampleObject(n + i, 'bench', valueBytes))) }),
    );
    const lat: number[] = [];
    const server0 = procCpuMs(etcd.proc.pid!);
    const client0 = selfCpuMs();
    const t0 = performance.now();
    await mapLimit(bodies, concurrency, async (b) => {
      const s = performance.now();
      const r = await request('POST', '/v3/kv/put', b);
      if (r.status !== 200) throw new Error(`etcd put: HTTP ${r.status} ${r.body}`);
      lat.push(performance.now() - s);
    });
    const wallMs = performance.now() - t0;
    const serverCpu = procCpuMs(etcd.proc.pid!) - server0;
    const clientCpu = selfCpuMs() - client0;
    // Every put answered 200; check they are all stored too, so the anchor's rate is of real puts.
    const prefix = '/registry/nbswarm.io/notebookservers/bench/';
    const count = await request('POST', '/v3/kv/range', { key: b64(prefix), range_end: b64(prefix.slice(0, -1) + '0'), count_only: true });
    const stored = Number((JSON.parse(count.body) as { count?: string }).count ?? 0);
    if (stored !== n) throw new Error(`etcd holds ${stored} of the ${n} keys put`);
    return {
      version,
      tls,
      n,
      concurrency,
      warmup,
      valueBytes,
      wallMs: round(wallMs, 0),
      putsPerSec: round((n * 1000) / wallMs, 0),
      latencyMs: roundSummary(summarize(lat), 2),
      serverCpuMsPerOp: round(serverCpu / n, 3),
      clientCpuMsPerOp: round(clientCpu / n, 3),
    };
  } finally {
    await etcd.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  leaveNothingBehind('bench/etcd', etcdDirs);
  const opts = new Command('node dist/bench/etcd.js')
    .description('etcd 3.4 puts of ~1 KB objects through its JSON gateway (the P6 baseline alone)')
    .allowExcessArguments(false)
    .addOption(new Option('--n <count>', 'objects put').argParser(wholeNumber(1)).default(5000))
    .addOption(new Option('--concurrency <n>', 'puts in flight').argParser(wholeNumber(1)).default(32))
    .addOption(new Option('--warmup <count>', 'untimed puts before the clock starts').argParser(wholeNumber(0)).default(1000))
    .addOption(new Option('--tls', 'etcd serves its client URL over HTTPS'))
    .parse()
    .opts<{ n: number; concurrency: number; warmup: number; tls?: boolean }>();
  benchEtcd({ n: opts.n, concurrency: opts.concurrency, warmup: opts.warmup, tls: opts.tls })
    .then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
