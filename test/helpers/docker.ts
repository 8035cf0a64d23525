/**
 * Shared helpers for tests that need a real dockerd: a loud check that Docker is there (a missing
 * daemon fails the test, never skips it), a per-run label so a test removes only what it created,
 * and small HTTP/port utilities.
 */
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { freeLoopbackPort, httpGet as probeGet, type HttpAnswer } from '../../src/controller/netutil.js';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { DesiredServer } from '../../src/backends/types.js';
import { LABELS, MANAGED_BY } from '../../src/api/names.js';

/** Label every Docker object a test creates carries; cleanup removes only objects with this run's value. */
export const TEST_RUN_LABEL = 'nbswarm.test/run';
/** One value per test process, so parallel runs and the operator's own objects are never touched. */
export const TEST_RUN_ID = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
export const TEST_IMAGE = process.env.NBSWARM_TEST_IMAGE ?? 'local/busybox:test';

export function testLabels(runId = TEST_RUN_ID): Record<string, string> {
  return { [TEST_RUN_LABEL]: runId };
}

export interface DockerCheck {
  docker: Docker;
  swarmActive: boolean;
  serverVersion: string;
}

/**
 * Connect to the daemon and fail loudly when it is not there: a Docker test that silently skips
 * would let CI pass without testing anything.
 */
export async function requireDocker(opts: { swarm?: boolean; image?: string } = {}): Promise<DockerCheck> {
  const docker = new Docker();
  let info: any;
  try {
    info = await docker.info();
  } catch (err) {
    throw new Error(
      `Docker is required for this test but the daemon did not answer (${(err as Error).message}). ` +
        'Start dockerd (e.g. `dockerd --ip=127.0.0.1 &`) or set DOCKER_HOST; .ci/run does this for you.',
    );
  }
  const swarmActive = info?.Swarm?.LocalNodeState === 'active' && info?.Swarm?.ControlAvailable === true;
  if (opts.swarm && !swarmActive) {
    throw new Error(
      `This test needs Docker Swarm (manager) but LocalNodeState=${info?.Swarm?.LocalNodeState}. ` +
        'Run `docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377`.',
    );
  }
  const image = opts.image ?? TEST_IMAGE;
  try {
    await docker.getImage(image).inspect();
  } catch {
    throw new Error(`Test image ${image} is missing: build it with images/test/build.sh (no registry needed).`);
  }
  return { docker, swarmActive, serverVersion: String(info?.ServerVersion ?? '') };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * Remove every service, container, volume, network and image labelled with this run.
 * Services go first: Swarm would otherwise restart the containers we remove.
 */
export async function cleanupDocker(docker: Docker, runId = TEST_RUN_ID): Promise<void> {
  const filters = JSON.stringify({ label: [`${TEST_RUN_LABEL}=${runId}`] });
  const ignore = () => undefined;
  let swarm = false;
  try {
    const info: any = await docker.info();
    swarm = info?.Swarm?.LocalNodeState === 'active' && info?.Swarm?.ControlAvailable === true;
  } catch {
    return;
  }
  if (swarm) {
    const services = (await docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as any[];
    await Promise.all(services.map((s: any) => docker.getService(s.ID).remove().catch(ignore)));
  }
  // A removed service's task containers linger for a moment; wait for them before removing
  // volumes, which are still "in use" until then.
  for (let i = 0; i < 50; i++) {
    const containers = await docker.listContainers({ all: true, filters });
    if (containers.length === 0) break;
    await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: false }).catch(ignore)));
    await sleep(200);
  }
  const vols = (await docker.listVolumes({ filters } as object)) as any;
  await Promise.all((vols.Volumes ?? []).map((v: any) => docker.getVolume(v.Name).remove().catch(ignore)));
  const nets = (await docker.listNetworks({ filters } as object)) as any[];
  await Promise.all(nets.map((n: any) => docker.getNetwork(n.Id).remove().catch(ignore)));
  const images = (await docker.listImages({ filters } as object)) as any[];
  await Promise.all(images.map((im: any) => docker.getImage(im.Id).remove({ force: true }).catch(ignore)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port free on 127.0.0.1 right now (for host-networking servers). */
export const freePort = freeLoopbackPort;

/** One GET on a connection of its own: the operator's readiness probe (netutil.ts), with the whole body. */
export function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return probeGet(url, timeoutMs, Infinity);
}

/** Poll until the URL answers 2xx; returns the body. Connection errors are expected while a server starts. */
export async function waitForHttp(url: string, timeoutMs = 30000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await httpGet(url);
      if (res.status >= 200 && res.status < 300) return res.body;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (last: ${last})`);
}

/** Poll `fn` until it returns a truthy value. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}

/**
 * Collect raw Docker events between `since` and `until` (seconds since epoch) that concern objects
 * labelled with this run, to prove "no write happened" without timing assertions.
 */
export async function dockerEventsBetween(docker: Docker, since: number, until: number, filters: Record<string, string[]> = {}): Promise<any[]> {
  const stream = (await docker.getEvents({ since, until, filters: JSON.stringify(filters) } as object)) as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** Run a command in a container and return its stdout+stderr (demultiplexed). */
export async function execIn(docker: Docker, containerId: string, cmd: string[], user?: string): Promise<{ exitCode: number; output: string }> {
  const ex = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, User: user });
  const stream = await ex.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const sink = new (await import('node:stream')).PassThrough();
  sink.on('data', (c: Buffer) => out.push(c));
  docker.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  const info = await ex.inspect();
  return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(out).toString('utf8') };
}

/**
 * A DesiredServer built by hand for backend tests (the controller builds real ones from policy),
 * labelled with this run so cleanupDocker finds everything, volumes included.
 */
export function testDesiredServer(over: Partial<DesiredServer> & { dockerName: string }): DesiredServer {
  const uid = over.uid ?? `test-${randomBytes(6).toString('hex')}`;
  const base: DesiredServer = {
    namespace: 'default',
    name: over.dockerName,
    uid,
    generation: 1,
    labels: { ...testLabels(), [LABELS.user]: 'tester', [LABELS.servername]: '' },
    image: TEST_IMAGE,
    pullPolicy: 'never',
    command: ['httpd', '-f', '-p', '8888', '-h', '/www'],
    env: {},
    port: 8888,
    networkMode: 'bridge',
    publishHostIp: '127.0.0.1',
    volumes: [],
    resources: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 * 1024 },
    hardening: { noNewPrivileges: true, capDrop: ['ALL'], pidsLimit: 64 },
    stopped: false,
    specHash: '',
    ...over,
  };
  return withHash(base);
}

/**
 * Recompute specHash from every field that shapes the Docker object, and the labels derived from
 * the fields (renderDesired builds them for real servers; backends write labels as given and read
 * uid, port, host IP and spec hash back).
 */
export function withHash(d: DesiredServer): DesiredServer {
  const { specHash: _h, stopped: _s, generation: _g, labels: given, ...shape } = d;
  const { [LABELS.generation]: _lg, [LABELS.specHash]: _lh, ...hashed } = given;
  const specHash = createHash('sha256')
    .update(JSON.stringify({ ...shape, labels: hashed }))
    .digest('hex')
    .slice(0, 16);
  const labels = {
    ...given,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.uid]: d.uid,
    [LABELS.namespace]: d.namespace,
    [LABELS.name]: d.name,
    [LABELS.generation]: String(d.generation),
    [LABELS.image]: d.image,
    [LABELS.port]: String(d.port),
    [LABELS.hostIp]: d.networkMode === 'host' ? '' : d.publishHostIp,
    [LABELS.specHash]: specHash,
  };
  return { ...d, labels, specHash };
}

/**
 * A host-network server for the backend suites: httpd on 127.0.0.1:<port> serving a read-only
 * bind (binds only ever come from policy) that replaces the image's /www, with a user, extra
 * group, workdir and env to check. Returns the server, the page it serves and the bound folder.
 */
export function hostNetworkTestServer(namePrefix: string, port: number): { desired: DesiredServer; page: string; www: string } {
  const www = mkdtempSync(join(tmpdir(), 'nbs-test-www-'));
  const page = `bound ${TEST_RUN_ID}`;
  writeFileSync(join(www, 'index.html'), page);
  chmodSync(www, 0o755);
  const desired = testDesiredServer({
    volumes: [{ type: 'bind', source: www, target: '/www', readOnly: true }],
    dockerName: uniqueName(namePrefix),
    networkMode: 'host',
    port,
    command: ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/www'],
    user: '1000:100',
    groups: ['65534'],
    workdir: '/tmp',
    env: { NB_PORT: String(port) },
  });
  return { desired, page, www };
}
