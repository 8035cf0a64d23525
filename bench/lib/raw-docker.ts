/**
 * Raw-Docker baselines: what a spawner would do with dockerode alone, on the same daemon
 * and image as the operator under test, so every nbswarm figure has a ratio next to it.
 *  - Swarm: `service create` (image pinned to the local image ID, mode=host published port) →
 *    task running → the port answers HTTP on 127.0.0.1.
 *  - Container: create + start with -p 127.0.0.1::8888 → the port answers.
 * Everything carries this bench run's label and is removed by cleanupRun().
 */
import Docker from 'dockerode';
import http from 'node:http';
import { replyText } from '../../src/util/http-reply.js';
import { mapLimit, sleep } from './stats.js';

export const BENCH_RUN_LABEL = 'nbswarm.bench/run';
export const BENCH_IMAGE = process.env.NBSWARM_BENCH_IMAGE ?? 'local/busybox:test';
export const SERVER_PORT = 8888;

export interface SpawnResult {
  id: string;
  name: string;
  hostPort: number;
  /** API call issued → port answering, ms. */
  ms: number;
}

export function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      replyText(res, 0).then(() => resolve(res.statusCode ?? 0), reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Poll until the URL answers 2xx. The same poll interval is used for raw and operator paths. */
export async function waitHttp(url: string, timeoutMs = 60_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const s = await httpStatus(url);
      if (s >= 200 && s < 300) return;
      last = `HTTP ${s}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(everyMs);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (${last})`);
}

export async function resolveImageId(docker: Docker, ref = BENCH_IMAGE): Promise<string> {
  const info = await docker.getImage(ref).inspect();
  return info.Id;
}

function serviceSpec(name: string, imageId: string, labels: Record<string, string>): any {
  return {
    Name: name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: { Image: imageId, Labels: labels },
      RestartPolicy: { Condition: 'on-failure', MaxAttempts: 3 },
    },
    Mode: { Replicated: { Replicas: 1 } },
    // mode=host: the ingress mesh needs IPVS, which this machine kind lacks (ENVIRONMENT.md).
    EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: SERVER_PORT, PublishMode: 'host' }] },
  };
}

/** Published host port of the running task of `serviceId`, or undefined while it is not running yet. */
async function runningTaskPort(docker: Docker, serviceId: string): Promise<number | undefined> {
  const tasks: any[] = (await docker.listTasks({ filters: JSON.stringify({ service: [serviceId], 'desired-state': ['running'] }) } as any)) as any;
  for (const t of tasks) {
    if (t?.Status?.State !== 'running') continue;
    const p = t?.Status?.PortStatus?.Ports?.[0]?.PublishedPort;
    if (p) return p;
  }
  return undefined;
}

/** One raw Swarm spawn: service create → task running → HTTP answers. */
export async function rawServiceSpawn(docker: Docker, imageId: string, name: string, labels: Record<string, string>, pollMs = 25): Promise<SpawnResult> {
  const t0 = performance.now();
  const svc: any = await docker.createService(serviceSpec(name, imageId, labels));
  const id: string = svc.id ?? svc.ID;
  let port: number | undefined;
  const deadline = Date.now() + 120_000;
  while (!(port = await runningTaskPort(docker, id))) {
    if (Date.now() > deadline) throw new Error(`service ${name}: no running task within 120 s`);
    await sleep(pollMs);
  }
  await waitHttp(`http://127.0.0.1:${port}/`, 60_000, pollMs);
  return { id, name, hostPort: port, ms: performance.now() - t0 };
}

/** `docker create -p 127.0.0.1::8888 --label …` of the baseline: the server port published on loopback. */
function rawContainerOptions(name: string, image: string, labels: Record<string, string>): Docker.ContainerCreateOptions {
  return {
    name,
    Image: image,
    Labels: labels,
    ExposedPorts: { [`${SERVER_PORT}/tcp`]: {} },
    HostConfig: { PortBindings: { [`${SERVER_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  };
}

/** One raw container spawn: create + start with -p 127.0.0.1::8888 → HTTP answers. */
export async function rawContainerSpawn(docker: Docker, image: string, name: string, labels: Record<string, string>, pollMs = 25): Promise<SpawnResult> {
  const t0 = performance.now();
  const c = await docker.createContainer(rawContainerOptions(name, image, labels));
  await c.start();
  const info = await c.inspect();
  const port = Number(info.NetworkSettings.Ports?.[`${SERVER_PORT}/tcp`]?.[0]?.HostPort);
  if (!port) throw new Error(`container ${name}: no published port`);
  await waitHttp(`http://127.0.0.1:${port}/`, 60_000, pollMs);
  return { id: c.id, name, hostPort: port, ms: performance.now() - t0 };
}

export type BackendKind = 'service' | 'container';

export async function rawSpawn(
  kind: BackendKind,
  docker: Docker,
  imageRef: string,
  imageId: string,
  name: string,
  labels: Record<string, string>,
): Promise<SpawnResult> {
  return kind === 'service' ? rawServiceSpawn(docker, imageId, name, labels) : rawContainerSpawn(docker, imageRef, name, labels);
}

/**
 * Burst: `n` spawns with at most `concurrency` create calls in flight (the operator's reconcile
 * bound), each spawn then waited for outside that bound — the best a hand-written spawner could
 * do. Swarm tasks are found by one shared poll of /tasks (by label), not one poll per service,
 * so the baseline does not load the daemon more than it must. Returns the wall time until every
 * port answers and each spawn's own latency (create sent → answering).
 */
export async function rawBurst(
  kind: BackendKind,
  docker: Docker,
  imageRef: string,
  imageId: string,
  n: number,
  concurrency: number,
  prefix: string,
  labels: Record<string, string>,
): Promise<{ wallMs: number; perMs: number[]; ids: string[] }> {
  const t0 = performance.now();
  const perMs: number[] = [];
  const ids: string[] = [];
  const waits: Promise<void>[] = [];
  const waitingTask = new Map<string, (port: number) => void>();
  let polling = true;
  const labelFilter = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const poller =
    kind === 'service'
      ? (async () => {
          while (polling) {
            if (waitingTask.size > 0) {
              const tasks: any[] = (await docker.listTasks({ filters: JSON.stringify({ label: labelFilter, 'desired-state': ['running'] }) } as any)) as any;
              for (const t of tasks) {
                const port = t?.Status?.PortStatus?.Ports?.[0]?.PublishedPort;
                const cb = waitingTask.get(t.ServiceID);
                if (cb && t?.Status?.State === 'running' && port) {
                  waitingTask.delete(t.ServiceID);
                  cb(port);
                }
              }
            }
            await sleep(100);
          }
        })()
      : Promise.resolve();
  try {
    await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      concurrency,
      async (i) => {
        const s = performance.now();
        const name = `${prefix}-${i}`;
        if (kind === 'service') {
          const svc: any = await docker.createService(serviceSpec(name, imageId, labels));
          const id: string = svc.id ?? svc.ID;
          ids.push(id);
          waits.push(
            new Promise<number>((resolve) => waitingTask.set(id, resolve)).then(async (port) => {
              await waitHttp(`http://127.0.0.1:${port}/`, 120_000, 100);
              perMs.push(performance.now() - s);
            }),
          );
        } else {
          const c = await docker.createContainer(rawContainerOptions(name, imageRef, labels));
          ids.push(c.id);
          await c.start();
          const info = await c.inspect();
          const port = Number(info.NetworkSettings.Ports?.[`${SERVER_PORT}/tcp`]?.[0]?.HostPort);
          waits.push(
            waitHttp(`http://127.0.0.1:${port}/`, 120_000, 100).then(() => {
              perMs.push(performance.now() - s);
            }),
          );
        }
      },
    );
    await Promise.race([
      Promise.all(waits),
      sleep(300_000).then(() => {
        throw new Error(`raw burst: not all ${n} answered within 300 s`);
      }),
    ]);
  } finally {
    polling = false;
    await poller;
  }
  return { wallMs: performance.now() - t0, perMs, ids };
}

export async function removeSpawned(kind: BackendKind, docker: Docker, ids: string[]): Promise<void> {
  await mapLimit(ids, 8, async (id) => {
    try {
      if (kind === 'service') await docker.getService(id).remove();
      else await docker.getContainer(id).remove({ force: true });
    } catch {
      /* already gone */
    }
  });
}

/**
 * Remove every service and container carrying label `key=value` (services first, or Swarm would
 * restart the containers), waiting until the task containers are gone too.
 */
export async function cleanupByLabel(docker: Docker, key: string, value: string, timeoutMs = 120_000): Promise<number> {
  const filters = JSON.stringify({ label: [`${key}=${value}`] });
  let removed = 0;
  try {
    const services: any[] = (await docker.listServices({ filters } as any)) as any;
    removed += services.length;
    await mapLimit(services, 8, (s: any) =>
      docker
        .getService(s.ID)
        .remove()
        .catch(() => undefined),
    );
  } catch {
    /* not a Swarm manager */
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const cs = await docker.listContainers({ all: true, filters });
    if (cs.length === 0 || Date.now() > deadline) break;
    removed += cs.length;
    await mapLimit(cs, 8, (c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: false })
        .catch(() => undefined),
    );
    await sleep(300);
  }
  return removed;
}
