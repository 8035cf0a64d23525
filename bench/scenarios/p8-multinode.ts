/**
 * P8 on a real 3-node Swarm (test/cluster, its own cluster started and removed by the scenario):
 * the API server and the operator beside the manager in the cluster's hub namespace, as on a real
 * deployment (the multi-node e2e's stack).
 *
 * - Burst: n servers created at once until each answers at its status.endpoint (from the hub
 *   namespace), against raw dockerode creating the same services on the same manager: the spec the
 *   operator wrote for a warm-up server (image pinned by digest, reservations, restart policy,
 *   dnsrr + mode=host port), with the operator's concurrency. Raw goes first; the image is on
 *   every node before either starts.
 * - Failover: per round a few fresh servers spread over the nodes, `kill -9` of one worker's
 *   dockerd; for each server that ran there: Swarm's own time to a running replacement task, the
 *   raw time until that task's port answers, and nbswarm's time until the server answers at its new
 *   status.endpoint. Then the node comes back and the round's servers are removed.
 */
import type Docker from 'dockerode';
import { cpSync } from 'node:fs';
import { repoPath } from '../../src/paths.js';
import { defaultPolicy } from '../../src/config/policy.js';
import { LABELS } from '../../src/api/names.js';
import { GROUP, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import type { Policy } from '../../src/config/types.js';
import { destroyCluster, startCluster, type Cluster, type ClusterNode } from '../../test/cluster/cluster.js';
import type { PushedImage } from '../../test/cluster/push.js';
import { Stack, type OperatorProcess } from '../../test/e2e/multinode-stack.js';
import { BenchContext, log } from '../lib/context.js';
import { BENCH_IMAGE, BENCH_RUN_LABEL } from '../lib/raw-docker.js';
import type { ScenarioResult } from '../lib/result.js';
import { mapLimit, median, ratio, round, roundSummary, sleep, summarize } from '../lib/stats.js';

const NS = 'p8';
/** Poll interval of every wait in this scenario, nbswarm and raw alike. */
const POLL_MS = 50;
const SERVER_COMMAND = ['httpd', '-f', '-p', '8888', '-h', '/www'];
const RAW_ITEM = 'nbswarm.bench/item';
/** Servers per failover round: Swarm spreads them ~3 per node, so several move at once, as on a real node loss. */
const FAILOVER_SERVERS = 9;

interface Ctx {
  cluster: Cluster;
  stack: Stack;
  op: OperatorProcess;
  image: PushedImage;
  mgr: Docker;
  /** Swarm node ID → the cluster node (its address, for published ports). */
  nodeById: Map<string, ClusterNode>;
  bench: BenchContext;
}

export async function multinodeScenario(bench: BenchContext): Promise<ScenarioResult> {
  const n = bench.args.mnBurst;
  const rounds = bench.args.failovers;
  const conc = defaultPolicy().concurrency;
  const r: ScenarioResult = {
    id: 'P8',
    title: `3-node Swarm: burst of ${n} servers vs raw dockerode creating the same services; failover after kill -9 of a worker's dockerd (${rounds} rounds) vs Swarm's own replacement task`,
    backend: 'service',
    params: {
      n,
      rounds,
      serversPerFailover: FAILOVER_SERVERS,
      nodes: 3,
      heartbeatSeconds: 1,
      operatorConcurrency: conc,
      rawCreateConcurrency: conc,
      pollMs: POLL_MS,
      probeFrom: 'hub namespace',
    },
    targets: [],
    notes: [],
  };
  log('P8: starting a 3-node cluster');
  const name = `p8-${bench.runId}`.slice(0, 20);
  const clusterLog = (l: string) => log(`P8 cluster: ${l}`);
  // Until it is up, a cluster is removed by name: a start cut short (Ctrl-C) leaves part of one.
  let stopCluster = () => destroyCluster(name, undefined, clusterLog).then(() => undefined);
  const removeCluster = bench.teardown.add(`the P8 cluster ${name}`, () => stopCluster());
  let cluster: Cluster;
  try {
    cluster = await startCluster({ name, nodes: 3, heartbeatSeconds: 1, subnet: '10.252.0', log: clusterLog });
  } catch (err) {
    // startCluster removes what it had started.
    stopCluster = async () => undefined;
    await removeCluster();
    throw err;
  }
  stopCluster = async () => {
    const rep = await cluster.stop();
    log(`P8: cluster removed in ${rep.ms} ms`);
  };
  const stack = new Stack(cluster);
  const stopStack = bench.teardown.add('the P8 API server and operators', () => stack.stop());
  try {
    const [image] = await Promise.all([cluster.pushImage(BENCH_IMAGE, { changes: ['STOPSIGNAL SIGKILL'], tag: `p8-${bench.runId}` }), stack.start()]);
    const reg = cluster.registry;
    const policy: Partial<Policy> = {
      prefix: `p8${bench.runId}`,
      allowedImages: [`${reg}/**`],
      defaultImage: image.tagged,
      defaultMode: 'custom',
      registry: { address: reg, pushLocalImages: false },
      probeNetworks: ['127.0.0.0/8', `${cluster.state.subnet}.0/24`],
      // No home volume: servers are not pinned to a node, Swarm moves them when one is lost.
      volumes: [],
      resources: { defaults: { cpu: '0.1', memory: '32Mi' }, limits: { cpu: '1', memory: '256Mi' }, requests: { memory: '8Mi' } },
      resyncSeconds: 600,
    };
    const op = await stack.operator({ name: 'p8', namespace: NS, policy });
    const mgr = cluster.manager.docker;
    const nodeById = new Map<string, ClusterNode>();
    for (const sn of (await mgr.listNodes()) as any[]) {
      const cn = cluster.nodes.find((x) => x.hostname === sn.Description?.Hostname);
      if (cn) nodeById.set(sn.ID, cn);
    }
    const c: Ctx = { cluster, stack, op, image, mgr, nodeById, bench };
    await warmImage(c);
    const template = await operatorServiceSpec(c);

    log(`P8: raw burst of ${n}`);
    const rawBurst = await rawServiceBurst(c, template, n, conc);
    await removeRaw(c);
    log(`P8: nbswarm burst of ${n}`);
    const st0 = await op.stats();
    const calls0 = await dockerCalls(c);
    const nbBurst = await nbswarmBurst(c, n);
    log(
      `P8: raw: ${n} services created in ${round(rawBurst.createsMs, 0)} ms, all answering at ${round(rawBurst.wallMs, 0)} ms; nbswarm: ${n} objects created in ${round(nbBurst.createsMs, 0)} ms, all answering at ${round(nbBurst.wallMs, 0)} ms`,
    );
    const st1 = await op.stats();
    const calls1 = await dockerCalls(c);
    const spreadNb = nbBurst.perNode;
    await deleteServers(c, nbBurst.names);
    r.raw = {
      burstWallMs: round(rawBurst.wallMs, 0),
      createsMs: round(rawBurst.createsMs, 0),
      perServerMs: roundSummary(summarize(rawBurst.perMs), 0),
      perNode: rawBurst.perNode,
      stagesMedianMs: rawBurst.stages,
    };
    r.nbswarm = {
      burstWallMs: round(nbBurst.wallMs, 0),
      createsMs: round(nbBurst.createsMs, 0),
      perServerMs: roundSummary(summarize(nbBurst.perMs), 0),
      perNode: spreadNb,
      stagesMedianMs: nbBurst.stages,
      reconciles: st1.reconciler.reconciles - st0.reconciler.reconciles,
      dockerWrites: st1.reconciler.dockerWrites - st0.reconciler.dockerWrites,
      dockerCalls: callsBetween(calls0, calls1),
    };
    const wr = ratio(nbBurst.wallMs, rawBurst.wallMs);
    r.ratio = { burstWall: round(wr, 3) };
    r.targets.push({ metric: `burst of ${n} over 3 nodes: wall nbswarm/raw`, want: '≤ 1.2', actual: round(wr, 3), met: wr <= 1.2 });

    const fo = await failovers(c, rounds);
    const swarmMed = median(fo.swarmRunningMs);
    const nbMed = median(fo.nbswarmAnsweringMs);
    (r.raw as Record<string, unknown>).failover = {
      nodeDownMs: roundSummary(summarize(fo.nodeDownMs), 0),
      swarmTaskRunningMs: roundSummary(summarize(fo.swarmRunningMs), 0),
      answeringMs: roundSummary(summarize(fo.rawAnsweringMs), 0),
    };
    (r.nbswarm as Record<string, unknown>).failover = { answeringAtNewEndpointMs: roundSummary(summarize(fo.nbswarmAnsweringMs), 0), rounds: fo.rounds };
    r.ratio.failoverMedian = round(ratio(nbMed, swarmMed), 3);
    const gap = nbMed - swarmMed;
    r.targets.push({
      metric: `failover (median of ${fo.nbswarmAnsweringMs.length}): nbswarm answering at new endpoint − Swarm task running, ms`,
      want: '≤ 1000',
      actual: round(gap, 0),
      met: gap <= 1000,
    });
    r.notes.push(
      `failover medians: node Down ${round(median(fo.nodeDownMs), 0)} ms, Swarm task running ${round(swarmMed, 0)} ms, raw answering ${round(median(fo.rawAnsweringMs), 0)} ms, nbswarm answering at its new endpoint ${round(nbMed, 0)} ms (after kill -9; heartbeat 1 s; the restart policy's 2 s delay is in Swarm's time too)`,
    );
    return r;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stack.tails()}`);
  } finally {
    // With NBSWARM_TEST_LOG set (e.g. debug), the operator's and API server's logs are kept.
    if (process.env.NBSWARM_TEST_LOG) {
      const keep = repoPath('bench', 'results', `p8-${bench.runId}-logs`);
      cpSync(stack.dir, keep, { recursive: true, filter: (f) => !f.includes('/api/') && !f.endsWith('/api') });
      log(`P8: logs kept in ${keep}`);
    }
    await stopStack().catch((e) => log(`P8 stack stop: ${e}`));
    await removeCluster().catch((e: Error) => log(`P8 cluster stop: ${e.message}`));
  }
}

/** The operator's Docker calls so far (its /metrics): per call, how many and their total seconds. */
async function dockerCalls(c: Ctx): Promise<Map<string, { n: number; s: number }>> {
  const res = await c.cluster.hub.httpGet(`http://127.0.0.1:${c.op.metricsPort}/metrics`, 5000);
  const out = new Map<string, { n: number; s: number }>();
  const entry = (call: string) => out.get(call) ?? (out.set(call, { n: 0, s: 0 }), out.get(call)!);
  for (const line of res.body.split('\n')) {
    const count = /^nbswarm_docker_requests_total\{call="([^"]+)",code="[^"]+"\} (\S+)/.exec(line);
    if (count) entry(count[1]!).n += Number(count[2]);
    const sum = /^nbswarm_docker_request_duration_seconds_sum\{call="([^"]+)"\} (\S+)/.exec(line);
    if (sum) entry(sum[1]!).s += Number(sum[2]);
  }
  return out;
}

function callsBetween(a: Map<string, { n: number; s: number }>, b: Map<string, { n: number; s: number }>): Record<string, { calls: number; meanMs: number }> {
  const out: Record<string, { calls: number; meanMs: number }> = {};
  for (const [call, v] of b) {
    const n = v.n - (a.get(call)?.n ?? 0);
    const s = v.s - (a.get(call)?.s ?? 0);
    if (n > 0) out[call] = { calls: n, meanMs: round((s / n) * 1000, 1) };
  }
  return out;
}

/** One task per node pulls the image there, so neither side of the burst pays for a pull. */
async function warmImage(c: Ctx): Promise<void> {
  const svc: any = await c.mgr.createService({
    Name: `p8warm-${c.bench.runId}`,
    Labels: { ...c.bench.runLabels },
    TaskTemplate: { ContainerSpec: { Image: c.image.reference, Command: SERVER_COMMAND }, RestartPolicy: { Condition: 'none' } },
    Mode: { Global: {} },
  } as any);
  const id: string = svc.id ?? svc.ID;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const tasks = (await c.mgr.listTasks({ filters: JSON.stringify({ service: [id] }) } as object)) as any[];
    if (tasks.filter((t) => t.Status?.State === 'running').length >= c.cluster.nodes.length) break;
    if (Date.now() > deadline) throw new Error(`image warm-up: not running on every node within 120 s: ${tasks.map((t) => t.Status?.State).join(',')}`);
    await sleep(200);
  }
  await c.mgr.getService(id).remove();
}

/**
 * The service spec the operator writes for a server, made into raw's template: nbswarm's labels
 * removed (so the operator's GC never claims raw's services), everything else as it is.
 */
async function operatorServiceSpec(c: Ctx): Promise<any> {
  const name = 'p8-warm';
  await c.stack.create(NS, name, { user: 'p8warm', mode: 'custom', command: SERVER_COMMAND });
  const o = await waitServer(c, name, (x) => ready(x), 120_000);
  const [svc] = (await c.mgr.listServices({ filters: JSON.stringify({ label: [`${LABELS.uid}=${o.metadata.uid}`] }) } as any)) as unknown as any[];
  if (!svc) throw new Error(`no Swarm service for ${name}`);
  const spec = structuredClone(svc.Spec);
  await deleteServers(c, [name]);
  const strip = (labels: Record<string, string> | undefined) => Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !k.startsWith('nbswarm.io/')));
  spec.Labels = strip(spec.Labels);
  spec.TaskTemplate.ContainerSpec.Labels = strip(spec.TaskTemplate.ContainerSpec.Labels);
  delete spec.TaskTemplate.ForceUpdate;
  if (!String(spec.TaskTemplate.ContainerSpec.Image).includes('@sha256:'))
    throw new Error(`the operator's service names its image by tag: ${spec.TaskTemplate.ContainerSpec.Image}`);
  return spec;
}

function ready(o: NotebookServer | undefined): boolean {
  return (
    !!o?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') &&
    !!o.status?.endpoint?.hostUrl &&
    o.status.observedGeneration === o.metadata.generation
  );
}

async function waitServer(c: Ctx, name: string, pred: (o: NotebookServer) => boolean, timeoutMs: number): Promise<NotebookServer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const o = await c.stack.get(NS, name).catch(() => undefined);
    if (o && pred(o)) return o;
    if (Date.now() > deadline) throw new Error(`${name}: not as wanted within ${timeoutMs} ms (${o?.status?.phase}: ${o?.status?.message})`);
    await sleep(POLL_MS);
  }
}

/** Until `url` answers 2xx from the hub namespace. */
async function answers(c: Ctx, url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await c.cluster.hub.httpGet(url, 1000).catch(() => undefined);
    if (res && res.status >= 200 && res.status < 300) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer from the hub namespace within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

interface Burst {
  wallMs: number;
  /** Burst start → the last create request answered (by Docker for raw, by the API server for nbswarm). */
  createsMs: number;
  perMs: number[];
  perNode: Record<string, number>;
  /** Median time of each stage, from Swarm's own timestamps. */
  stages: Stages;
}

interface Stages {
  /** Create sent (API server or Docker) → Swarm's service CreatedAt. */
  toServiceMs: number;
  /** Service created → its task running (task Status.Timestamp). */
  toTaskRunningMs: number;
  /** Task running → answering at the endpoint the client knows (raw: the task's port; nbswarm: status.endpoint). */
  toAnsweringMs: number;
}

/**
 * Where a burst's time went, per server: `sent` and `answered` (epoch ms) by the key `keyOf`
 * gives a service (its ID for raw, its resource uid for nbswarm).
 */
async function burstStages(c: Ctx, label: string, keyOf: (svc: any) => string, sent: Map<string, number>, answered: Map<string, number>): Promise<Stages> {
  const [services, tasks] = await Promise.all([
    c.mgr.listServices({ filters: JSON.stringify({ label: [label] }) } as any) as unknown as Promise<any[]>,
    c.mgr.listTasks({ filters: JSON.stringify({ label: [label], 'desired-state': ['running'] }) } as object) as Promise<any[]>,
  ]);
  const toService: number[] = [];
  const toRunning: number[] = [];
  const toAnswering: number[] = [];
  for (const svc of services) {
    const key = keyOf(svc);
    const t = tasks.find((x) => x.ServiceID === svc.ID && x.Status?.State === 'running');
    const s0 = sent.get(key);
    const a = answered.get(key);
    if (s0 === undefined || a === undefined || !t) continue;
    const created = Date.parse(svc.CreatedAt);
    const running = Date.parse(t.Status.Timestamp);
    toService.push(created - s0);
    toRunning.push(running - created);
    toAnswering.push(a - running);
  }
  return { toServiceMs: round(median(toService), 0), toTaskRunningMs: round(median(toRunning), 0), toAnsweringMs: round(median(toAnswering), 0) };
}

/** Raw: the operator's spec under new names, `conc` creates in flight; one shared task poll; each until its port answers. */
async function rawServiceBurst(c: Ctx, template: any, n: number, conc: number): Promise<Burst> {
  const labels = { ...c.bench.runLabels, [RAW_ITEM]: 'p8' };
  const waiting = new Map<string, (t: any) => void>();
  const waits: Promise<void>[] = [];
  const perMs: number[] = [];
  const perNode: Record<string, number> = {};
  const sentAt = new Map<string, number>();
  const answeredAt = new Map<string, number>();
  let polling = true;
  let createsMs = 0;
  const t0 = performance.now();
  const poller = (async () => {
    while (polling) {
      if (waiting.size) {
        const tasks = (await c.mgr.listTasks({ filters: JSON.stringify({ label: [`${RAW_ITEM}=p8`], 'desired-state': ['running'] }) } as object)) as any[];
        for (const t of tasks) {
          const cb = waiting.get(t.ServiceID);
          if (cb && t.Status?.State === 'running' && t.Status?.PortStatus?.Ports?.[0]?.PublishedPort) {
            waiting.delete(t.ServiceID);
            cb(t);
          }
        }
      }
      await sleep(POLL_MS);
    }
  })();
  try {
    await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      conc,
      async (i) => {
        const s = performance.now();
        const sentEpoch = Date.now();
        const spec = structuredClone(template);
        spec.Name = `p8raw-${c.bench.runId}-${i}`;
        spec.Labels = { ...spec.Labels, ...labels };
        spec.TaskTemplate.ContainerSpec.Labels = { ...spec.TaskTemplate.ContainerSpec.Labels, ...labels };
        const svc: any = await c.mgr.createService(spec);
        const id: string = svc.id ?? svc.ID;
        sentAt.set(id, sentEpoch);
        waits.push(
          new Promise<any>((resolve) => waiting.set(id, resolve)).then(async (t) => {
            const node = c.nodeById.get(t.NodeID);
            if (!node) throw new Error(`raw task ${t.ID} on unknown node ${t.NodeID}`);
            await answers(c, `http://${node.ip}:${t.Status.PortStatus.Ports[0].PublishedPort}/`);
            perMs.push(performance.now() - s);
            answeredAt.set(id, Date.now());
            perNode[node.hostname] = (perNode[node.hostname] ?? 0) + 1;
          }),
        );
      },
    );
    createsMs = performance.now() - t0;
    await Promise.race([
      Promise.all(waits),
      sleep(600_000).then(() => {
        throw new Error(`raw burst: not all ${n} answered within 600 s (${waiting.size} without a running task)`);
      }),
    ]);
  } finally {
    polling = false;
    await poller;
  }
  const wallMs = performance.now() - t0;
  return { wallMs, createsMs, perMs, perNode, stages: await burstStages(c, `${RAW_ITEM}=p8`, (svc) => svc.ID, sentAt, answeredAt) };
}

/** Raw's services removed, and their containers gone from every node. */
async function removeRaw(c: Ctx): Promise<void> {
  const svcs = (await c.mgr.listServices({ filters: JSON.stringify({ label: [`${BENCH_RUN_LABEL}=${c.bench.runId}`] }) } as any)) as unknown as any[];
  await mapLimit(svcs, 16, (s) =>
    c.mgr
      .getService(s.ID)
      .remove()
      .catch(() => undefined),
  );
  await containersGone(c, `${BENCH_RUN_LABEL}=${c.bench.runId}`);
}

async function containersGone(c: Ctx, label: string, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let left = 0;
    for (const node of c.cluster.nodes) {
      if (!node.pid) continue;
      left += ((await node.docker.listContainers({ filters: JSON.stringify({ label: [label] }) }).catch(() => [])) as any[]).length;
    }
    if (left === 0) return;
    if (Date.now() > deadline) throw new Error(`${left} containers labelled ${label} still running after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** nbswarm: n servers created at once (32 API requests in flight), each until it answers at its status.endpoint. */
async function nbswarmBurst(c: Ctx, n: number, tag = 'p8b'): Promise<Burst & { names: string[] }> {
  const names = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
  const sent = new Map<string, number>();
  const sentEpoch = new Map<string, number>();
  const answeredEpoch = new Map<string, number>();
  const perMs: number[] = [];
  const perNode: Record<string, number> = {};
  const probing = new Set<string>();
  const waits: Promise<void>[] = [];
  const t0 = performance.now();
  await mapLimit(names, 32, async (name, i) => {
    sent.set(name, performance.now());
    const epoch = Date.now();
    const o = await c.stack.create(NS, name, { user: `${tag}u${i}`, mode: 'custom', command: SERVER_COMMAND });
    sentEpoch.set(o.metadata.uid!, epoch);
  });
  const createsMs = performance.now() - t0;
  const deadline = Date.now() + 600_000;
  while (probing.size < n) {
    if (Date.now() > deadline) throw new Error(`nbswarm burst: ${n - probing.size} of ${n} not Ready within 600 s`);
    for (const o of await c.stack.list(NS)) {
      const name = o.metadata.name!;
      if (!sent.has(name) || probing.has(name) || !ready(o)) continue;
      probing.add(name);
      waits.push(
        answers(c, o.status!.endpoint!.hostUrl!).then(() => {
          perMs.push(performance.now() - sent.get(name)!);
          answeredEpoch.set(o.metadata.uid!, Date.now());
          const node = o.status?.node ?? '?';
          perNode[node] = (perNode[node] ?? 0) + 1;
        }),
      );
    }
    await sleep(POLL_MS);
  }
  await Promise.all(waits);
  const wallMs = performance.now() - t0;
  const stages = await burstStages(c, `${LABELS.namespace}=${NS}`, (svc) => svc.Spec?.Labels?.[LABELS.uid], sentEpoch, answeredEpoch);
  return { wallMs, createsMs, perMs, perNode, names, stages };
}

/** Delete through the API; wait until the resources and their services are gone. */
async function deleteServers(c: Ctx, names: string[]): Promise<void> {
  await mapLimit(names, 32, (name) =>
    c.stack.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: NS, name }).catch(() => undefined),
  );
  const deadline = Date.now() + 300_000;
  const wanted = new Set(names);
  while ((await c.stack.list(NS)).some((o) => wanted.has(o.metadata.name!))) {
    if (Date.now() > deadline) throw new Error(`${names.length} servers not deleted within 300 s`);
    await sleep(250);
  }
  await containersGone(c, `${LABELS.namespace}=${NS}`);
}

interface Failovers {
  nodeDownMs: number[];
  swarmRunningMs: number[];
  rawAnsweringMs: number[];
  nbswarmAnsweringMs: number[];
  rounds: { node: string; servers: number; swarmRunningMs: number[]; nbswarmAnsweringMs: number[] }[];
}

async function failovers(c: Ctx, rounds: number): Promise<Failovers> {
  const out: Failovers = { nodeDownMs: [], swarmRunningMs: [], rawAnsweringMs: [], nbswarmAnsweringMs: [], rounds: [] };
  const workers = c.cluster.workers;
  let attempts = 0;
  while (out.rounds.length < rounds) {
    const i = out.rounds.length;
    if (++attempts > rounds + 10) throw new Error('failover: the fresh servers kept missing the worker to be lost');
    const victim = workers[i % workers.length]!;
    // Fresh servers every round: Swarm spreads them over the nodes (a returned node is empty).
    const fresh = await nbswarmBurst(c, FAILOVER_SERVERS, `p8f${attempts}`);
    const before = new Map((await c.stack.list(NS)).filter((o) => fresh.names.includes(o.metadata.name!)).map((o) => [o.metadata.name!, o]));
    const movers = [...before.values()].filter((o) => o.status?.node === victim.hostname);
    if (!movers.length) {
      log(`P8 failover ${i + 1}: none of ${fresh.names.length} servers on ${victim.hostname} (${JSON.stringify(fresh.perNode)}); again`);
      await deleteServers(c, fresh.names);
      continue;
    }
    const victimId = [...c.nodeById].find(([, n]) => n === victim)![0];
    const serviceOf = new Map<string, string>();
    for (const o of movers) {
      const [svc] = (await c.mgr.listServices({ filters: JSON.stringify({ label: [`${LABELS.uid}=${o.metadata.uid}`] }) } as any)) as unknown as any[];
      serviceOf.set(o.metadata.name!, svc.ID);
    }
    log(`P8 failover ${i + 1}/${rounds}: kill -9 of ${victim.hostname}'s dockerd (${movers.length} servers there)`);
    const t0 = performance.now();
    await c.cluster.killNode(victim);
    const swarmMs = new Map<string, number>();
    const rawMs = new Map<string, number>();
    const nbMs = new Map<string, number>();
    let downMs: number | undefined;
    const rawProbing = new Set<string>();
    const nbProbing = new Set<string>();
    const probes: Promise<void>[] = [];
    const deadline = Date.now() + 120_000;
    while (nbMs.size < movers.length || rawMs.size < movers.length || downMs === undefined) {
      if (Date.now() > deadline)
        throw new Error(
          `failover ${i + 1}: after 120 s: node down ${downMs ?? 'no'}, ${swarmMs.size}/${movers.length} tasks running elsewhere, ${nbMs.size} answering at new endpoints`,
        );
      const [tasks, list, node] = await Promise.all([
        c.mgr.listTasks({ filters: JSON.stringify({ service: [...serviceOf.values()] }) } as object) as Promise<any[]>,
        c.stack.list(NS),
        downMs === undefined ? c.cluster.swarmNode(victim).catch(() => undefined) : Promise.resolve(undefined),
      ]);
      const now = performance.now() - t0;
      if (downMs === undefined && node?.Status?.State === 'down') downMs = now;
      for (const o of movers) {
        const name = o.metadata.name!;
        const t = tasks.find((x) => x.ServiceID === serviceOf.get(name) && x.NodeID !== victimId && x.Status?.State === 'running');
        if (t && !swarmMs.has(name)) swarmMs.set(name, now);
        const port = t?.Status?.PortStatus?.Ports?.[0]?.PublishedPort;
        const at = t && c.nodeById.get(t.NodeID);
        if (port && at && !rawProbing.has(name)) {
          rawProbing.add(name);
          probes.push(answers(c, `http://${at.ip}:${port}/`).then(() => void rawMs.set(name, performance.now() - t0)));
        }
        const cur = list.find((x) => x.metadata.name === name);
        const url = cur?.status?.endpoint?.hostUrl;
        if (cur && ready(cur) && url && url !== o.status!.endpoint!.hostUrl && !nbProbing.has(name)) {
          nbProbing.add(name);
          probes.push(answers(c, url).then(() => void nbMs.set(name, performance.now() - t0)));
        }
      }
      await sleep(POLL_MS);
    }
    await Promise.all(probes);
    const names = movers.map((o) => o.metadata.name!);
    out.nodeDownMs.push(downMs);
    out.swarmRunningMs.push(...names.map((nm) => swarmMs.get(nm)!));
    out.rawAnsweringMs.push(...names.map((nm) => rawMs.get(nm)!));
    out.nbswarmAnsweringMs.push(...names.map((nm) => nbMs.get(nm)!));
    out.rounds.push({
      node: victim.hostname,
      servers: names.length,
      swarmRunningMs: names.map((nm) => round(swarmMs.get(nm)!, 0)),
      nbswarmAnsweringMs: names.map((nm) => round(nbMs.get(nm)!, 0)),
    });
    log(
      `P8 failover ${i + 1}: node down ${round(downMs, 0)} ms; Swarm task running ${names.map((nm) => round(swarmMs.get(nm)!, 0)).join(',')} ms; nbswarm answering ${names.map((nm) => round(nbMs.get(nm)!, 0)).join(',')} ms`,
    );
    await c.cluster.restartNode(victim);
    await deleteServers(c, fresh.names);
  }
  return out;
}
