/**
 * P7 through a real JupyterHub: a burst of named servers started at once through the hub's REST API
 * until each answers through the hub's proxy — fresh, and again after they were stopped — against
 * raw Docker starting as many containers of the same image in parallel until Jupyter answers; and
 * a hub stop (REST DELETE) until the server's container has exited, against `docker stop`.
 * Raw goes first in each round, on a daemon with none of this scenario's containers running.
 */
import Docker from 'dockerode';
import { LABELS } from '../../src/api/names.js';
import { BenchContext, log } from '../lib/context.js';
import { startHubStack, type HubStack } from '../lib/hub.js';
import { waitHttp } from '../lib/raw-docker.js';
import type { ScenarioResult } from '../lib/result.js';
import { median, ratio, round, roundSummary, sleep, summarize } from '../lib/stats.js';

export const HUB_IMAGE = process.env.NBSWARM_BENCH_NOTEBOOK_IMAGE ?? 'local/notebook:latest';
const POLL_MS = 25;

interface Burst {
  wallMs: number;
  perMs: number[];
}

interface Stops {
  /** Request sent → the server's container has exited. */
  goneMs: number[];
  /** Request sent → the hub no longer lists the server (the spawner's stop returned). */
  hubMs: number[];
}

export async function hubScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.args.hubBurst;
  const rounds = ctx.args.hubRounds;
  const r: ScenarioResult = {
    id: 'P7',
    title: `through JupyterHub: ${n} servers started at once (fresh, then after a stop) until each answers via the hub's proxy, and a hub stop until the container has exited; vs raw Docker with the same image`,
    backend: 'service',
    params: { n, rounds, image: HUB_IMAGE, networkMode: 'host', raw: 'docker run --network host --init (jupyter notebook), all at once; docker stop' },
    targets: [],
    notes: [],
  };
  const docker = ctx.docker;
  await docker.getImage(HUB_IMAGE).inspect();
  const base = 23000 + Math.floor(Math.random() * 60) * 100;
  const stack = await startHubStack({ image: HUB_IMAGE, portRange: [base, base + 99] });
  const raw = { fresh: [] as Burst[], stop: [] as number[] };
  const hub = { fresh: [] as Burst[], restart: [] as Burst[], stop: [] as Stops[] };
  try {
    for (let round = 0; round < rounds; round++) {
      log(`P7 round ${round + 1}/${rounds}: raw burst of ${n}`);
      const rb = await rawBurst(docker, n, base + 100 + round * n, { ...ctx.runLabels, 'nbswarm.bench/item': `p7-${round}` });
      raw.fresh.push(rb.burst);
      raw.stop.push(...(await rawStop(docker, rb.ids)));
      await removeContainers(docker, rb.ids);

      const names = Array.from({ length: n }, (_, i) => `r${round}s${i}`);
      log(`P7 round ${round + 1}/${rounds}: hub burst of ${n} fresh servers`);
      hub.fresh.push(await hubBurst(stack, names));
      log(`P7 round ${round + 1}/${rounds}: hub stop of ${n}`);
      hub.stop.push(await hubStop(stack, docker, names));
      log(`P7 round ${round + 1}/${rounds}: hub start of ${n} stopped servers`);
      hub.restart.push(await hubBurst(stack, names));
      hub.stop.push(await hubStop(stack, docker, names));
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stack.logs()}`);
  } finally {
    await stack.stop(docker);
  }

  const walls = (bs: Burst[]) => bs.map((b) => b.wallMs);
  const rawWall = median(walls(raw.fresh));
  const freshWall = median(walls(hub.fresh));
  const restartWall = median(walls(hub.restart));
  const goneMs = hub.stop.flatMap((s) => s.goneMs);
  const hubMs = hub.stop.flatMap((s) => s.hubMs);
  r.raw = {
    burstWallMs: roundSummary(summarize(walls(raw.fresh)), 0),
    perServerMs: roundSummary(summarize(raw.fresh.flatMap((b) => b.perMs)), 0),
    dockerStopMs: roundSummary(summarize(raw.stop), 0),
  };
  r.nbswarm = {
    freshBurstWallMs: roundSummary(summarize(walls(hub.fresh)), 0),
    freshPerServerMs: roundSummary(summarize(hub.fresh.flatMap((b) => b.perMs)), 0),
    restartBurstWallMs: roundSummary(summarize(walls(hub.restart)), 0),
    restartPerServerMs: roundSummary(summarize(hub.restart.flatMap((b) => b.perMs)), 0),
    stopContainerGoneMs: roundSummary(summarize(goneMs), 0),
    stopHubReportsStoppedMs: roundSummary(summarize(hubMs), 0),
  };
  const fr = ratio(freshWall, rawWall);
  const rr = ratio(restartWall, rawWall);
  const sr = ratio(median(goneMs), median(raw.stop));
  r.ratio = { freshBurst: round(fr, 3), restartBurst: round(rr, 3), stop: round(sr, 3) };
  r.targets.push({ metric: `hub burst of ${n} fresh / raw parallel boot (wall)`, want: '≤ 1.3', actual: round(fr, 3), met: fr <= 1.3 });
  r.targets.push({ metric: `hub start of ${n} stopped / raw parallel boot (wall)`, want: '≤ 1.3', actual: round(rr, 3), met: rr <= 1.3 });
  r.targets.push({ metric: 'hub stop → container exited / docker stop (median)', want: '≤ 1.3', actual: round(sr, 3), met: sr <= 1.3 });
  return r;
}

/** `n` containers of the image started at once, each until Jupyter's /api answers. */
async function rawBurst(docker: Docker, n: number, firstPort: number, labels: Record<string, string>): Promise<{ burst: Burst; ids: string[] }> {
  const t0 = performance.now();
  const ids: string[] = [];
  const perMs = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const port = firstPort + i;
      const c = await docker.createContainer({
        Image: HUB_IMAGE,
        Cmd: ['start.sh', 'jupyter', 'notebook', '--ip=127.0.0.1', `--port=${port}`, '--no-browser'],
        Labels: labels,
        HostConfig: { NetworkMode: 'host', Init: true },
      });
      ids.push(c.id);
      await c.start();
      await waitHttp(`http://127.0.0.1:${port}/api`, 120_000, POLL_MS);
      return performance.now() - t0;
    }),
  );
  return { burst: { wallMs: performance.now() - t0, perMs }, ids };
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

/** POST every named server at once; each until its /api answers through the hub's proxy. */
async function hubBurst(stack: HubStack, names: string[]): Promise<Burst> {
  const t0 = performance.now();
  const perMs = await Promise.all(
    names.map(async (name) => {
      const res = await stack.api('POST', `/users/bench/servers/${name}`, {});
      if (![201, 202].includes(res.status)) throw new Error(`spawn ${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
      const deadline = Date.now() + 120_000;
      while ((await stack.viaProxy(`/user/bench/${name}/api`)) !== 200) {
        if (Date.now() > deadline) throw new Error(`${name} did not answer through the proxy within 120 s`);
        await sleep(POLL_MS);
      }
      return performance.now() - t0;
    }),
  );
  return { wallMs: performance.now() - t0, perMs };
}

/** DELETE every named server at once; per server: until its container exited, and until the hub lists it stopped. */
async function hubStop(stack: HubStack, docker: Docker, names: string[]): Promise<Stops> {
  const running = async () => {
    const cs = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABELS.namespace}=${stack.namespace}`], status: ['running'] }) });
    return new Set(cs.map((c) => c.Labels[LABELS.servername]));
  };
  const t0 = performance.now();
  const goneMs = new Map<string, number>();
  const hubMs = new Map<string, number>();
  // The hub answers a DELETE once the spawner's stop returned (or after 10 s with 202): watch meanwhile.
  const requests = Promise.all(
    names.map(async (name) => {
      const res = await stack.api('DELETE', `/users/bench/servers/${name}`);
      if (![202, 204].includes(res.status)) throw new Error(`stop ${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    }),
  );
  let failed: unknown;
  requests.catch((err: unknown) => (failed = err));
  const deadline = Date.now() + 120_000;
  while (goneMs.size < names.length || hubMs.size < names.length) {
    if (failed) throw failed;
    if (Date.now() > deadline)
      throw new Error(`stop: ${names.length - goneMs.size} containers still running, ${names.length - hubMs.size} servers still listed by the hub after 120 s`);
    const [live, user] = await Promise.all([running(), stack.api('GET', '/users/bench')]);
    const now = performance.now() - t0;
    for (const name of names) {
      if (!goneMs.has(name) && !live.has(name)) goneMs.set(name, now);
      if (!hubMs.has(name) && !user.json?.servers?.[name]) hubMs.set(name, now);
    }
    await sleep(POLL_MS);
  }
  await requests;
  return { goneMs: names.map((nm) => goneMs.get(nm)!), hubMs: names.map((nm) => hubMs.get(nm)!) };
}
