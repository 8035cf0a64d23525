/**
 * End to end: `nbswarm up` (embedded API server + operator on Swarm), a real
 * JupyterHub 3.0 (Debian's, under /usr/bin/python3) with configurable-http-proxy, DummyAuthenticator
 * and the spawner from hub/, driven through the hub's REST API with an admin service token.
 * Networking stays on loopback: the operator's policy runs servers with host networking on ports it
 * allocates; hub, proxy and API server listen on 127.0.0.1.
 *
 * Needs: dockerd in Swarm mode, images local/notebook:latest and local/busybox:test
 * (images/build-all.sh), Debian's jupyterhub + node-configurable-http-proxy + python3-kubernetes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { kubectl } from '../helpers/apiserver.js';
import { freePort, requireDocker, sleep, waitFor } from '../helpers/docker.js';
import { repoPath } from '../../src/paths.js';
import { PYTHON, startProc, stopProc, tail, type Proc } from './hub-harness.js';

const NOTEBOOK_IMAGE = process.env.NBSWARM_NOTEBOOK_IMAGE ?? 'local/notebook:latest';
const BROKEN_IMAGE = 'local/busybox:test'; // has no start.sh / jupyterhub-singleuser: never gets Ready
const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const HUB_CONFIG = `
import os
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
        return spec

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
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allowed_users = {'alice'}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{'name': 'e2e', 'api_token': e['E2E_ADMIN_TOKEN']}]
c.JupyterHub.load_roles = [{'name': 'admin', 'services': ['e2e']}]
c.JupyterHub.spawner_class = E2ESpawner
c.NotebookServerSpawner.kubeconfig = e['E2E_KUBECONFIG']
c.NotebookServerSpawner.namespace = e['E2E_NAMESPACE']
c.NotebookServerSpawner.image = e['E2E_IMAGE']
# evil/miner:1 is allowed here but not by the operator's policy: the policy is the final word.
c.NotebookServerSpawner.allowed_images = [e['E2E_IMAGE'], 'evil/miner:1', '${BROKEN_IMAGE}']
c.Spawner.http_timeout = 30
`;

describe('e2e: JupyterHub + NotebookServerSpawner + nbswarm up (Swarm)', function () {
  this.timeout(180_000);

  const run = `e2e${randomBytes(3).toString('hex')}`;
  const ns = run;
  const adminToken = randomBytes(16).toString('hex');
  let dir = '';
  let kubeconfig = '';
  let docker: Docker;
  let up: Proc | undefined;
  let chp: Proc | undefined;
  let hub: Proc | undefined;
  let hubPort = 0;
  let hubApiPort = 0;
  let proxyApiPort = 0;
  const spawnTimes: number[] = [];

  const hubEnv = (): NodeJS.ProcessEnv => ({
    PYTHONPATH: repoPath('hub'),
    E2E_DIR: dir,
    E2E_HUB_PORT: String(hubPort),
    E2E_HUB_API_PORT: String(hubApiPort),
    E2E_PROXY_API_PORT: String(proxyApiPort),
    E2E_ADMIN_TOKEN: adminToken,
    E2E_KUBECONFIG: kubeconfig,
    E2E_NAMESPACE: ns,
    E2E_IMAGE: NOTEBOOK_IMAGE,
    CONFIGPROXY_AUTH_TOKEN: adminToken + '-proxy',
  });

  async function hubApi(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`http://127.0.0.1:${hubPort}/hub/api${path}`, {
      method,
      headers: { Authorization: `token ${adminToken}`, 'Content-Type': 'application/json' },
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

  /** A request through the hub's proxy to a user's server (admin token has access:servers). */
  function viaProxy(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`http://127.0.0.1:${hubPort}${path}`, {
      ...init,
      redirect: 'manual',
      headers: { Authorization: `token ${adminToken}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
    });
  }

  async function startHub(): Promise<void> {
    hub = startProc(PYTHON, ['-m', 'jupyterhub', '-f', join(dir, 'jupyterhub_config.py')], join(dir, 'hub.log'), hubEnv());
    try {
      await waitFor('the hub API', async () => (await fetch(`http://127.0.0.1:${hubPort}/hub/api/`).catch(() => undefined))?.ok, 30_000, 100);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- hub.log (tail):\n${tail(hub.log)}\n--- chp.log (tail):\n${chp ? tail(chp.log) : ''}`);
    }
  }

  async function serverModel(name: string): Promise<any> {
    const { json } = await hubApi('GET', '/users/alice');
    return json?.servers?.[name];
  }

  /** Spawn through the hub and return seconds from the request until the proxy answers /api. */
  async function spawnAndReach(name: string, options?: object): Promise<number> {
    const t0 = performance.now();
    const path = name ? `/users/alice/servers/${name}` : '/users/alice/server';
    const res = await hubApi('POST', path, options ?? {});
    assert.ok([201, 202].includes(res.status), `spawn ${name || '(default)'}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    const prefix = name ? `/user/alice/${name}` : '/user/alice';
    await waitFor(`${prefix}/api through the proxy`, async () => (await viaProxy(`${prefix}/api`)).status === 200, 60_000, 25);
    return (performance.now() - t0) / 1000;
  }

  async function stopServer(name: string): Promise<void> {
    const path = name ? `/users/alice/servers/${name}` : '/users/alice/server';
    const res = await hubApi('DELETE', path);
    assert.ok([202, 204].includes(res.status), `stop ${name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    await waitFor(`hub to report ${name || 'default'} stopped`, async () => !(await serverModel(name)), 60_000, 100);
  }

  async function getNbs(name: string): Promise<any> {
    const r = await kubectl(['get', 'nbs', name, '-n', ns, '-o', 'json'], { kubeconfig });
    return r.code === 0 ? JSON.parse(r.stdout) : undefined;
  }

  before(async function () {
    ({ docker } = await requireDocker({ swarm: true, image: BROKEN_IMAGE }));
    try {
      await docker.getImage(NOTEBOOK_IMAGE).inspect();
    } catch {
      throw new Error(`${NOTEBOOK_IMAGE} is missing: build it with images/notebook/build.sh (or images/build-all.sh)`);
    }
    for (const bin of ['/usr/bin/jupyterhub', '/usr/bin/configurable-http-proxy']) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install jupyterhub node-configurable-http-proxy`);
    }
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-e2e-'));
    [hubPort, hubApiPort, proxyApiPort] = [await freePort(), await freePort(), await freePort()];
    // A port range of its own so concurrent operator tests never hand out the same host ports.
    const lo = 22000 + Math.floor(Math.random() * 70) * 100;
    writeFileSync(
      join(dir, 'policy.yaml'),
      `prefix: ${run}\nnetworkMode: host\nhostPortRange: [${lo}, ${lo + 99}]\nallowedImages: ["local/*"]\ndefaultImage: ${NOTEBOOK_IMAGE}\n`,
    );
    writeFileSync(join(dir, 'jupyterhub_config.py'), HUB_CONFIG);

    up = startProc('node', [CLI, 'up', '--data-dir', join(dir, 'nbswarm'), '--port', '0', '--policy', join(dir, 'policy.yaml')], join(dir, 'up.log'), {
      DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1',
    });
    kubeconfig = join(dir, 'nbswarm', 'admin.kubeconfig');
    try {
      await waitFor('nbswarm up', async () => {
        if (up!.child.exitCode !== null) throw new Error(`nbswarm up exited ${up!.child.exitCode}`);
        return existsSync(kubeconfig) && (await kubectl(['get', 'nbs', '-A'], { kubeconfig })).code === 0;
      }, 60_000, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- ${up.log} (tail):\n${tail(up.log)}`);
    }
    const created = await kubectl(['create', 'namespace', ns], { kubeconfig });
    assert.equal(created.code, 0, created.stderr);

    chp = startProc(
      'configurable-http-proxy',
      ['--ip', '127.0.0.1', '--port', String(hubPort), '--api-ip', '127.0.0.1', '--api-port', String(proxyApiPort),
        '--default-target', `http://127.0.0.1:${hubApiPort}`, '--error-target', `http://127.0.0.1:${hubApiPort}/hub/error`],
      join(dir, 'chp.log'),
      // Debian's CHP needs its modules from the Debian node paths under the machine's Node 20.
      { NODE_PATH: '/usr/share/nodejs:/usr/lib/nodejs', CONFIGPROXY_AUTH_TOKEN: adminToken + '-proxy' },
    );
    await startHub();
  });

  after(async function () {
    this.timeout(120_000);
    await stopProc(hub);
    if (kubeconfig && existsSync(kubeconfig)) {
      // The operator removes the services; wait for it so no container outlives the test.
      await kubectl(['delete', 'nbs', '--all', '-n', ns, '--wait=true', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
      await kubectl(['delete', 'namespace', ns, '--wait=false'], { kubeconfig });
    }
    await stopProc(chp);
    await stopProc(up);
    if (docker) {
      // Volumes outlive servers by design; these are this run's (named from its policy prefix).
      for (let i = 0; i < 50; i++) {
        const vols = ((await docker.listVolumes({ filters: JSON.stringify({ name: [run] }) } as object)) as any).Volumes ?? [];
        const mine = vols.filter((v: any) => String(v.Name).startsWith(`${run}-`));
        if (mine.length === 0) break;
        await Promise.all(mine.map((v: any) => docker.getVolume(v.Name).remove().catch(() => undefined)));
        await sleep(200);
      }
    }
    if (spawnTimes.length) {
      console.log(`      hub spawn → proxy answering: ${spawnTimes.map((t) => t.toFixed(2)).join(', ')} s; median ${median(spawnTimes).toFixed(2)} s`);
    }
    if (dir && !process.env.NBSWARM_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  });

  it("starts alice's default server; the proxy serves its /api", async () => {
    spawnTimes.push(await spawnAndReach(''));
    const res = await viaProxy('/user/alice/api');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { version?: string };
    assert.match(String(body.version), /^\d+\.\d+/);
    const model = await serverModel('');
    assert.equal(model.ready, true);
    assert.equal(model.state.object_name, 'nbs-alice');
  });

  it("runs alice's named server dash1 beside it: two NotebookServers, two Swarm services, both in kubectl get nbs", async () => {
    await spawnAndReach('dash1');
    const list = JSON.parse((await kubectl(['get', 'nbs', '-n', ns, '-o', 'json'], { kubeconfig })).stdout);
    const byServer = new Map<string, any>(list.items.map((o: any) => [o.spec.servername, o]));
    assert.deepEqual([...byServer.keys()].sort(), ['', 'dash1']);
    for (const o of byServer.values()) {
      assert.equal(o.spec.user, 'alice');
      assert.equal(o.status.phase, 'Running');
      assert.match(o.status.endpoint.hostUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    }
    const services = (await docker.listServices({ filters: JSON.stringify({ label: [`nbswarm.io/namespace=${ns}`] }) } as any)) as unknown as any[];
    assert.equal(services.length, 2);
    const table = await kubectl(['get', 'nbs', '-n', ns], { kubeconfig });
    for (const o of byServer.values()) assert.ok(table.stdout.includes(o.status.endpoint.hostUrl), table.stdout);
    assert.match(table.stdout, /dash1/);
  });

  it("does not put the hub's API token in the NotebookServer (kubectl get nbs -o yaml)", async () => {
    const secret = await kubectl(['get', 'secret', 'nbs-alice-hub', '-n', ns, '-o', 'jsonpath={.data.token}'], { kubeconfig });
    assert.equal(secret.code, 0, secret.stderr);
    const token = Buffer.from(secret.stdout, 'base64').toString();
    assert.ok(token.length >= 16, 'the Secret holds the token');
    const yaml = await kubectl(['get', 'nbs', '-n', ns, '-o', 'yaml'], { kubeconfig });
    assert.equal(yaml.code, 0);
    assert.ok(!yaml.stdout.includes(token), 'token must not appear in the NotebookServer');
    assert.match(yaml.stdout, /secretKeyRef/);
  });

  it('keeps routing to the running server across a hub restart, without respawning', async () => {
    const before = await getNbs('nbs-alice');
    await stopProc(hub);
    await startHub();
    const model = await waitFor('the restarted hub to load alice', async () => serverModel(''), 30_000, 100);
    assert.equal(model.ready, true);
    assert.equal((await viaProxy('/user/alice/api')).status, 200);
    const after = await getNbs('nbs-alice');
    assert.equal(after.metadata.uid, before.metadata.uid);
    assert.equal(after.metadata.generation, before.metadata.generation, 'the hub must not have patched the spec');
    assert.equal(after.status.backend.id, before.status.backend.id);
  });

  it('stops (resource kept, stopped) and starts again with the files of the first session', async () => {
    const content = `written by the e2e run ${run}`;
    const put = await viaProxy('/user/alice/api/contents/work/e2e.txt', {
      method: 'PUT',
      body: JSON.stringify({ type: 'file', format: 'text', content }),
    });
    assert.ok([200, 201].includes(put.status), `PUT contents: HTTP ${put.status} ${await put.text()}`);

    const uid = (await getNbs('nbs-alice')).metadata.uid;
    await stopServer('');
    const stopped = await getNbs('nbs-alice');
    assert.equal(stopped.spec.stopped, true);
    assert.equal(stopped.status.phase, 'Stopped');
    const running = await docker.listContainers({ filters: JSON.stringify({ label: [`nbswarm.io/uid=${uid}`], status: ['running'] }) });
    assert.deepEqual(running.map((c) => c.Names), [], 'phase Stopped means no container runs');

    spawnTimes.push(await spawnAndReach(''));
    const got = await viaProxy('/user/alice/api/contents/work/e2e.txt');
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as { content: string }).content, content);
  });

  it("fails a spawn the operator's policy refuses with the resource's message, not a hang", async () => {
    const res = await hubApi('POST', '/users/alice/servers/bad', { image: 'evil/miner:1' });
    assert.equal(res.status, 500);
    assert.match(res.json.message, /not allowed by the operator policy/);
    assert.equal((await serverModel('bad'))?.ready ?? false, false);
    const obj = await getNbs('nbs-alice-bad');
    assert.equal(obj.status.phase, 'Failed');
  });

  it('with delete_on_stop: stop removes the resource and its service, a new start still has the files', async () => {
    await spawnAndReach('gone1');
    const content = `kept across a delete ${run}`;
    const put = await viaProxy('/user/alice/gone1/api/contents/work/gone.txt', {
      method: 'PUT',
      body: JSON.stringify({ type: 'file', format: 'text', content }),
    });
    assert.ok([200, 201].includes(put.status), `PUT contents: HTTP ${put.status}`);
    const uid = (await getNbs('nbs-alice-gone1')).metadata.uid;

    await stopServer('gone1');
    assert.equal(await getNbs('nbs-alice-gone1'), undefined, 'the NotebookServer is gone');
    const services = (await docker.listServices({ filters: JSON.stringify({ label: [`nbswarm.io/uid=${uid}`] }) } as any)) as unknown as any[];
    assert.equal(services.length, 0);

    await spawnAndReach('gone1');
    assert.notEqual((await getNbs('nbs-alice-gone1')).metadata.uid, uid, 'a new resource');
    const got = await viaProxy('/user/alice/gone1/api/contents/work/gone.txt');
    assert.equal(((await got.json()) as { content: string }).content, content);
    await stopServer('gone1');
  });

  /** The failure message of a spawn: from the POST's error, or from the progress stream when pending. */
  async function spawnFailure(name: string, options: object): Promise<string> {
    const res = await hubApi('POST', `/users/alice/servers/${name}`, options);
    if (res.status === 500) return String(res.json.message);
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const progress = await fetch(`http://127.0.0.1:${hubPort}/hub/api/users/alice/servers/${name}/progress`, {
      headers: { Authorization: `token ${adminToken}` },
    });
    const text = await progress.text();
    const events = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    const failed = events.find((e) => e.failed);
    assert.ok(failed, text);
    return String(failed.message);
  }

  it("fails a spawn whose container cannot run the server with the resource's message", async () => {
    // The test image has neither start.sh nor jupyterhub-singleuser.
    const message = await spawnFailure('broken', { image: BROKEN_IMAGE });
    assert.match(message, /NotebookServer \S*nbs-alice-broken/);
    assert.equal((await serverModel('broken'))?.ready ?? false, false);
    const obj = await getNbs('nbs-alice-broken');
    assert.ok(obj.status.message, 'the resource says what is wrong');
    // Swarm keeps retrying the task, so the status may have moved on since the spawn failed; the
    // Warning Event the operator recorded with each failure stays.
    const events = JSON.parse((await kubectl(['get', 'events', '-n', ns, '-o', 'json'], { kubeconfig })).stdout) as { items: any[] };
    const warnings: string[] = events.items.filter((e) => e.involvedObject?.name === 'nbs-alice-broken' && e.type === 'Warning').map((e) => String(e.message));
    assert.ok(
      message.includes(obj.status.message) || warnings.some((w) => message.includes(w)) || obj.status.phase === 'Failed',
      `${message} / status: ${obj.status.message} / warnings: ${warnings.join(' | ')}`,
    );
  });

  it("fails a spawn that never gets Ready at start_timeout with the resource's message, not a hang", async () => {
    const message = await spawnFailure('slow', {});
    assert.match(message, /nbs-alice-slow not ready after 6s: .+/);
    assert.equal((await serverModel('slow'))?.ready ?? false, false);
    // The hub stopped it after the failed spawn: nothing keeps running.
    const obj = await getNbs('nbs-alice-slow');
    assert.equal(obj.spec.stopped, true);
  });

  it('measures hub spawn → proxy answering (median of 5 fresh named servers)', async () => {
    const times: number[] = [];
    for (let i = 1; i <= 5; i++) {
      times.push(await spawnAndReach(`p${i}`));
      await stopServer(`p${i}`);
    }
    spawnTimes.push(...times);
    console.log(`      fresh named servers: ${times.map((t) => t.toFixed(2)).join(', ')} s; median ${median(times).toFixed(2)} s`);
    assert.equal(times.length, 5);
  });
});
