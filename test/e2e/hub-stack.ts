/**
 * The end-to-end stack as an administrator runs it: `nbswarm up` (embedded API server + operator on
 * Swarm), configurable-http-proxy on its own, and Debian's JupyterHub 3.0 with the spawner from
 * hub/, talking to the API server with the `hub` role's kubeconfig that `nbswarm kubeconfig` prints.
 * Networking stays on loopback: the policy runs servers with host networking on ports it allocates.
 * The test may kill -9 the hub or `nbswarm up` (processes it started, by PID) and start them again
 * on the same ports and data.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { kubectl } from '../helpers/apiserver.js';
import { freePort, requireDocker, waitFor } from '../helpers/docker.js';
import {
  BASE_HUB_CONFIG,
  hubApiCall,
  hubEnv,
  PYTHON,
  removeRunVolumes,
  requireHubPrograms,
  startHttpProxy,
  startProc,
  stopProc,
  tail,
  type Proc,
} from './hub-harness.js';

export { PYTHON, tail, type Proc };

export const NOTEBOOK_IMAGE = process.env.NBSWARM_NOTEBOOK_IMAGE ?? 'local/notebook:latest';
export const BROKEN_IMAGE = 'local/busybox:test'; // has no start.sh / jupyterhub-singleuser: never gets Ready
const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

function running(p: Proc | undefined): p is Proc {
  return !!p && p.child.exitCode === null && p.child.signalCode === null;
}

/** kill -9 of a process this test started (by its PID, through its handle). */
async function killProc(p: Proc | undefined): Promise<void> {
  if (!running(p)) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

/** A path segment escaped as JupyterHub escapes user and server names in URLs (Python's quote, safe "@~"). */
export function urlName(name: string): string {
  return encodeURIComponent(name)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%40/g, '@');
}

/** The proxy path of a user's server ("" = the default server). */
export function serverPath(user: string, server = ''): string {
  return `/user/${urlName(user)}/${server ? `${urlName(server)}/` : ''}`;
}

/**
 * The stack's crash-loop back-off. The first wait is long enough that the operator (seconds late on a
 * loaded machine) still finds it running and writes Failed for the test to see: at 2 s, a look that
 * came after the wait had run out restarted at once, and each missed round cost Swarm's ~15 s of
 * restarts (the back-off test took 17–174 s).
 */
export const CRASH_LOOP_BACKOFF = { initialSeconds: 6, maxSeconds: 10 };

const HUB_CONFIG =
  BASE_HUB_CONFIG +
  `
from traitlets import default
from nbswarm_spawner import NotebookServerSpawner


class E2ESpawner(NotebookServerSpawner):
    # Servers named slow* run a container that never answers HTTP, with a short start timeout,
    # so the timeout path is tested in seconds.
    @default('start_timeout')
    def _start_timeout_default(self):
        return 6 if self.name.startswith('slow') else 60

    # Servers named gone* are deleted on stop (the other way of stopping).
    @default('delete_on_stop')
    def _delete_on_stop_default(self):
        return self.name.startswith('gone')

    def build_spec(self):
        spec = super().build_spec()
        if self.name.startswith('slow'):
            spec.update(image='${BROKEN_IMAGE}', mode='custom', command=['sleep', '600'])
        if self.name.startswith('refused'):
            # The API (the CRD's schema) refuses this spec: 422 before any object exists.
            spec.update(resources={'memory': 'lots'})
        return spec

c.JupyterHub.spawner_class = E2ESpawner
# A hub check every 2 s: a server reported dead at any moment is dropped within the tests' waits.
c.Spawner.poll_interval = 2
c.NotebookServerSpawner.image = e['E2E_IMAGE']
# evil/miner:1 is allowed here but not by the operator's policy: the policy is the final word.
c.NotebookServerSpawner.allowed_images = [e['E2E_IMAGE'], 'evil/miner:1', '${BROKEN_IMAGE}']
c.Spawner.http_timeout = 30
`;

export interface HubServerModel {
  ready?: boolean;
  pending?: string | null;
  url?: string;
  state?: Record<string, unknown>;
}

export class HubStack {
  readonly run = `e2e${randomBytes(3).toString('hex')}`;
  readonly ns = this.run;
  readonly adminToken = randomBytes(16).toString('hex');
  dir = '';
  /** Admin kubeconfig `nbswarm up` writes; the tests' own view. */
  kubeconfig = '';
  /** The hub's kubeconfig (role hub, this namespace), from `nbswarm kubeconfig`. */
  hubKubeconfig = '';
  docker!: Docker;
  hubPort = 0;
  hubApiPort = 0;
  proxyApiPort = 0;
  apiPort = 0;
  private up?: Proc;
  private chp?: Proc;
  private hub?: Proc;

  get hubBase(): string {
    return `http://127.0.0.1:${this.hubPort}`;
  }

  private hubEnv(): NodeJS.ProcessEnv {
    const { dir, hubPort, hubApiPort, proxyApiPort, adminToken, ns } = this;
    return { ...hubEnv({ dir, hubPort, hubApiPort, proxyApiPort, adminToken, ns, kubeconfig: this.hubKubeconfig }), E2E_IMAGE: NOTEBOOK_IMAGE };
  }

  async start(): Promise<void> {
    ({ docker: this.docker } = await requireDocker({ swarm: true, image: BROKEN_IMAGE }));
    try {
      await this.docker.getImage(NOTEBOOK_IMAGE).inspect();
    } catch {
      throw new Error(`${NOTEBOOK_IMAGE} is missing: build it with images/notebook/build.sh (or images/build-all.sh)`);
    }
    requireHubPrograms();
    this.dir = mkdtempSync(join(tmpdir(), 'nbswarm-e2e-'));
    [this.hubPort, this.hubApiPort, this.proxyApiPort, this.apiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // A port range of its own so concurrent operator tests never hand out the same host ports.
    const lo = 22000 + Math.floor(Math.random() * 70) * 100;
    writeFileSync(
      join(this.dir, 'policy.yaml'),
      [
        `prefix: ${this.run}`,
        'networkMode: host',
        `hostPortRange: [${lo}, ${lo + 99}]`,
        'allowedImages: ["local/*"]',
        `defaultImage: ${NOTEBOOK_IMAGE}`,
        `crashLoopBackOff: { initialSeconds: ${CRASH_LOOP_BACKOFF.initialSeconds}, maxSeconds: ${CRASH_LOOP_BACKOFF.maxSeconds} }`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(this.dir, 'jupyterhub_config.py'), HUB_CONFIG);
    this.kubeconfig = join(this.dir, 'nbswarm', 'admin.kubeconfig');
    await this.startUp();
    const created = await this.kubectl(['create', 'namespace', this.ns]);
    assert.equal(created.code, 0, created.stderr);
    await this.writeHubKubeconfig();

    this.chp = startHttpProxy(this.dir, this);
    await this.startHub();
  }

  /** The README's way: a `hub` line in the token file, then `nbswarm kubeconfig --user hub` (no --server). */
  private async writeHubKubeconfig(): Promise<void> {
    const dataDir = join(this.dir, 'nbswarm');
    appendFileSync(join(dataDir, 'tokens.csv'), `${randomBytes(24).toString('hex')},hub,hub,${this.ns}\n`);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [CLI, 'kubeconfig', '--data-dir', dataDir, '--user', 'hub', '--namespace', this.ns], (err, stdout, stderr) =>
        err ? reject(new Error(`nbswarm kubeconfig: ${stderr || err.message}`)) : resolve(stdout),
      ),
    );
    assert.match(out, new RegExp(`server: https://127\\.0\\.0\\.1:${this.apiPort}\\b`), 'kubeconfig points at the running server');
    this.hubKubeconfig = join(this.dir, 'hub.kubeconfig');
    writeFileSync(this.hubKubeconfig, out, { mode: 0o600 });
    // The token file is re-read within 2 s of a change.
    await waitFor(
      'the hub token accepted',
      async () => (await kubectl(['get', 'nbs', '-n', this.ns], { kubeconfig: this.hubKubeconfig })).code === 0,
      20_000,
      200,
    );
  }

  /** `nbswarm up` on the stack's fixed port and data dir (a restart finds everything there). */
  async startUp(): Promise<void> {
    this.up = startProc(
      'node',
      [CLI, 'up', '--data-dir', join(this.dir, 'nbswarm'), '--port', String(this.apiPort), '--policy', join(this.dir, 'policy.yaml')],
      join(this.dir, 'up.log'),
      { DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' },
    );
    const up = this.up;
    try {
      await waitFor(
        'nbswarm up',
        async () => {
          if (up.child.exitCode !== null) throw new Error(`nbswarm up exited ${up.child.exitCode}`);
          return existsSync(this.kubeconfig) && (await this.kubectl(['get', 'nbs', '-A'])).code === 0;
        },
        60_000,
        100,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- up.log (tail):\n${tail(up.log)}`);
    }
  }

  killUp(): Promise<void> {
    return killProc(this.up);
  }

  async startHub(): Promise<void> {
    this.hub = startProc(PYTHON, ['-m', 'jupyterhub', '-f', join(this.dir, 'jupyterhub_config.py')], join(this.dir, 'hub.log'), this.hubEnv());
    try {
      await waitFor('the hub API', async () => (await fetch(`${this.hubBase}/hub/api/`).catch(() => undefined))?.ok, 60_000, 100);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- hub.log (tail):\n${tail(this.hub.log)}\n--- chp.log (tail):\n${this.chp ? tail(this.chp.log) : ''}`);
    }
  }

  stopHub(): Promise<void> {
    return stopProc(this.hub);
  }

  killHub(): Promise<void> {
    return killProc(this.hub);
  }

  hubLogTail(lines = 40): string {
    return this.hub ? tail(this.hub.log, lines) : '';
  }

  upLogTail(lines = 40): string {
    return this.up ? tail(this.up.log, lines) : '';
  }

  hubApi(method: string, path: string, body?: unknown, token = this.adminToken): Promise<{ status: number; json: any }> {
    return hubApiCall(this.hubBase, method, path, body, token);
  }

  /** A request through the hub's proxy to a user's server (the admin token has access:servers). */
  viaProxy(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.hubBase}${path}`, {
      ...init,
      redirect: 'manual',
      headers: { Authorization: `token ${this.adminToken}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
    });
  }

  async serverModel(user: string, name = ''): Promise<HubServerModel | undefined> {
    const { json } = await this.hubApi('GET', `/users/${urlName(user)}`);
    return json?.servers?.[name];
  }

  /** Spawn through the hub's API; the POST's answer (201 started, 202 pending). */
  spawn(user: string, name = '', options: object = {}): Promise<{ status: number; json: any }> {
    return this.hubApi('POST', name ? `/users/${urlName(user)}/servers/${urlName(name)}` : `/users/${urlName(user)}/server`, options);
  }

  /** Spawn and wait until the proxy serves its /api; seconds from the request. */
  async spawnAndReach(user: string, name = '', options?: object): Promise<number> {
    const t0 = performance.now();
    const res = await this.spawn(user, name, options ?? {});
    assert.ok([201, 202].includes(res.status), `spawn ${user}/${name || '(default)'}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    await waitFor(
      `${serverPath(user, name)}api through the proxy`,
      async () => (await this.viaProxy(`${serverPath(user, name)}api`)).status === 200,
      60_000,
      25,
    );
    return (performance.now() - t0) / 1000;
  }

  async stopServer(user: string, name = ''): Promise<void> {
    const res = await this.hubApi('DELETE', name ? `/users/${urlName(user)}/servers/${urlName(name)}` : `/users/${urlName(user)}/server`);
    assert.ok([202, 204].includes(res.status), `stop ${user}/${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    await waitFor(`hub to report ${user}/${name || 'default'} stopped`, async () => !(await this.serverModel(user, name)), 60_000, 100);
  }

  kubectl(args: string[], input?: string) {
    return kubectl(args, { kubeconfig: this.kubeconfig, input });
  }

  async getNbs(name: string): Promise<any> {
    const r = await this.kubectl(['get', 'nbs', name, '-n', this.ns, '-o', 'json']);
    return r.code === 0 ? JSON.parse(r.stdout) : undefined;
  }

  /** Every NotebookServer of the namespace. */
  async listNbs(): Promise<any[]> {
    const r = await this.kubectl(['get', 'nbs', '-n', this.ns, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).items;
  }

  /** Names of the hub's token Secrets of NotebookServer `name`. */
  async tokenSecrets(name: string): Promise<string[]> {
    const r = await this.kubectl(['get', 'secrets', '-n', this.ns, '-l', `nbswarm.io/name=${name}`, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout)
      .items.map((s: any) => s.metadata.name)
      .sort();
  }

  /** The Swarm tasks of `user`'s servers that run now. */
  async runningTasks(user: string): Promise<any[]> {
    const tasks = (await this.docker.listTasks({
      filters: JSON.stringify({ label: [`nbswarm.io/namespace=${this.ns}`, `nbswarm.io/user=${user}`] }),
    } as object)) as any[];
    return tasks.filter((t) => t.Status?.State === 'running');
  }

  /** The running container of NotebookServer uid `uid`, if any. */
  async runningContainer(uid: string): Promise<Docker.ContainerInfo | undefined> {
    const list = await this.docker.listContainers({ filters: JSON.stringify({ label: [`nbswarm.io/uid=${uid}`], status: ['running'] }) });
    return list[0];
  }

  async close(): Promise<void> {
    await stopProc(this.hub);
    if (this.kubeconfig && existsSync(this.kubeconfig) && running(this.up)) {
      // The operator removes the services; wait for it so no container outlives the test.
      await kubectl(['delete', 'nbs', '--all', '-n', this.ns, '--wait=true', '--timeout=90s'], { kubeconfig: this.kubeconfig, timeoutMs: 100_000 });
      await this.kubectl(['delete', 'namespace', this.ns, '--wait=false']);
    }
    await stopProc(this.chp);
    await stopProc(this.up);
    if (this.docker) {
      // Anything of this run's namespace the operator could not remove (it was killed): ours to remove.
      const services = (await this.docker.listServices({ filters: JSON.stringify({ label: [`nbswarm.io/namespace=${this.ns}`] }) } as object)) as any[];
      await Promise.all(
        services
          .filter((s) => String(s.Spec?.Name).startsWith(`${this.run}-`))
          .map((s) =>
            this.docker
              .getService(s.ID)
              .remove()
              .catch(() => undefined),
          ),
      );
      await removeRunVolumes(this.docker, this.run);
    }
    if (this.dir && !process.env.NBSWARM_KEEP_E2E) rmSync(this.dir, { recursive: true, force: true });
  }
}
