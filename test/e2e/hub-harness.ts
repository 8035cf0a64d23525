/**
 * The stack the hub end-to-end tests run, for test files that bring their own policy and hub
 * configuration: `nbswarm up` (embedded API server + operator on this machine's Swarm), Debian's
 * configurable-http-proxy on its own, and Debian's JupyterHub 3.0 (under /usr/bin/python3) with
 * the spawner from hub/, an admin service token, and everything on 127.0.0.1. stop() ends the
 * processes it started (by handle, never by name) and removes the servers and volumes of its run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { kubectl } from '../helpers/apiserver.js';
import { freePort, requireDocker, sleep, waitFor } from '../helpers/docker.js';
import { repoPath } from '../../src/paths.js';

export const PYTHON = '/usr/bin/python3';
const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

export interface Proc {
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

export function startProc(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Proc {
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: logFile, exited };
}

export async function stopProc(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const done = await Promise.race([p.exited.then(() => true), sleep(15000).then(() => false)]);
  if (!done) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

export function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** jupyterhub_config.py lines every stack shares (hubEnv's variables); the test file appends its own. */
export const BASE_HUB_CONFIG = `
import os
c = get_config()  # noqa
e = os.environ
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = int(e['E2E_HUB_PORT'])
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = int(e['E2E_HUB_API_PORT'])
# The proxy runs on its own (as in production) so it keeps routing while the hub restarts.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:' + e['E2E_PROXY_API_PORT']
c.JupyterHub.cleanup_servers = False
c.JupyterHub.db_url = 'sqlite:///' + os.path.join(e['E2E_DIR'], 'jupyterhub.sqlite')
c.JupyterHub.cookie_secret_file = os.path.join(e['E2E_DIR'], 'cookie_secret')
c.JupyterHub.pid_file = os.path.join(e['E2E_DIR'], 'jupyterhub.pid')
# DummyAuthenticator, every user allowed: the tests log users in through the login form.
c.JupyterHub.authenticator_class = 'dummy'
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{'name': 'e2e', 'api_token': e['E2E_ADMIN_TOKEN']}]
c.JupyterHub.load_roles = [{'name': 'admin', 'services': ['e2e']}]
c.JupyterHub.spawner_class = 'nbswarm_spawner.NotebookServerSpawner'
c.NotebookServerSpawner.kubeconfig = e['E2E_KUBECONFIG']
c.NotebookServerSpawner.namespace = e['E2E_NAMESPACE']
c.Spawner.http_timeout = 60
`;

/** The loopback ports of a stack's hub (behind the proxy), its API, and the proxy's API. */
export interface HubPorts {
  hubPort: number;
  hubApiPort: number;
  proxyApiPort: number;
}

/** The hub process's environment: what BASE_HUB_CONFIG reads, and the spawner on PYTHONPATH. */
export function hubEnv(o: HubPorts & { dir: string; adminToken: string; kubeconfig: string; ns: string }): NodeJS.ProcessEnv {
  return {
    PYTHONPATH: repoPath('hub'),
    E2E_DIR: o.dir,
    E2E_HUB_PORT: String(o.hubPort),
    E2E_HUB_API_PORT: String(o.hubApiPort),
    E2E_PROXY_API_PORT: String(o.proxyApiPort),
    E2E_ADMIN_TOKEN: o.adminToken,
    E2E_KUBECONFIG: o.kubeconfig,
    E2E_NAMESPACE: o.ns,
    CONFIGPROXY_AUTH_TOKEN: o.adminToken + '-proxy',
  };
}

/** Fails, naming the packages to install, when JupyterHub or configurable-http-proxy is missing. */
export function requireHubPrograms(): void {
  for (const bin of ['/usr/bin/jupyterhub', '/usr/bin/configurable-http-proxy']) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install jupyterhub node-configurable-http-proxy`);
  }
}

/** Debian's configurable-http-proxy on its own in front of the hub, its log chp.log in `dir`. */
export function startHttpProxy(dir: string, o: HubPorts & { adminToken: string }): Proc {
  return startProc(
    'configurable-http-proxy',
    [
      '--ip',
      '127.0.0.1',
      '--port',
      String(o.hubPort),
      '--api-ip',
      '127.0.0.1',
      '--api-port',
      String(o.proxyApiPort),
      '--default-target',
      `http://127.0.0.1:${o.hubApiPort}`,
      '--error-target',
      `http://127.0.0.1:${o.hubApiPort}/hub/error`,
    ],
    join(dir, 'chp.log'),
    // Debian's CHP needs its modules from the Debian node paths under the machine's Node 20.
    { NODE_PATH: '/usr/share/nodejs:/usr/lib/nodejs', CONFIGPROXY_AUTH_TOKEN: o.adminToken + '-proxy' },
  );
}

/** One call of the REST API of the hub at `hubBase` (http://127.0.0.1:PORT) with `token`; the body parsed when it is JSON. */
export async function hubApiCall(hubBase: string, method: string, path: string, body: unknown, token: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${hubBase}/hub/api${path}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** Removes the volumes of run `run` (named from its policy prefix): they outlive servers by design. */
export async function removeRunVolumes(docker: Docker, run: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const vols = ((await docker.listVolumes({ filters: JSON.stringify({ name: [run] }) } as object)) as any).Volumes ?? [];
    const mine = vols.filter((v: any) => String(v.Name).startsWith(`${run}-`));
    if (mine.length === 0) return;
    await Promise.all(
      mine.map((v: any) =>
        docker
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
    );
    await sleep(200);
  }
}

export interface HubStack {
  run: string;
  ns: string;
  dir: string;
  kubeconfig: string;
  hubPort: number;
  adminToken: string;
  docker: Docker;
  hubLog(): string;
  /** The tails of the logs of `nbswarm up`, the proxy and the hub. */
  logs(): string;
  /** The hub's REST API as the admin service. */
  hubApi(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: any }>;
  /** A request through the proxy (no redirects followed), with `token` when given. */
  viaProxy(path: string, token?: string, init?: RequestInit): Promise<Response>;
  /** The proxy's routing table (configurable-http-proxy's REST API): route prefix → target. */
  proxyRoutes(): Promise<Record<string, { target: string }>>;
  kubectl(args: string[], input?: string): Promise<string>;
  /** Process IDs of `nbswarm up`, the proxy and the hub (undefined until started). */
  pids(): { up?: number; proxy?: number; hub?: number };
  stop(): Promise<void>;
}

export async function startHubStack(opts: { policy: string; hubConfig: string; images: string[]; upEnv?: NodeJS.ProcessEnv }): Promise<HubStack> {
  const { docker } = await requireDocker({ swarm: true });
  for (const image of opts.images) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      throw new Error(`${image} is missing: build it with images/build-all.sh`);
    }
  }
  requireHubPrograms();
  const run = `e2e${randomBytes(3).toString('hex')}`;
  const ns = run;
  const adminToken = randomBytes(16).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-e2e-'));
  const [hubPort, hubApiPort, proxyApiPort] = [await freePort(), await freePort(), await freePort()];
  const kubeconfig = join(dir, 'nbswarm', 'admin.kubeconfig');
  writeFileSync(join(dir, 'policy.yaml'), `prefix: ${run}\n${opts.policy}`);
  writeFileSync(join(dir, 'jupyterhub_config.py'), BASE_HUB_CONFIG + opts.hubConfig);
  const procs: Proc[] = [];
  const stack: HubStack = {
    run,
    ns,
    dir,
    kubeconfig,
    hubPort,
    adminToken,
    docker,
    hubLog: () => tail(join(dir, 'hub.log')),
    logs: () => ['up.log', 'chp.log', 'hub.log'].map((f) => `--- ${f} (tail):\n${tail(join(dir, f), 20)}`).join('\n'),
    hubApi: (method, path, body, token = adminToken) => hubApiCall(`http://127.0.0.1:${hubPort}`, method, path, body, token),
    viaProxy(path, token, init = {}) {
      const headers: Record<string, string> = { ...((init.headers as Record<string, string>) ?? {}) };
      if (token) headers.Authorization = `token ${token}`;
      return fetch(`http://127.0.0.1:${hubPort}${path}`, { ...init, redirect: 'manual', headers });
    },
    async proxyRoutes() {
      const res = await fetch(`http://127.0.0.1:${proxyApiPort}/api/routes`, { headers: { Authorization: `token ${adminToken}-proxy` } });
      if (!res.ok) throw new Error(`configurable-http-proxy GET /api/routes: HTTP ${res.status}`);
      return (await res.json()) as Record<string, { target: string }>;
    },
    async kubectl(args, input) {
      const r = await kubectl(args, { kubeconfig, input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    pids() {
      return { up: procs[0]?.child.pid, proxy: procs[1]?.child.pid, hub: procs[2]?.child.pid };
    },
    async stop() {
      await stopProc(procs[2]);
      if (existsSync(kubeconfig)) {
        await kubectl(['delete', 'nbs', '--all', '-n', ns, '--wait=true', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
        await kubectl(['delete', 'namespace', ns, '--wait=false'], { kubeconfig });
      }
      await stopProc(procs[1]);
      await stopProc(procs[0]);
      await removeRunVolumes(docker, run);
      if (!process.env.NBSWARM_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
    },
  };

  procs.push(
    startProc(
      'node',
      // No status page: stacks run side by side and its default port is fixed.
      [CLI, 'up', '--data-dir', join(dir, 'nbswarm'), '--port', '0', '--status-port', '0', '--policy', join(dir, 'policy.yaml')],
      join(dir, 'up.log'),
      { DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1', ...opts.upEnv },
    ),
  );
  try {
    await waitFor(
      'nbswarm up',
      async () => {
        if (procs[0]!.child.exitCode !== null) throw new Error(`nbswarm up exited ${procs[0]!.child.exitCode}`);
        return existsSync(kubeconfig) && (await kubectl(['get', 'nbs', '-A'], { kubeconfig })).code === 0;
      },
      60_000,
      200,
    );
  } catch (err) {
    await stack.stop();
    throw new Error(`${(err as Error).message}\n--- up.log (tail):\n${tail(join(dir, 'up.log'))}`);
  }
  const created = await kubectl(['create', 'namespace', ns], { kubeconfig });
  assert.equal(created.code, 0, created.stderr);
  const ports: HubPorts = { hubPort, hubApiPort, proxyApiPort };
  procs.push(startHttpProxy(dir, { ...ports, adminToken }));
  procs.push(
    startProc(
      PYTHON,
      ['-m', 'jupyterhub', '-f', join(dir, 'jupyterhub_config.py')],
      join(dir, 'hub.log'),
      hubEnv({ ...ports, dir, adminToken, kubeconfig, ns }),
    ),
  );
  try {
    await waitFor('the hub API', async () => (await fetch(`http://127.0.0.1:${hubPort}/hub/api/`).catch(() => undefined))?.ok, 30_000, 100);
  } catch (err) {
    await stack.stop();
    throw new Error(`${(err as Error).message}\n--- hub.log (tail):\n${tail(join(dir, 'hub.log'))}\n--- chp.log (tail):\n${tail(join(dir, 'chp.log'))}`);
  }
  return stack;
}
