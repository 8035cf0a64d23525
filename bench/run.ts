/**
 * nbswarm benchmarks (issue 7): each scenario side by side with a raw-Docker baseline in the same
 * run — same image, same daemon, same concurrency — repeated, with min/median/max, the ratio, the
 * target and whether it was met.
 *
 *   node dist/bench/run.js [--scenarios P1,P2,...] [--quick] [--backend service|container|both]
 *                          [--runs N] [--burst N] [--idle-n N] [--idle-seconds S] [--resync S]
 *                          [--scale-n N] [--scale-running N] [--rest-seconds S] [--restart-n N] [--out FILE]
 *
 * JSON on stdout and in bench/results/<timestamp>.json; a short table on stderr.
 * Never run as a test: timings are reported, not asserted.
 */
import Docker from 'dockerode';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../src/api/types.js';
import { repoPath } from '../src/paths.js';
import { startProxyProcess, type RemoteProxy } from './lib/proxy-child.js';
import { diffCounts, isList, type CallCounts } from './lib/docker-proxy.js';
import { Kube, ReadyTracker, benchServer, type Obj } from './lib/kube.js';
import * as raw from './lib/raw-docker.js';
import { mapLimit, median, ratio, round, roundSummary, sleep, summarize, type Summary } from './lib/stats.js';
import {
  benchPolicy,
  informerSynced,
  queueStats,
  reconcilerStats,
  startApiChild,
  startOperatorInProcess,
  type ApiHandle,
  type RunningOperator,
} from './lib/stack.js';
import { benchEtcd } from './etcd.js';
import { loadCrd } from '../src/controller/crd.js';
import { startOperatorCli } from './lib/operator-cli.js';

type BackendKind = 'service' | 'container';

const ALL = ['P1', 'P2', 'P3', 'P4', 'P5', 'P6'];

interface Args {
  scenarios: string[];
  quick: boolean;
  backends: BackendKind[];
  runs: number;
  burst: number;
  idleN: number;
  idleSeconds: number;
  resyncSeconds: number;
  scaleN: number;
  scaleRunning: number;
  restartN: number;
  restSeconds: number;
  fanoutWatchers: number;
  fanoutUpdates: number;
  out?: string;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, d: number) => (get(name) !== undefined ? Number(get(name)) : d);
  const quick = argv.includes('--quick');
  const backend = get('--backend') ?? 'both';
  if (!['service', 'container', 'both'].includes(backend)) throw new Error(`--backend must be service, container or both (got ${backend})`);
  const scenarios = (get('--scenarios') ?? ALL.join(',')).split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  for (const s of scenarios) if (!ALL.includes(s)) throw new Error(`unknown scenario ${s} (known: ${ALL.join(', ')})`);
  return {
    scenarios,
    quick,
    backends: backend === 'both' ? ['service', 'container'] : [backend as BackendKind],
    runs: num('--runs', quick ? 6 : 20),
    burst: num('--burst', quick ? 20 : 200),
    idleN: num('--idle-n', quick ? 50 : 1000),
    idleSeconds: num('--idle-seconds', quick ? 30 : 300),
    resyncSeconds: num('--resync', quick ? 10 : 60),
    scaleN: num('--scale-n', quick ? 2000 : 10_000),
    scaleRunning: num('--scale-running', quick ? 20 : 100),
    restartN: num('--restart-n', quick ? 50 : 1000),
    restSeconds: num('--rest-seconds', 45),
    fanoutWatchers: num('--watchers', 100),
    fanoutUpdates: num('--fanout-updates', quick ? 50 : 200),
    out: get('--out'),
  };
}

interface Target {
  metric: string;
  want: string;
  actual: number | string;
  met: boolean;
}

interface ScenarioResult {
  id: string;
  title: string;
  backend?: BackendKind;
  params: Record<string, unknown>;
  nbswarm?: Record<string, unknown>;
  raw?: Record<string, unknown>;
  ratio?: Record<string, number>;
  targets: Target[];
  notes: string[];
  error?: string;
  seconds?: number;
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** Everything one bench run shares. */
class Ctx {
  readonly runId = `${Date.now().toString(36).slice(-5)}${randomBytes(2).toString('hex')}`;
  /** Docker object prefix for this run's operator: its orphan GC never touches another run's objects. */
  readonly prefix = `nbb${this.runId}`;
  readonly docker = new Docker({ socketPath: '/var/run/docker.sock' });
  imageRef = raw.BENCH_IMAGE;
  imageId = '';
  api!: ApiHandle;
  kube!: Kube;
  opProxy!: RemoteProxy;
  rawProxy!: RemoteProxy;
  rawDocker!: Docker;
  operator?: RunningOperator;
  namespaces: string[] = [];
  swarm = false;
  constructor(readonly args: Args) {}

  get runLabels(): Record<string, string> {
    return { [raw.BENCH_RUN_LABEL]: this.runId };
  }

  ns(name: string): string {
    const n = `b${this.runId}-${name}`.toLowerCase();
    this.namespaces.push(n);
    return n;
  }

  async ensureOperator(kind: BackendKind): Promise<RunningOperator> {
    if (this.operator?.kind === kind) return this.operator;
    await this.stopOperator();
    const policy = await benchPolicy(kind, this.prefix, this.args.resyncSeconds);
    this.operator = await startOperatorInProcess({ kubeconfigPath: this.api.kubeconfigPath, policy, kind, dockerSocket: this.opProxy.socketPath });
    return this.operator;
  }

  async stopOperator(): Promise<void> {
    const o = this.operator;
    this.operator = undefined;
    if (o) await o.close();
  }

  async concurrency(): Promise<number> {
    return (await benchPolicy('service', this.prefix, 1)).concurrency;
  }

  /**
   * Remove every container carrying label `key=value` and wait until none is left. Swarm stops a
   * removed service's task with a 10 s grace period (busybox httpd ignores SIGTERM); the harness
   * kills them itself so teardown does not dominate the run time. Not part of any measurement.
   */
  async containersGone(key: string, value: string, timeoutMs = 120_000): Promise<void> {
    const filters = JSON.stringify({ label: [`${key}=${value}`] });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const cs = await this.docker.listContainers({ all: true, filters });
      if (cs.length === 0) return;
      await mapLimit(cs, 8, (c) => this.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined));
      await sleep(100);
    }
    throw new Error(`containers labelled ${key}=${value} still there after ${timeoutMs} ms`);
  }
}

/** The operator's stats() sampled while something runs: queue depth max, in-flight max. */
function sampleQueue(op: RunningOperator, everyMs = 250): { stop(): { depthMax: number; inFlightMax: number; samples: number } } {
  let depthMax = 0;
  let inFlightMax = 0;
  let samples = 0;
  const t = setInterval(() => {
    const q = queueStats(op.op.stats());
    depthMax = Math.max(depthMax, q.depth);
    inFlightMax = Math.max(inFlightMax, q.inFlight);
    samples++;
  }, everyMs);
  return {
    stop: () => {
      clearInterval(t);
      return { depthMax, inFlightMax, samples };
    },
  };
}

/** hostUrl as published; the bench connects to loopback only (network rule). */
function loopback(hostUrl: string): string {
  const u = new URL(hostUrl);
  if (u.hostname === '0.0.0.0' || u.hostname === '' || u.hostname === 'localhost') u.hostname = '127.0.0.1';
  return u.toString();
}

// ---------------------------------------------------------------- P1 spawn latency

async function p1(ctx: Ctx, kind: BackendKind): Promise<ScenarioResult> {
  const runs = ctx.args.runs;
  const r: ScenarioResult = {
    id: 'P1',
    title: 'spawn latency: API create → Ready + endpoint answering, vs raw create → running → answering',
    backend: kind,
    params: { runs, image: ctx.imageRef, order: 'alternating raw/nbswarm' },
    targets: [],
    notes: [],
  };
  await ctx.ensureOperator(kind);
  const ns = ctx.ns(`p1${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const opMs: number[] = [];
  const opAckMs: number[] = [];
  const opReadyMs: number[] = [];
  const rawMs: number[] = [];
  const opCalls: CallCounts[] = [];
  const rawCalls: CallCounts[] = [];
  let timeline: Record<string, unknown> | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      const doOp = async () => {
        const name = `p1-${i}`;
        const before = await ctx.opProxy.counts();
        const traced = i === runs - 1;
        if (traced) {
          await ctx.opProxy.startTrace();
          tracker.timeline = [];
        }
        const wall0 = Date.now();
        const t0 = performance.now();
        await ctx.kube.create(ns, benchServer(name, { user: `p1u${i}` }));
        const tAck = performance.now();
        await tracker.until(`${ns}/${name} Ready`, () => tracker.readyAt.has(name) || tracker.failed.has(name), 120_000);
        if (tracker.failed.has(name)) throw new Error(`${name} Failed: ${tracker.failed.get(name)}`);
        const ready = tracker.readyAt.get(name)!;
        await raw.waitHttp(loopback(ready.hostUrl));
        const t1 = performance.now();
        opMs.push(t1 - t0);
        opAckMs.push(tAck - t0);
        opReadyMs.push(ready.at - t0);
        opCalls.push(diffCounts(await ctx.opProxy.counts(), before));
        if (traced) {
          // One spawn's timeline (ms from the create request): Docker calls and status changes, to explain the gap to raw.
          const docker = (await ctx.opProxy.stopTrace()).map(([t, k]) => `${t - wall0} ${k}`);
          const api = (tracker.timeline ?? []).map(([t, , type, phase, msg]) => `${t - wall0} ${type} ${phase} ${msg}`);
          tracker.timeline = undefined;
          timeline = { dockerCalls: docker, apiEvents: api, httpAnsweredMs: round(t1 - t0, 0) };
        }
        await ctx.kube.remove(ns, name);
        await tracker.until(`${name} deleted`, () => tracker.deletedAt.has(name), 120_000);
        await ctx.containersGone(LABELS.namespace, ns);
      };
      const doRaw = async () => {
        const name = `${ctx.prefix}-raw-p1-${kind[0]}-${i}`;
        const before = await ctx.rawProxy.counts();
        const res = await raw.rawSpawn(kind, ctx.rawDocker, ctx.imageRef, ctx.imageId, name, { ...ctx.runLabels, 'nbswarm.bench/item': name });
        rawMs.push(res.ms);
        rawCalls.push(diffCounts(await ctx.rawProxy.counts(), before));
        await raw.removeSpawned(kind, ctx.docker, [res.id]);
        await ctx.containersGone('nbswarm.bench/item', name);
      };
      // Alternate the order so drift in machine load hits both sides alike.
      if (i % 2 === 0) {
        await doRaw();
        await doOp();
      } else {
        await doOp();
        await doRaw();
      }
      log(`P1 ${kind} run ${i + 1}/${runs}: nbswarm ${Math.round(opMs[opMs.length - 1]!)} ms, raw ${Math.round(rawMs[rawMs.length - 1]!)} ms`);
    }
  } finally {
    tracker.stop();
  }
  const op = summarize(opMs);
  const rw = summarize(rawMs);
  const medianRatio = ratio(op.median, rw.median);
  r.nbswarm = {
    totalMs: roundSummary(op),
    createAckMs: roundSummary(summarize(opAckMs)),
    readyObservedMs: roundSummary(summarize(opReadyMs)),
    dockerCallsPerSpawn: medianCalls(opCalls),
    lastRunTimeline: timeline,
  };
  r.raw = { totalMs: roundSummary(rw), dockerCallsPerSpawn: medianCalls(rawCalls) };
  r.ratio = { median: round(medianRatio, 3), min: round(ratio(op.min, rw.min), 3), max: round(ratio(op.max, rw.max), 3) };
  r.targets.push({ metric: 'median ratio nbswarm/raw', want: '≤ 1.10', actual: round(medianRatio, 3), met: medianRatio <= 1.1 });
  return r;
}

/** Per-kind median of call counts over several runs (what one spawn costs in Docker calls). */
function medianCalls(list: CallCounts[]): Record<string, number> & { _total: number; _writes: number } {
  const kinds = new Set(list.flatMap((c) => Object.keys(c.byKind)));
  const out: Record<string, number> = {};
  for (const k of [...kinds].sort()) out[k] = median(list.map((c) => c.byKind[k] ?? 0));
  return Object.assign(out, { _total: median(list.map((c) => c.total)), _writes: median(list.map((c) => c.writes)) });
}

// ---------------------------------------------------------------- P2 burst

async function p2(ctx: Ctx, kind: BackendKind): Promise<ScenarioResult> {
  const n = ctx.args.burst;
  const conc = await ctx.concurrency();
  const r: ScenarioResult = {
    id: 'P2',
    title: `burst: ${n} resources created at once → all Ready and answering, vs raw with the same concurrency`,
    backend: kind,
    params: { n, operatorConcurrency: conc, rawCreateConcurrency: conc, apiCreateConcurrency: 32 },
    targets: [],
    notes: [],
  };
  const running = await ctx.ensureOperator(kind);
  const ns = ctx.ns(`p2${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `p2-${i}`);
  const sentAt = new Map<string, number>();
  const answeredAt = new Map<string, number>();

  // Raw first, then nbswarm: both start from a daemon with none of this scenario's objects.
  log(`P2 ${kind}: raw burst of ${n}`);
  const rawBefore = await ctx.rawProxy.counts();
  const rb = await raw.rawBurst(kind, ctx.rawDocker, ctx.imageRef, ctx.imageId, n, conc, `${ctx.prefix}-raw-p2-${kind[0]}`, { ...ctx.runLabels, 'nbswarm.bench/item': `p2${kind}` });
  const rawCalls = diffCounts(await ctx.rawProxy.counts(), rawBefore);
  await raw.cleanupByLabel(ctx.docker, 'nbswarm.bench/item', `p2${kind}`);
  await ctx.containersGone('nbswarm.bench/item', `p2${kind}`);

  log(`P2 ${kind}: nbswarm burst of ${n}`);
  const q0 = queueStats(running.op.stats());
  const opBefore = await ctx.opProxy.counts();
  const sampler = sampleQueue(running);
  const t0 = performance.now();
  try {
    await mapLimit(names, 32, async (name, i) => {
      sentAt.set(name, performance.now());
      await ctx.kube.create(ns, benchServer(name, { user: `p2u${i}` }));
    });
    await Promise.all(
      names.map(async (name) => {
        await tracker.until(`${name} Ready`, () => tracker.readyAt.has(name) || tracker.failed.has(name), 600_000);
        if (tracker.failed.has(name)) throw new Error(`${name} Failed: ${tracker.failed.get(name)}`);
        await raw.waitHttp(loopback(tracker.readyAt.get(name)!.hostUrl), 60_000, 100);
        answeredAt.set(name, performance.now());
      }),
    );
  } finally {
    tracker.stop();
  }
  const wallMs = performance.now() - t0;
  const qs = sampler.stop();
  const q1 = queueStats(running.op.stats());
  const opCalls = diffCounts(await ctx.opProxy.counts(), opBefore);
  const reconciles = q1.reconciles - q0.reconciles;
  const per = names.map((nm) => answeredAt.get(nm)! - sentAt.get(nm)!);

  await deleteAll(ctx, ns, names);

  r.nbswarm = {
    wallMs: round(wallMs, 0),
    perResourceMs: roundSummary(summarize(per), 0),
    queueDepthMax: qs.depthMax,
    inFlightMax: qs.inFlightMax,
    reconciles,
    reconcilesPerSec: round(reconciles / (wallMs / 1000), 1),
    reconcileErrors: q1.errors - q0.errors,
    dockerCalls: opCalls,
  };
  r.raw = { wallMs: round(rb.wallMs, 0), perResourceMs: roundSummary(summarize(rb.perMs), 0), dockerCalls: rawCalls };
  const wr = ratio(wallMs, rb.wallMs);
  r.ratio = { wall: round(wr, 3), perResourceMedian: round(ratio(median(per), median(rb.perMs)), 3) };
  r.targets.push({ metric: 'wall-time ratio nbswarm/raw', want: '≤ 1.2', actual: round(wr, 3), met: wr <= 1.2 });
  return r;
}

// ---------------------------------------------------------------- P3 idle cost + P5 restart (shared fixture)

interface Fixture {
  ns: string;
  names: string[];
  kind: BackendKind;
}

async function convergedFixture(ctx: Ctx, kind: BackendKind, n: number, tag: string): Promise<Fixture> {
  await ctx.ensureOperator(kind);
  const ns = ctx.ns(`${tag}${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
  const t0 = performance.now();
  try {
    await mapLimit(names, 32, (name, i) => ctx.kube.create(ns, benchServer(name, { user: `${tag}u${i}` })));
    await tracker.until(`${n} servers Ready`, () => names.every((nm) => tracker.readyAt.has(nm)), 120_000 + n * 2000);
  } finally {
    tracker.stop();
  }
  log(`${tag} ${kind}: ${n} servers Ready in ${Math.round(performance.now() - t0)} ms`);
  return { ns, names, kind };
}

/** Wait until the operator's queue is empty and nothing runs, twice in a row. */
async function quiesce(ctx: Ctx, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  while (Date.now() < deadline) {
    const q = queueStats(ctx.operator!.op.stats());
    calm = q.depth === 0 && q.inFlight === 0 ? calm + 1 : 0;
    if (calm >= 4) return;
    await sleep(250);
  }
}

async function p3(ctx: Ctx, fx: Fixture): Promise<ScenarioResult> {
  const window = ctx.args.idleSeconds;
  const resync = ctx.args.resyncSeconds;
  const resyncs = Math.ceil(window / resync);
  const r: ScenarioResult = {
    id: 'P3',
    title: `idle cost: ${fx.names.length} converged resources, ${window} s of resyncs every ${resync} s`,
    backend: fx.kind,
    params: { n: fx.names.length, windowSeconds: window, resyncSeconds: resync, resyncsInWindow: resyncs },
    targets: [],
    notes: [],
  };
  await quiesce(ctx);
  await sleep(2000);
  const c0 = await ctx.opProxy.counts();
  const cpu0 = process.cpuUsage();
  const st0 = ctx.operator!.op.stats();
  const t0 = performance.now();
  await sleep(window * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const c1 = await ctx.opProxy.counts();
  const st1 = ctx.operator!.op.stats();
  const calls = diffCounts(c1, c0);
  const listKinds: Record<string, number> = {};
  const otherReads: Record<string, number> = {};
  for (const [k, v] of Object.entries(calls.byKind)) {
    const [m, p] = k.split(' ');
    if (isList(m!, p!)) listKinds[k] = v;
    else if (m === 'GET' || m === 'HEAD') otherReads[k] = v;
  }
  const maxListPerKind = Math.max(0, ...Object.values(listKinds));
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const rq0 = queueStats(st0);
  const rq1 = queueStats(st1);

  // Raw: an idle raw spawner makes no calls; the floor for "knowing the state" is one list of each kind.
  const tl = performance.now();
  await ctx.rawDocker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) });
  if (fx.kind === 'service') {
    await ctx.rawDocker.listServices({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) } as any);
    await ctx.rawDocker.listTasks({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] }) } as any);
  }
  const rawListMs = performance.now() - tl;

  r.nbswarm = {
    elapsedSeconds: round(elapsed, 1),
    dockerCalls: calls,
    listCallsByKind: listKinds,
    otherReadsByKind: otherReads,
    readsPerResourcePerResync: round((calls.total - calls.writes) / fx.names.length / resyncs, 2),
    reconciles: rq1.reconciles - rq0.reconciles,
    operatorCpuMs: round(cpuMs, 0),
    operatorCpuPercentOfOneCore: round((cpuMs / 1000 / elapsed) * 100, 2),
    apiServerCpuMsTotal: round(ctx.api.cpuMs(), 0),
  };
  r.raw = { idleCalls: 0, oneFullListMs: round(rawListMs, 1) };
  r.notes.push('operator CPU is this process (operator + an idle bench harness); the proxy and the API server run in their own processes.');
  r.notes.push('other helpers share this daemon: Docker events about their objects can wake the operator and add reads.');
  r.targets.push({ metric: 'Docker writes while idle', want: '0', actual: calls.writes, met: calls.writes === 0 });
  r.targets.push({
    metric: `max list calls of one kind (${resyncs} resyncs in window)`,
    want: `≤ ${resyncs} (1 per resync per kind)`,
    actual: maxListPerKind,
    met: maxListPerKind <= resyncs,
  });
  return r;
}

async function p5(ctx: Ctx, fx: Fixture): Promise<ScenarioResult> {
  const n = fx.names.length;
  const r: ScenarioResult = {
    id: 'P5',
    title: `restart: operator restarted with ${n} running servers → converged`,
    backend: fx.kind,
    params: { n },
    targets: [],
    notes: [],
  };
  await quiesce(ctx);
  await ctx.stopOperator();
  const tracker = new ReadyTracker(ctx.kube, fx.ns);
  await tracker.start();
  const c0 = await ctx.opProxy.counts();
  const t0 = performance.now();
  const op = await ctx.ensureOperator(fx.kind);
  const tStarted = performance.now();
  // Converged: first list done, every resource reconciled once, queue empty, nothing running.
  let convergedAt = NaN;
  const deadline = Date.now() + 120_000 + n * 200;
  while (Date.now() < deadline) {
    const s = op.op.stats();
    const q = queueStats(s);
    if (informerSynced(s) && q.reconciles >= n && q.depth === 0 && q.inFlight === 0) {
      convergedAt = performance.now();
      break;
    }
    await sleep(20);
  }
  await sleep(1000);
  const calls = diffCounts(await ctx.opProxy.counts(), c0);
  const rs = reconcilerStats(op.op.stats());
  tracker.stop();
  const convergeMs = convergedAt - t0;

  const tl = performance.now();
  const filters = JSON.stringify({ label: [`${LABELS.namespace}=${fx.ns}`] });
  if (fx.kind === 'service') {
    await ctx.rawDocker.listServices({ filters } as any);
    await ctx.rawDocker.listTasks({ filters } as any);
  } else await ctx.rawDocker.listContainers({ all: true, filters });
  const rawListMs = performance.now() - tl;

  r.nbswarm = {
    convergeMs: round(convergeMs, 0),
    startOperatorMs: round(tStarted - t0, 0),
    dockerCalls: calls,
    statusPatches: rs.statusPatches,
    apiModifiedEvents: tracker.modified,
    reconciles: queueStats(op.op.stats()).reconciles,
  };
  r.raw = { listStateMs: round(rawListMs, 1) };
  r.ratio = { convergeVsRawList: round(ratio(convergeMs, rawListMs), 1) };
  r.targets.push({ metric: 'time to converged', want: '< 3000 ms', actual: round(convergeMs, 0), met: convergeMs < 3000 });
  r.targets.push({ metric: 'Docker writes during restart', want: '0', actual: calls.writes, met: calls.writes === 0 });
  if (!Number.isFinite(convergeMs)) r.notes.push('did not converge within the timeout');
  return r;
}

/** Delete through the API (the operator's finalizer removes the Docker objects), then make sure nothing is left. */
async function deleteAll(ctx: Ctx, ns: string, names: string[]): Promise<void> {
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const present = () => names.filter((nm) => tracker.present.has(nm)).length;
  await mapLimit(names, 32, (nm) => ctx.kube.remove(ns, nm));
  try {
    await tracker.until(`${names.length} resources deleted`, () => present() === 0, 300_000);
  } catch (err) {
    log(`cleanup: ${(err as Error).message}; removing by label`);
  } finally {
    tracker.stop();
  }
  await raw.cleanupByLabel(ctx.docker, LABELS.namespace, ns);
  await ctx.containersGone(LABELS.namespace, ns, 300_000);
}

async function removeFixture(ctx: Ctx, fx: Fixture): Promise<void> {
  await deleteAll(ctx, fx.ns, fx.names);
}

// ---------------------------------------------------------------- P4 scale

async function p4(ctx: Ctx, kind: BackendKind): Promise<ScenarioResult> {
  const n = ctx.args.scaleN;
  const running = Math.min(ctx.args.scaleRunning, n);
  const r: ScenarioResult = {
    id: 'P4',
    title: `scale: ${n} resources in the embedded API, ${running} running, the rest stopped`,
    backend: kind,
    params: { n, running, watchers: ctx.args.fanoutWatchers, fanoutUpdates: ctx.args.fanoutUpdates },
    targets: [],
    notes: [],
  };
  // The operator runs as users run it (the bundled CLI) in its own process, so its RSS is its own.
  await ctx.stopOperator();
  const policy = await benchPolicy(kind, ctx.prefix, ctx.args.resyncSeconds);
  const op = await startOperatorCli({ kubeconfigPath: ctx.api.kubeconfigPath, policy, kind, dockerSocket: ctx.opProxy.socketPath });
  const memIdle = (await op.stats()).memory as NodeJS.MemoryUsage;
  const ns = ctx.ns(`p4${kind[0]}`);
  await ctx.kube.ensureNamespace(ns);
  const tracker = new ReadyTracker(ctx.kube, ns);
  await tracker.start();
  const names = Array.from({ length: n }, (_, i) => `p4-${i}`);
  const t0 = performance.now();
  await mapLimit(names, 32, (name, i) => ctx.kube.create(ns, benchServer(name, { user: `p4u${i}`, stopped: i >= running })));
  const createMs = performance.now() - t0;
  log(`P4: ${n} created in ${Math.round(createMs)} ms; waiting for the operator (pid ${op.pid}) to converge`);
  let converged = true;
  let depthMax = 0;
  let rssMax = 0;
  const progress = setInterval(() => {
    void op.stats().then((st) => {
      const q = queueStats(st);
      depthMax = Math.max(depthMax, q.depth);
      rssMax = Math.max(rssMax, op.rssBytes());
      const ph: Record<string, number> = {};
      for (const p of tracker.phase.values()) ph[p] = (ph[p] ?? 0) + 1;
      log(`P4: phases ${JSON.stringify(ph)}, ready ${tracker.readyAt.size}, queue ${JSON.stringify(q)}, operator RSS ${Math.round(op.rssBytes() / 2 ** 20)} MB`);
    });
  }, 5_000);
  try {
    await tracker.until(
      `${n} resources converged`,
      () => {
        for (let i = 0; i < n; i++) {
          const nm = names[i]!;
          if (i < running ? !tracker.readyAt.has(nm) : tracker.phase.get(nm) !== 'Stopped') return false;
        }
        return true;
      },
      ctx.args.quick ? 150_000 : 1_500_000,
    );
  } catch (err) {
    converged = false;
    r.notes.push((err as Error).message);
  }
  clearInterval(progress);
  const convergeMs = performance.now() - t0;
  const phases: Record<string, number> = {};
  for (const p of tracker.phase.values()) phases[p] = (phases[p] ?? 0) + 1;
  tracker.stop();
  log(`P4: converged=${converged} after ${Math.round(convergeMs)} ms (${JSON.stringify(phases)})`);
  // Let requeues drain before reading memory.
  for (let calm = 0, i = 0; calm < 4 && i < 120; i++) {
    const q = queueStats(await op.stats());
    calm = q.depth === 0 && q.inFlight === 0 ? calm + 1 : 0;
    await sleep(250);
  }
  // What the host pays to keep n resources: RSS with the process left alone (no forced GC) until
  // V8's memory reducer has run (it does ~30 s after a burst); the median of the last 10 s. The
  // peak during the burst is reported beside it.
  const restRss: number[] = [];
  for (let i = 0; i < ctx.args.restSeconds; i++) {
    await sleep(1000);
    restRss.push(op.rssBytes());
    rssMax = Math.max(rssMax, restRss[restRss.length - 1]!);
  }
  const opStats = await op.stats();
  const mem = { ...(opStats.memory as NodeJS.MemoryUsage), rss: median(restRss.slice(-10)) };
  const apiRss = ctx.api.rssBytes();

  // List latency for all n in one response: request sent → last byte received (the server's work
  // and the wire; Kubernetes' API call latency SLO is measured at the server), and beside it the
  // same plus this Node client's JSON.parse of the ~18 MB body.
  const listMs: number[] = [];
  const listParsedMs: number[] = [];
  const listChunkedMs: number[] = [];
  let listBytes = 0;
  for (let i = 0; i < 5; i++) {
    const got = await ctx.kube.listRaw(ns);
    listMs.push(got.lastByteMs);
    listBytes = got.bytes;
    const p0 = performance.now();
    const l = JSON.parse(got.text) as { items?: unknown[] };
    listParsedMs.push(got.lastByteMs + performance.now() - p0);
    if ((l.items ?? []).length !== n) r.notes.push(`list returned ${(l.items ?? []).length} items, expected ${n}`);
    // kubectl's default: pages of 500.
    const s2 = performance.now();
    let cont = '';
    let pages = 0;
    do {
      const page = await ctx.kube.list(ns, `limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      const next = page.metadata?.continue ?? '';
      if (next && next === cont) throw new Error('list paging: the server returned the same continue token twice');
      cont = next;
      if (++pages > n / 500 + 5) throw new Error(`list paging: more than ${pages} pages for ${n} objects`);
    } while (cont);
    listChunkedMs.push(performance.now() - s2);
  }

  log(`P4: list ${n}: median ${Math.round(median(listMs))} ms to the last byte, ${Math.round(median(listParsedMs))} ms parsed; watch fan-out to ${ctx.args.fanoutWatchers} watchers`);
  const fan = await fanout(ctx, ns, names[running] ?? names[0]!, ctx.args.fanoutWatchers, ctx.args.fanoutUpdates);

  r.nbswarm = {
    createMs: round(createMs, 0),
    createsPerSec: round((n * 1000) / createMs, 0),
    converged,
    convergeMs: round(convergeMs, 0),
    phases,
    queueDepthMax: depthMax,
    reconciles: queueStats(opStats).reconciles,
    operatorRssMB: round(mem.rss / 2 ** 20, 1),
    operatorRssPeakMB: round(Math.max(rssMax, mem.rss) / 2 ** 20, 1),
    operatorRssIdleMB: round(memIdle.rss / 2 ** 20, 1),
    operatorRssAfterBurstMB: round((restRss[0] ?? 0) / 2 ** 20, 1),
    operatorRssRestSeconds: ctx.args.restSeconds,
    operatorHeapUsedMB: round(mem.heapUsed / 2 ** 20, 1),
    operatorHeapIdleMB: round(memIdle.heapUsed / 2 ** 20, 1),
    apiServerRssMB: round(apiRss / 2 ** 20, 1),
    listAllMs: roundSummary(summarize(listMs), 1),
    listAllWithClientParseMs: roundSummary(summarize(listParsedMs), 1),
    listBytes,
    listPaged500Ms: roundSummary(summarize(listChunkedMs), 1),
    watchFanout: fan,
  };
  r.notes.push('the operator runs as the bundled CLI (node dist/nbswarm.mjs operator, same policy, Docker through the counting proxy) in its own process; its RSS is read from /proc 5 s after the queue drained (no forced GC), heap figures from its /stats. The API server RSS is read from /proc of its child process.');
  r.notes.push('fan-out watchers live in the bench process; the operator (another process) also receives each update and reconciles it.');
  await op.stop();
  const opRssMB = mem.rss / 2 ** 20;
  r.targets.push({ metric: `operator RSS at rest (MB, ${n} resources)`, want: '< 150', actual: round(opRssMB, 1), met: opRssMB < 150 });
  r.targets.push({ metric: `list latency for ${n} (median ms, request → last byte)`, want: '< 300', actual: round(median(listMs), 1), met: median(listMs) < 300 });
  r.targets.push({ metric: `watch fan-out p99 to ${ctx.args.fanoutWatchers} watchers (ms, from write sent)`, want: '< 20', actual: fan.fromSentMs.p99, met: fan.fromSentMs.p99 < 20 });
  return r;
}

/**
 * `watchers` watches on the namespace; `updates` merge-patches of one object, each stamping its
 * index in an annotation; each delivery's latency = receive time − time the patch was sent (and −
 * time it was acknowledged). Same process, same clock.
 */
async function fanout(ctx: Ctx, ns: string, target: string, watchers: number, updates: number): Promise<{ watchers: number; updates: number; deliveries: number; fromSentMs: Summary; fromAckMs: Summary; writeMs: Summary; apiServerRssMB: number }> {
  const sent: number[] = [];
  const acked: number[] = [];
  const fromSent: number[] = [];
  const fromAck: number[] = [];
  const clients: Kube[] = [];
  const stops: Array<() => void> = [];
  const pendingAck: Array<{ i: number; at: number }> = [];
  const list = await ctx.kube.list(ns, 'limit=1');
  const rv = list.metadata?.resourceVersion;
  for (let w = 0; w < watchers; w++) {
    const c = ctx.kube.clone(1);
    clients.push(c);
    stops.push(
      await c.watch(`${c.nsPath(ns)}?watch=1&resourceVersion=${rv}&fieldSelector=${encodeURIComponent(`metadata.name=${target}`)}`, (ev: { type: string; object: Obj }, at: number) => {
        const v = ev.object?.metadata?.annotations?.['bench.nbswarm.io/fanout'];
        if (ev.type !== 'MODIFIED' || v === undefined) return;
        const i = Number(v);
        if (sent[i] === undefined) return;
        fromSent.push(at - sent[i]!);
        if (acked[i] !== undefined) fromAck.push(at - acked[i]!);
        else pendingAck.push({ i, at });
      }),
    );
  }
  await sleep(500);
  const writeMs: number[] = [];
  for (let i = 0; i < updates; i++) {
    sent[i] = performance.now();
    await ctx.kube.mergePatch(ns, target, { metadata: { annotations: { 'bench.nbswarm.io/fanout': String(i) } } });
    acked[i] = performance.now();
    writeMs.push(acked[i]! - sent[i]!);
    await sleep(10);
  }
  await sleep(1000);
  // Deliveries that beat the write's response: their latency from ack is ≤ 0.
  for (const p of pendingAck) fromAck.push(p.at - acked[p.i]!);
  const apiRss = ctx.api.rssBytes();
  for (const s of stops) s();
  for (const c of clients) c.close();
  return {
    watchers,
    updates,
    deliveries: fromSent.length,
    fromSentMs: roundSummary(summarize(fromSent), 2),
    fromAckMs: roundSummary(summarize(fromAck), 2),
    writeMs: roundSummary(summarize(writeMs), 2),
    apiServerRssMB: round(apiRss / 2 ** 20, 1),
  };
}

// ---------------------------------------------------------------- P6 API server vs etcd

async function p6(ctx: Ctx): Promise<ScenarioResult> {
  const n = ctx.args.quick ? 3000 : 10_000;
  const r: ScenarioResult = {
    id: 'P6',
    title: 'API server durable creates vs etcd 3.4 puts (same ~1 KB objects, concurrency 32)',
    params: { n, concurrency: 32, objectBytes: 1024 },
    targets: [],
    notes: [],
  };
  log(`P6: etcd puts (${n})`);
  const etcd = await benchEtcd({ n, concurrency: 32 });
  log(`P6: etcd ${etcd.putsPerSec} puts/s`);
  const normal = apiserverBench(ctx, []);
  log(`P6: API server (synchronous NORMAL) ${normal.create.opsPerSec} creates/s over HTTP/2, ${normal.createHttp1.opsPerSec} over HTTP/1.1; a Node server that only echoes: ${normal.nodeCeiling.opsPerSec}/s`);
  const full = apiserverBench(ctx, ['--synchronous', 'FULL', '--creates-only']);
  log(`P6: API server (synchronous FULL) ${full.create.opsPerSec} creates/s over HTTP/2, ${full.createHttp1.opsPerSec} over HTTP/1.1`);
  r.raw = { etcd };
  r.nbswarm = { synchronousNormal: normal, synchronousFull: full };
  const vs = (x: number) => round(ratio(x, etcd.putsPerSec), 2);
  r.ratio = {
    createsVsEtcdPuts: vs(normal.create.opsPerSec),
    createsHttp1VsEtcdPuts: vs(normal.createHttp1.opsPerSec),
    createsFullVsEtcdPuts: vs(full.create.opsPerSec),
    createsFullHttp1VsEtcdPuts: vs(full.createHttp1.opsPerSec),
    nodeCeilingVsEtcdPuts: vs(normal.nodeCeiling.opsPerSec),
  };
  r.targets.push({ metric: 'API creates/s ÷ etcd puts/s (NORMAL: durable across a crash of the server)', want: '≥ 2', actual: r.ratio.createsVsEtcdPuts, met: r.ratio.createsVsEtcdPuts >= 2 });
  r.targets.push({ metric: 'API creates/s ÷ etcd puts/s (FULL: fsync per commit, as etcd)', want: '≥ 2', actual: r.ratio.createsFullVsEtcdPuts, met: r.ratio.createsFullVsEtcdPuts >= 2 });
  // What the target asks of the machine: client and server CPU per create within the cores' time.
  const cores = cpus().length;
  const budgetMs = (cores * 1000) / (2 * etcd.putsPerSec);
  const c = normal.create;
  const ceil = normal.nodeCeiling;
  r.notes.push(
    `2× etcd is ${Math.round(2 * etcd.putsPerSec)} creates/s: on ${cores} cores that is ${round(budgetMs, 3)} ms of CPU per create for client and server together. ` +
      `Measured per create: API server ${c.serverCpuMsPerOp} ms + client ${c.clientCpuMsPerOp} ms (etcd: ${etcd.serverCpuMsPerOp} + ${etcd.clientCpuMsPerOp}); ` +
      `a Node HTTPS server that only parses and echoes: ${ceil.serverCpuMsPerOp} + ${ceil.clientCpuMsPerOp} ms, ${ceil.opsPerSec}/s = ${r.ratio.nodeCeilingVsEtcdPuts}× etcd.`,
  );
  return r;
}

interface CreatePhase {
  opsPerSec: number;
  serverCpuMsPerOp: number;
  clientCpuMsPerOp: number;
}

/** bench/apiserver (a fresh server in a child process, ~1 KB NotebookServer creates at concurrency 32) with `extra` arguments. */
function apiserverBench(ctx: Ctx, extra: string[]): { create: CreatePhase; createHttp1: CreatePhase; nodeCeiling: CreatePhase } & Record<string, unknown> {
  const script = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'apiserver', 'run.js');
  const argv = [script, ...(ctx.args.quick ? ['--quick'] : []), ...extra];
  log(`P6: node ${argv.map((a) => a.replace(/.*\/dist\//, 'dist/')).join(' ')}`);
  const res = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, timeout: 600_000 });
  if (res.status !== 0) throw new Error(`bench/apiserver ${extra.join(' ')} failed (status ${res.status ?? res.signal}): ${res.stderr.slice(-800)}`);
  return JSON.parse(res.stdout);
}

// ---------------------------------------------------------------- main

function table(results: ScenarioResult[]): string {
  const rows: string[][] = [['scenario', 'backend', 'metric', 'target', 'actual', 'met']];
  for (const r of results) {
    if (r.error) rows.push([r.id, r.backend ?? '-', 'ERROR', '', r.error.slice(0, 60), 'no']);
    for (const t of r.targets) rows.push([r.id, r.backend ?? '-', t.metric, t.want, String(t.actual), t.met ? 'yes' : 'NO']);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(w[c]!)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ctx = new Ctx(args);
  const started = new Date();
  const results: ScenarioResult[] = [];
  const info: any = await ctx.docker.info();
  ctx.swarm = info?.Swarm?.LocalNodeState === 'active' && info?.Swarm?.ControlAvailable === true;
  if (!ctx.swarm && args.backends.includes('service')) {
    log('Swarm is not active: skipping the service backend');
    args.backends = args.backends.filter((b) => b !== 'service');
  }
  ctx.imageId = await raw.resolveImageId(ctx.docker, ctx.imageRef);
  const needsDocker = args.scenarios.some((s) => s !== 'P6');
  log(`run ${ctx.runId}: scenarios ${args.scenarios.join(',')}, backends ${args.backends.join(',')}${args.quick ? ', quick' : ''}`);

  const dir = repoPath('bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = args.out ?? join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = () => ({
    tool: 'nbswarm bench',
    runId: ctx.runId,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: cpus().length, node: process.version, docker: info?.ServerVersion, swarm: ctx.swarm, loadavg: loadavg().map((x) => round(x, 2)) },
    args,
    results,
    summary: results.flatMap((r) => r.targets.map((t) => ({ scenario: r.id, backend: r.backend, ...t }))),
  });
  // Partial results survive a crash or a timeout of a later scenario.
  const save = () => writeFileSync(file, JSON.stringify(report(), null, 2) + '\n');

  const run = async (id: string, backend: BackendKind | undefined, fn: () => Promise<ScenarioResult>) => {
    const t = performance.now();
    log(`${id}${backend ? ` (${backend})` : ''}: start`);
    try {
      const res = await fn();
      res.seconds = round((performance.now() - t) / 1000, 1);
      results.push(res);
      for (const tg of res.targets) log(`${id}${backend ? ` (${backend})` : ''}: ${tg.metric} = ${tg.actual} (target ${tg.want}) ${tg.met ? 'met' : 'MISSED'}`);
    } catch (err) {
      log(`${id} failed: ${(err as Error).stack ?? err}`);
      results.push({ id, title: '', backend, params: {}, targets: [], notes: [], error: String((err as Error).message ?? err), seconds: round((performance.now() - t) / 1000, 1) });
    }
    save();
  };

  // Interrupted (Ctrl-C, timeout): still remove this run's Docker objects, found by label.
  let interrupted = false;
  const onSignal = (sig: string) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${sig}: removing this run's Docker objects, then exiting (again to skip)`);
    void (async () => {
      // The operator first, or it keeps creating what is being removed.
      await Promise.race([ctx.stopOperator().catch(() => undefined), sleep(5000)]);
      await raw.cleanupByLabel(ctx.docker, raw.BENCH_RUN_LABEL, ctx.runId).catch(() => 0);
      for (const ns of ctx.namespaces) await raw.cleanupByLabel(ctx.docker, LABELS.namespace, ns).catch(() => 0);
      save();
      process.exit(130);
    })();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    // P6 first: a fresh API server and etcd, before Docker work loads the machine.
    if (args.scenarios.includes('P6')) await run('P6', undefined, () => p6(ctx));
    if (needsDocker) {
      ctx.opProxy = await startProxyProcess(join(tmpdir(), `nbswarm-bench-${ctx.runId}-op.sock`));
      ctx.rawProxy = await startProxyProcess(join(tmpdir(), `nbswarm-bench-${ctx.runId}-raw.sock`));
      ctx.rawDocker = new Docker({ socketPath: ctx.rawProxy.socketPath });
      ctx.api = await startApiChild();
      ctx.kube = await Kube.fromKubeconfig(ctx.api.kubeconfigPath, { maxSockets: 32 });
      await ctx.kube.ensureCrd(loadCrd());
      for (const kind of args.backends) {
        if (args.scenarios.includes('P1')) await run('P1', kind, () => p1(ctx, kind));
        if (args.scenarios.includes('P2')) await run('P2', kind, () => p2(ctx, kind));
        if (args.scenarios.includes('P3') || args.scenarios.includes('P5')) {
          const n = args.scenarios.includes('P3') ? args.idleN : args.restartN;
          let fx: Fixture | undefined;
          try {
            fx = await convergedFixture(ctx, kind, n, 'p3');
            if (args.scenarios.includes('P3')) await run('P3', kind, () => p3(ctx, fx!));
            if (args.scenarios.includes('P5')) {
              // P5 wants restartN servers; top the fixture up (or reuse it) rather than rebuilding.
              if (args.restartN !== n) log(`P5 reuses the P3 fixture of ${n} servers (--restart-n ${args.restartN} ignored when P3 runs too)`);
              await run('P5', kind, () => p5(ctx, fx!));
            }
          } catch (err) {
            results.push({ id: 'P3/P5', title: 'fixture', backend: kind, params: { n }, targets: [], notes: [], error: String((err as Error).message) });
            log(`P3/P5 fixture failed: ${(err as Error).stack}`);
          } finally {
            if (fx) await removeFixture(ctx, fx).catch((e) => log(`fixture cleanup: ${e}`));
          }
        }
      }
      if (args.scenarios.includes('P4')) {
        const kind = args.backends[0]!;
        await run('P4', kind, () => p4(ctx, kind));
      }
    }
  } finally {
    log('cleanup');
    await ctx.stopOperator().catch((e) => log(`stop operator: ${e}`));
    if (needsDocker) {
      await raw.cleanupByLabel(ctx.docker, raw.BENCH_RUN_LABEL, ctx.runId).catch(() => 0);
      for (const ns of ctx.namespaces) await raw.cleanupByLabel(ctx.docker, LABELS.namespace, ns).catch(() => 0);
      ctx.kube?.close();
      await ctx.api?.stop().catch(() => undefined);
      await ctx.opProxy?.close().catch(() => undefined);
      await ctx.rawProxy?.close().catch(() => undefined);
    }
  }

  const json = JSON.stringify(report(), null, 2);
  process.stdout.write(json + '\n');
  writeFileSync(file, json + '\n');
  process.stderr.write('\n' + table(results) + '\n');
  log(`written ${file}`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    log(`fatal: ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
