/**
 * P7 through a real JupyterHub: a burst of named servers started at once through the hub's REST API
 * until each answers through the hub's proxy — fresh, and again after they were stopped — against
 * raw Docker starting as many containers of the same image in parallel until Jupyter answers; and
 * a hub stop (REST DELETE) until the server's container has exited, against `docker stop`.
 *
 * The raw baseline runs the program the spawner runs, jupyterhub-singleuser (same argv, the same
 * hub to check in with), so the ratio is what the hub path adds. `jupyter notebook`, which needs
 * about a third less CPU to boot, is measured beside it for reference. Raw goes first in each
 * round, on a daemon with none of this scenario's containers running.
 *
 * Ready through the hub is read the way the proxy decides it: the scenario polls the proxy's
 * routing table (one cheap request for all servers), then asks each routed server through the
 * proxy. Polling every server through the proxy before it is routed would have the hub answer
 * hundreds of redirects a second on the same cores the spawns need.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import Docker from 'dockerode';
import { LABELS } from '../../src/api/names.js';
import { BenchContext, log } from '../lib/context.js';
import { BENCH_USER, startHubStack, type HubStack } from '../lib/hub.js';
import { waitHttp } from '../lib/raw-docker.js';
import { procCpuMs } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/result.js';
import { median, ratio, round, roundSummary, sleep, summarize } from '../lib/stats.js';

export const HUB_IMAGE = process.env.NBSWARM_BENCH_NOTEBOOK_IMAGE ?? 'local/notebook:latest';
const POLL_MS = 25;
/** How often the hub's user model is read while a DELETE the hub answered with 202 finishes. */
const HUB_LIST_POLL_MS = 100;

interface Burst {
  wallMs: number;
  /** Request sent → answering, per server. */
  perMs: number[];
  /** Request sent → the server's container started (Docker's State.StartedAt), per server. */
  containerStartedMs: number[];
  /** CPU the stack's processes used during the burst (ms): what the hub path costs beside the servers' own boot. */
  stackCpuMs?: StackCpu;
}

interface StackCpu {
  up: number;
  hub: number;
  proxy: number;
}

/** `burst`, with the CPU `nbswarm up`, the hub and the proxy used meanwhile. */
async function withStackCpu<T extends { burst: Burst } | Burst>(stack: HubStack, run: () => Promise<T>): Promise<T> {
  const read = (): StackCpu => {
    const p = stack.pids();
    return { up: procCpuMs(p.up ?? 0), hub: procCpuMs(p.hub ?? 0), proxy: procCpuMs(p.proxy ?? 0) };
  };
  const before = read();
  const out = await run();
  const after = read();
  const burst: Burst = 'burst' in out ? (out as { burst: Burst }).burst : (out as Burst);
  burst.stackCpuMs = { up: after.up - before.up, hub: after.hub - before.hub, proxy: after.proxy - before.proxy };
  return out;
}

interface Stops {
  /** Request sent → the server's container has exited. */
  goneMs: number[];
  /** Request sent → the hub no longer lists the server (the spawner's stop returned). */
  hubMs: number[];
}

type RawProgram = 'singleuser' | 'notebook';

export async function hubScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.args.hubBurst;
  const rounds = ctx.args.hubRounds;
  const r: ScenarioResult = {
    id: 'P7',
    title: `through JupyterHub: ${n} servers started at once (fresh, then after a stop) until each answers via the hub's proxy, and a hub stop until the container has exited; vs raw Docker with the same image and program`,
    backend: 'service',
    params: {
      n,
      rounds,
      image: HUB_IMAGE,
      networkMode: 'host',
      raw: 'docker run --network host --init start.sh jupyterhub-singleuser (the spawner argv, checking in with the same hub), all at once; docker stop',
      rawNotebook: 'the same with start.sh jupyter notebook (reference only)',
    },
    targets: [],
    notes: [],
  };
  const docker = ctx.docker;
  await docker.getImage(HUB_IMAGE).inspect();
  const base = 23000 + Math.floor(Math.random() * 60) * 100;
  const stack = await startHubStack({ image: HUB_IMAGE, portRange: [base, base + 99] });
  const stopStack = ctx.teardown.add('the P7 hub stack', () => stack.stop());
  const raw = { fresh: [] as Burst[], notebook: [] as Burst[], stop: [] as number[] };
  const hub = { fresh: [] as Burst[], restart: [] as Burst[], stop: [] as Stops[] };
  const loads: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const labels = { ...ctx.runLabels, 'nbswarm.bench/item': `p7-${round}` };
      log(`P7 round ${round + 1}/${rounds}: raw burst of ${n} (jupyterhub-singleuser)`);
      const rb = await withStackCpu(stack, () => rawBurst(docker, stack, 'singleuser', n, base + 100 + round * 2 * n, labels));
      raw.fresh.push(rb.burst);
      raw.stop.push(...(await rawStop(docker, rb.ids)));
      await removeContainers(docker, rb.ids);
      log(`P7 round ${round + 1}/${rounds}: raw burst of ${n} (jupyter notebook, reference)`);
      const nb = await rawBurst(docker, stack, 'notebook', n, base + 100 + round * 2 * n + n, labels);
      raw.notebook.push(nb.burst);
      await removeContainers(docker, nb.ids);

      const names = Array.from({ length: n }, (_, i) => `r${round}s${i}`);
      log(`P7 round ${round + 1}/${rounds}: hub burst of ${n} fresh servers`);
      hub.fresh.push(await withStackCpu(stack, () => hubBurst(stack, docker, names)));
      log(`P7 round ${round + 1}/${rounds}: hub stop of ${n}`);
      hub.stop.push(await hubStop(stack, docker, names));
      log(`P7 round ${round + 1}/${rounds}: hub start of ${n} stopped servers`);
      hub.restart.push(await withStackCpu(stack, () => hubBurst(stack, docker, names)));
      hub.stop.push(await hubStop(stack, docker, names));
      loads.push(loadAverage());
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stack.logs()}`);
  } finally {
    await stopStack();
  }

  const walls = (bs: Burst[]) => bs.map((b) => b.wallMs);
  const stackCpu = (bs: Burst[]) => ({
    up: roundSummary(summarize(bs.map((b) => b.stackCpuMs!.up)), 0),
    hub: roundSummary(summarize(bs.map((b) => b.stackCpuMs!.hub)), 0),
    proxy: roundSummary(summarize(bs.map((b) => b.stackCpuMs!.proxy)), 0),
  });
  const started = (bs: Burst[]) => roundSummary(summarize(bs.flatMap((b) => b.containerStartedMs)), 0);
  // Container started → answering: the server's own boot plus, through the hub, the readiness
  // report, the hub's check and the proxy route.
  const answering = (bs: Burst[]) => roundSummary(summarize(bs.flatMap((b) => b.perMs.map((p, i) => p - b.containerStartedMs[i]!))), 0);
  const rawWall = median(walls(raw.fresh));
  const freshWall = median(walls(hub.fresh));
  const restartWall = median(walls(hub.restart));
  const goneMs = hub.stop.flatMap((s) => s.goneMs);
  const hubMs = hub.stop.flatMap((s) => s.hubMs);
  r.raw = {
    burstWallMs: roundSummary(summarize(walls(raw.fresh)), 0),
    perServerMs: roundSummary(summarize(raw.fresh.flatMap((b) => b.perMs)), 0),
    containerStartedMs: started(raw.fresh),
    startedToAnsweringMs: answering(raw.fresh),
    notebookBurstWallMs: roundSummary(summarize(walls(raw.notebook)), 0),
    dockerStopMs: roundSummary(summarize(raw.stop), 0),
    stackCpuMs: stackCpu(raw.fresh),
  };
  r.nbswarm = {
    freshBurstWallMs: roundSummary(summarize(walls(hub.fresh)), 0),
    freshPerServerMs: roundSummary(summarize(hub.fresh.flatMap((b) => b.perMs)), 0),
    freshContainerStartedMs: started(hub.fresh),
    freshStartedToAnsweringMs: answering(hub.fresh),
    restartBurstWallMs: roundSummary(summarize(walls(hub.restart)), 0),
    restartPerServerMs: roundSummary(summarize(hub.restart.flatMap((b) => b.perMs)), 0),
    restartContainerStartedMs: started(hub.restart),
    restartStartedToAnsweringMs: answering(hub.restart),
    freshStackCpuMs: stackCpu(hub.fresh),
    restartStackCpuMs: stackCpu(hub.restart),
    stopContainerGoneMs: roundSummary(summarize(goneMs), 0),
    stopHubReportsStoppedMs: roundSummary(summarize(hubMs), 0),
  };
  const fr = ratio(freshWall, rawWall);
  const rr = ratio(restartWall, rawWall);
  const sr = ratio(median(goneMs), median(raw.stop));
  r.ratio = {
    freshBurst: round(fr, 3),
    restartBurst: round(rr, 3),
    stop: round(sr, 3),
    freshBurstVsRawNotebook: round(ratio(freshWall, median(walls(raw.notebook))), 3),
  };
  r.targets.push({ metric: `hub burst of ${n} fresh / raw parallel boot (wall)`, want: '≤ 1.3', actual: round(fr, 3), met: fr <= 1.3 });
  r.targets.push({ metric: `hub start of ${n} stopped / raw parallel boot (wall)`, want: '≤ 1.3', actual: round(rr, 3), met: rr <= 1.3 });
  r.targets.push({ metric: 'hub stop → container exited / docker stop (median)', want: '≤ 1.3', actual: round(sr, 3), met: sr <= 1.3 });
  r.notes.push(`1-minute load average after each round: ${loads.map((l) => l.toFixed(1)).join(', ')} (${os.availableParallelism()} cores)`);
  return r;
}

function loadAverage(): number {
  return os.loadavg()[0]!;
}

/**
 * `n` containers of the image started at once, each until its server answers on loopback. The
 * singleuser program gets the environment the spawner gives it (its own prefix, a token, the
 * hub's API to check in with), so it boots exactly as a hub-started one does.
 */
async function rawBurst(
  docker: Docker,
  stack: HubStack,
  program: RawProgram,
  n: number,
  firstPort: number,
  labels: Record<string, string>,
): Promise<{ burst: Burst; ids: string[] }> {
  const t0 = performance.now();
  const epoch0 = Date.now();
  const ids: string[] = new Array(n);
  const perMs = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const port = firstPort + i;
      const name = `raw${i}`;
      const prefix = `/user/${BENCH_USER}/${name}/`;
      const singleuser = program === 'singleuser';
      const c = await docker.createContainer({
        Image: HUB_IMAGE,
        Cmd: singleuser
          ? ['start.sh', 'jupyterhub-singleuser', '--ip=127.0.0.1', `--port=${port}`]
          : ['start.sh', 'jupyter', 'notebook', '--ip=127.0.0.1', `--port=${port}`, '--no-browser'],
        Env: singleuser
          ? [
              `JUPYTERHUB_API_URL=http://127.0.0.1:${stack.hubPort}/hub/api`,
              `JUPYTERHUB_API_TOKEN=${randomBytes(16).toString('hex')}`,
              `JUPYTERHUB_USER=${BENCH_USER}`,
              `JUPYTERHUB_SERVER_NAME=${name}`,
              `JUPYTERHUB_CLIENT_ID=jupyterhub-user-${BENCH_USER}-${name}`,
              `JUPYTERHUB_SERVICE_PREFIX=${prefix}`,
              `JUPYTERHUB_OAUTH_CALLBACK_URL=${prefix}oauth_callback`,
              'JUPYTERHUB_BASE_URL=/',
            ]
          : [],
        Labels: labels,
        HostConfig: { NetworkMode: 'host', Init: true },
      });
      ids[i] = c.id;
      await c.start();
      await waitHttp(`http://127.0.0.1:${port}${singleuser ? prefix : '/'}api`, 120_000, POLL_MS);
      return performance.now() - t0;
    }),
  );
  const wallMs = performance.now() - t0;
  const containerStartedMs = await Promise.all(ids.map(async (id) => Date.parse((await docker.getContainer(id).inspect()).State.StartedAt) - epoch0));
  return { burst: { wallMs, perMs, containerStartedMs }, ids };
}

/** `docker stop` of each (in parallel): how long each call took (it returns once the container exited). */
async function rawStop(docker: Docker, ids: string[]): Promise<number[]> {
  return Promise.all(
    ids.map(async (id) => {
      const t0 = performance.now();
      await docker.getContainer(id).stop();
      return performance.now() - t0;
    }),
  );
}

async function removeContainers(docker: Docker, ids: string[]): Promise<void> {
  await Promise.all(
    ids.map((id) =>
      docker
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

/** The containers of the stack's servers: hub server name → its most recently started container's StartedAt (epoch ms). */
async function serverContainersStarted(stack: HubStack, docker: Docker): Promise<Map<string, number>> {
  const cs = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${stack.ns}`] }) });
  const out = new Map<string, number>();
  for (const c of cs) {
    const name = c.Labels[LABELS.servername];
    if (!name) continue;
    const startedAt = Date.parse((await docker.getContainer(c.Id).inspect()).State.StartedAt);
    if (!(startedAt <= (out.get(name) ?? -Infinity))) out.set(name, startedAt);
  }
  return out;
}

/**
 * POST every named server at once; each until it answers through the hub's proxy. Routed servers
 * are found in the proxy's table (one read per poll for all of them), then asked through the proxy.
 */
async function hubBurst(stack: HubStack, docker: Docker, names: string[]): Promise<Burst> {
  const t0 = performance.now();
  const epoch0 = Date.now();
  const answered = new Map<string, number>();
  const asking = new Set<string>();
  let failed: unknown;
  const requests = Promise.all(
    names.map(async (name) => {
      const res = await stack.hubApi('POST', `/users/${BENCH_USER}/servers/${name}`, {});
      if (![201, 202].includes(res.status)) throw new Error(`spawn ${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    }),
  );
  requests.catch((err: unknown) => (failed = err));
  const askThroughProxy = async (name: string) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await stack.viaProxy(`/user/${BENCH_USER}/${name}/api`, stack.adminToken).catch(() => undefined);
      await res?.arrayBuffer();
      if (res?.status === 200) break;
      if (Date.now() > deadline)
        throw new Error(`${name} is routed but did not answer 200 through the proxy within 30 s (last: ${res?.status ?? 'no answer'})`);
      await sleep(POLL_MS);
    }
    answered.set(name, performance.now() - t0);
  };
  const asks: Promise<void>[] = [];
  const deadline = Date.now() + 120_000;
  while (asking.size < names.length) {
    if (failed) throw failed;
    if (Date.now() > deadline) throw new Error(`${names.length - asking.size} servers not routed by the proxy within 120 s`);
    const routes = await stack.proxyRoutes();
    for (const name of names) {
      if (!asking.has(name) && routes[`/user/${BENCH_USER}/${name}`]) {
        asking.add(name);
        asks.push(askThroughProxy(name));
      }
    }
    await sleep(POLL_MS);
  }
  await Promise.all([requests, ...asks]);
  const wallMs = performance.now() - t0;
  const started = await serverContainersStarted(stack, docker);
  return {
    wallMs,
    perMs: names.map((nm) => answered.get(nm)!),
    containerStartedMs: names.map((nm) => (started.get(nm) ?? NaN) - epoch0),
  };
}

/**
 * DELETE every named server at once; per server: until its container exited, and until the hub no
 * longer lists it (the DELETE's answer when the stop finished within the hub's 10 s, else read).
 */
async function hubStop(stack: HubStack, docker: Docker, names: string[]): Promise<Stops> {
  const running = async () => {
    const cs = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${stack.ns}`], status: ['running'] }) });
    return new Set(cs.map((c) => c.Labels[LABELS.servername]));
  };
  const t0 = performance.now();
  const goneMs = new Map<string, number>();
  const hubMs = new Map<string, number>();
  const pendingInHub = new Set<string>();
  let failed: unknown;
  const requests = Promise.all(
    names.map(async (name) => {
      const res = await stack.hubApi('DELETE', `/users/${BENCH_USER}/servers/${name}`);
      if (res.status === 204) hubMs.set(name, performance.now() - t0);
      else if (res.status === 202) pendingInHub.add(name);
      else throw new Error(`stop ${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    }),
  );
  requests.catch((err: unknown) => (failed = err));
  const deadline = Date.now() + 120_000;
  let lastList = 0;
  while (goneMs.size < names.length || hubMs.size < names.length) {
    if (failed) throw failed;
    if (Date.now() > deadline)
      throw new Error(`stop: ${names.length - goneMs.size} containers still running, ${names.length - hubMs.size} servers still listed by the hub after 120 s`);
    const live = await running();
    const now = performance.now() - t0;
    for (const name of names) if (!goneMs.has(name) && !live.has(name)) goneMs.set(name, now);
    if (pendingInHub.size && Date.now() - lastList >= HUB_LIST_POLL_MS) {
      lastList = Date.now();
      const user = await stack.hubApi('GET', `/users/${BENCH_USER}`);
      const at = performance.now() - t0;
      for (const name of [...pendingInHub]) {
        if (!user.json?.servers?.[name]) {
          hubMs.set(name, at);
          pendingInHub.delete(name);
        }
      }
    }
    await sleep(POLL_MS);
  }
  await requests;
  return { goneMs: names.map((nm) => goneMs.get(nm)!), hubMs: names.map((nm) => hubMs.get(nm)!) };
}
