/**
 * A real JupyterHub in front of nbswarm, as a site runs it: `nbswarm up` (the bundled CLI, Swarm,
 * host networking on loopback ports), configurable-http-proxy, and Debian's JupyterHub 3 with the
 * spawner from hub/, driven through the hub's REST API with a service token. Everything listens on
 * 127.0.0.1; every Docker object carries the run's name prefix so cleanup removes only its own.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { repoPath } from '../../src/paths.js';
import { freeLoopbackPort } from '../../src/controller/netutil.js';
import { sleep } from './stats.js';
// The same process handling as the hub end-to-end tests (by handle, never by name).
import { PYTHON, startProc, stopProc, tail, type Proc } from '../../test/e2e/hub-harness.js';

const CLI = repoPath('dist', 'nbswarm.mjs');

const HUB_CONFIG = `
import os
c = get_config()  # noqa
e = os.environ
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = int(e['BENCH_HUB_PORT'])
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = int(e['BENCH_HUB_API_PORT'])
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:' + e['BENCH_PROXY_API_PORT']
c.JupyterHub.cleanup_servers = False
c.JupyterHub.db_url = 'sqlite:///' + os.path.join(e['BENCH_DIR'], 'jupyterhub.sqlite')
c.JupyterHub.cookie_secret_file = os.path.join(e['BENCH_DIR'], 'cookie_secret')
c.JupyterHub.pid_file = os.path.join(e['BENCH_DIR'], 'jupyterhub.pid')
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allowed_users = {'bench'}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.services = [{'name': 'bench', 'api_token': e['BENCH_ADMIN_TOKEN']}]
c.JupyterHub.load_roles = [{'name': 'admin', 'services': ['bench']}]
c.JupyterHub.spawner_class = 'nbswarm_spawner.NotebookServerSpawner'
c.NotebookServerSpawner.kubeconfig = e['BENCH_KUBECONFIG']
c.NotebookServerSpawner.namespace = e['BENCH_NAMESPACE']
c.NotebookServerSpawner.image = e['BENCH_IMAGE']
c.NotebookServerSpawner.delete_on_stop = False
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
`;

export interface HubStack {
  /** Name prefix of every Docker object and volume of the run. */
  prefix: string;
  namespace: string;
  kubeconfig: string;
  hubUrl: string;
  /** The hub's REST API with the bench service's admin token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** A request through the proxy to a user's server. */
  viaProxy(path: string): Promise<number>;
  logs(): string;
  stop(docker: Docker): Promise<void>;
}

/** `nbswarm up` + CHP + JupyterHub, all on loopback; resolves once the hub's API answers. */
export async function startHubStack(opts: { image: string; portRange: [number, number] }): Promise<HubStack> {
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-hub-'));
  const prefix = `bh${randomBytes(3).toString('hex')}`;
  const namespace = prefix;
  const token = randomBytes(16).toString('hex');
  const [hubPort, hubApiPort, proxyApiPort] = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  writeFileSync(
    join(dir, 'policy.yaml'),
    `prefix: ${prefix}\nbackend: service\nnetworkMode: host\nhostPortRange: [${opts.portRange[0]}, ${opts.portRange[1]}]\nallowedImages: ["local/*"]\ndefaultImage: ${opts.image}\npullPolicy: never\n`,
  );
  writeFileSync(join(dir, 'jupyterhub_config.py'), HUB_CONFIG);
  const procs: Proc[] = [];
  const kubeconfig = join(dir, 'nbswarm', 'admin.kubeconfig');
  const logs = () => procs.map((p) => `--- ${p.log}\n${tail(p.log, 20)}`).join('\n');
  const stack: HubStack = {
    prefix,
    namespace,
    kubeconfig,
    hubUrl: `http://127.0.0.1:${hubPort}`,
    async api(method, path, body) {
      const res = await fetch(`http://127.0.0.1:${hubPort}/hub/api${path}`, {
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
    },
    async viaProxy(path) {
      try {
        const res = await fetch(`http://127.0.0.1:${hubPort}${path}`, { redirect: 'manual', headers: { Authorization: `token ${token}` } });
        await res.arrayBuffer();
        return res.status;
      } catch {
        return 0;
      }
    },
    logs,
    async stop(docker) {
      const hub = procs[2];
      await stopProc(hub);
      if (existsSync(kubeconfig)) {
        await runQuiet('kubectl', ['--kubeconfig', kubeconfig, 'delete', 'nbs', '--all', '-n', namespace, '--wait=true', '--timeout=120s']);
      }
      for (const p of [procs[1], procs[0]]) await stopProc(p);
      await removeByPrefix(docker, prefix);
      if (!process.env.NBSWARM_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const up = startProc(
      process.execPath,
      [CLI, 'up', '--data-dir', join(dir, 'nbswarm'), '--port', '0', '--status-port', '0', '--policy', join(dir, 'policy.yaml')],
      join(dir, 'up.log'),
      {
        DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1',
        NBSWARM_LOG_LEVEL: process.env.NBSWARM_BENCH_LOG_LEVEL ?? 'info',
      },
    );
    procs.push(up);
    await waitUntil('nbswarm up', 60_000, async () => {
      if (up.child.exitCode !== null) throw new Error(`nbswarm up exited ${up.child.exitCode}\n${tail(up.log, 20)}`);
      return /^kubeconfig:$/m.test(existsSync(up.log) ? readFileSync(up.log, 'utf8') : '');
    });
    if ((await runQuiet('kubectl', ['--kubeconfig', kubeconfig, 'create', 'namespace', namespace])) !== 0)
      throw new Error(`cannot create namespace ${namespace}`);
    procs.push(
      startProc(
        'configurable-http-proxy',
        [
          '--ip',
          '127.0.0.1',
          '--port',
          String(hubPort),
          '--api-ip',
          '127.0.0.1',
          '--api-port',
          String(proxyApiPort),
          '--default-target',
          `http://127.0.0.1:${hubApiPort}`,
        ],
        join(dir, 'chp.log'),
        { NODE_PATH: '/usr/share/nodejs:/usr/lib/nodejs', CONFIGPROXY_AUTH_TOKEN: `${token}-proxy` },
      ),
    );
    procs.push(
      startProc(PYTHON, ['-m', 'jupyterhub', '-f', join(dir, 'jupyterhub_config.py')], join(dir, 'hub.log'), {
        PYTHONPATH: repoPath('hub'),
        BENCH_DIR: dir,
        BENCH_HUB_PORT: String(hubPort),
        BENCH_HUB_API_PORT: String(hubApiPort),
        BENCH_PROXY_API_PORT: String(proxyApiPort),
        BENCH_ADMIN_TOKEN: token,
        BENCH_KUBECONFIG: kubeconfig,
        BENCH_NAMESPACE: namespace,
        BENCH_IMAGE: opts.image,
        CONFIGPROXY_AUTH_TOKEN: `${token}-proxy`,
      }),
    );
    await waitUntil('the hub API', 60_000, async () => (await fetch(`http://127.0.0.1:${hubPort}/hub/api/`).catch(() => undefined))?.ok === true);
    const created = await stack.api('POST', '/users/bench');
    if (![201, 409].includes(created.status)) throw new Error(`cannot create hub user: HTTP ${created.status}`);
    return stack;
  } catch (err) {
    const detail = logs();
    await stack.stop(new Docker()).catch(() => undefined);
    throw new Error(`${(err as Error).message}\n${detail}`);
  }
}

async function waitUntil(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${ms} ms`);
    await sleep(100);
  }
}

function runQuiet(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.on('error', () => resolve(-1));
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

/** Services, containers and volumes named with the run's prefix. */
async function removeByPrefix(docker: Docker, prefix: string): Promise<void> {
  const mine = (name: string) => name.replace(/^\//, '').startsWith(`${prefix}-`);
  const services = ((await docker.listServices().catch(() => [])) as any[]).filter((s) => mine(s.Spec?.Name ?? ''));
  await Promise.all(
    services.map((s) =>
      docker
        .getService(s.ID)
        .remove()
        .catch(() => undefined),
    ),
  );
  for (let i = 0; i < 100; i++) {
    const cs = (await docker.listContainers({ all: true })).filter((c) => c.Names.some(mine) || mine(c.Labels?.['com.docker.swarm.service.name'] ?? ''));
    if (cs.length === 0) break;
    await Promise.all(
      cs.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await sleep(200);
  }
  const vols = ((await docker.listVolumes()) as any).Volumes ?? [];
  await Promise.all(
    vols
      .filter((v: any) => mine(v.Name))
      .map((v: any) =>
        docker
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
  );
}
