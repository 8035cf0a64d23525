/**
 * Two real JupyterHubs (Debian's 3.0, configurable-http-proxy, the spawner from hub/) on the
 * multi-node test cluster, one for each way a hub keeps reaching servers that Swarm moves:
 *
 * - "hostUrl": hub and proxy run in the cluster's hub namespace and route to each server's
 *   published port on its node (status.endpoint.hostUrl); when a server moves, the spawner's poll
 *   sees the new endpoint and re-points the route (hub/nbswarm_spawner/moves.py).
 * - "overlay": hub and proxy run in one container, a Swarm service on the servers' overlay network
 *   (SwarmSpawner's set-up), and route to the service name (status.endpoint.url): Swarm's DNS
 *   follows the task, nothing in the hub changes.
 *
 * The overlay hub's container is the servers' busybox image with this machine's /usr bound in
 * read-only (Debian's jupyterhub, python3-kubernetes, configurable-http-proxy and Node): nothing
 * hundreds of megabytes large travels into the cluster for it. (A real deployment builds a hub
 * image with `pip install ./hub kubernetes`.)
 * Servers are busybox httpd (mode custom) serving the name of their node under the hub's prefix,
 * so a request through the proxy says which task answered.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from '../../src/paths.js';
import type { Cluster } from '../cluster/cluster.js';
import type { HttpResult } from '../cluster/tunnel.js';
import { waitFor } from '../helpers/docker.js';
import { HubProcess, type Stack } from './multinode-stack.js';

const PYTHON = '/usr/bin/python3';

export interface HubOptions {
  /** NotebookServer namespace the spawner writes to. */
  namespace: string;
  /** Image of the servers (busybox with sh and httpd). */
  image: string;
  /** The users the hub knows. */
  users: string[];
}

/** The jupyterhub_config.py both hubs share; `where` says what differs. */
function hubConfig(
  o: HubOptions & {
    endpoint: 'hostUrl' | 'url';
    kubeconfig: string;
    token: string;
    ip: string;
    port: number;
    apiPort: number;
    dataDir: string;
    proxyApiUrl?: string;
  },
): string {
  return `
from nbswarm_spawner import NotebookServerSpawner

class MultiNodeSpawner(NotebookServerSpawner):
    # busybox httpd serving the node it runs on under the hub's prefix (Swarm fills {{.Node.Hostname}}).
    def build_spec(self):
        spec = super().build_spec()
        spec.update(image=${JSON.stringify(o.image)}, mode='custom', command=['sh', '-c',
            'mkdir -p /tmp/w$JUPYTERHUB_SERVICE_PREFIX && echo "$NODE" > /tmp/w$\{JUPYTERHUB_SERVICE_PREFIX}node && exec httpd -f -p {port} -h /tmp/w'])
        spec['env'] = spec.get('env', []) + [{'name': 'NODE', 'value': '{{.Node.Hostname}}'}]
        return spec

c = get_config()  # noqa
c.JupyterHub.ip = ${JSON.stringify(o.ip)}
c.JupyterHub.port = ${o.port}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = ${o.apiPort}
c.JupyterHub.cleanup_servers = False
c.JupyterHub.db_url = 'sqlite:///${o.dataDir}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '${o.dataDir}/cookie_secret'
c.JupyterHub.pid_file = '${o.dataDir}/jupyterhub.pid'
c.ConfigurableHTTPProxy.pid_file = '${o.dataDir}/proxy.pid'
${o.proxyApiUrl ? `c.ConfigurableHTTPProxy.should_start = False\nc.ConfigurableHTTPProxy.api_url = ${JSON.stringify(o.proxyApiUrl)}` : ''}
# POST /users/NAME/server answers 202 at once; the test waits for the route itself.
c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allowed_users = set(${JSON.stringify(o.users)})
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{'name': 'test', 'api_token': ${JSON.stringify(o.token)}}]
c.JupyterHub.load_roles = [{'name': 'admin', 'services': ['test']}]
c.JupyterHub.spawner_class = MultiNodeSpawner
c.NotebookServerSpawner.kubeconfig = ${JSON.stringify(o.kubeconfig)}
c.NotebookServerSpawner.namespace = ${JSON.stringify(o.namespace)}
c.NotebookServerSpawner.image = ${JSON.stringify(o.image)}
c.NotebookServerSpawner.allowed_images = [${JSON.stringify(o.image)}]
c.NotebookServerSpawner.endpoint = ${JSON.stringify(o.endpoint)}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 30
# How soon a moved server's new endpoint is routed (the spawner's poll follows it).
c.Spawner.poll_interval = 1
`;
}

export abstract class Hub {
  readonly token = randomBytes(16).toString('hex');
  /** http://HOST:PORT of the proxy's public side, as reached from the hub namespace. */
  abstract readonly base: string;

  constructor(
    protected readonly cluster: Cluster,
    protected readonly stack: Stack,
    readonly opts: HubOptions,
  ) {}

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
  abstract logs(): Promise<string>;

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const r = await this.cluster.hub.request(`${this.base}/hub/api${path}`, {
      method,
      headers: { Authorization: `token ${this.token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: 30_000,
    });
    let json: any;
    try {
      json = r.body ? JSON.parse(r.body) : undefined;
    } catch {
      json = r.body;
    }
    return { status: r.status, json };
  }

  /** A request through the proxy to a user's server. */
  viaProxy(path: string): Promise<HttpResult> {
    return this.cluster.hub.request(`${this.base}${path}`, { timeoutMs: 3000 });
  }

  /** The node that answers /user/USER[/NAME]/node through the proxy now, if any. */
  async answeringNode(user: string, name = ''): Promise<string | undefined> {
    const r = await this.viaProxy(`/user/${user}/${name ? `${name}/` : ''}node`).catch(() => undefined);
    return r && r.status === 200 ? r.body.trim() : undefined;
  }

  /** Spawn through the hub's REST API and wait until the proxy reaches the server. Returns its node. */
  async spawn(user: string, name = ''): Promise<string> {
    const res = await this.api('POST', name ? `/users/${user}/servers/${name}` : `/users/${user}/server`, {});
    if (![201, 202].includes(res.status)) throw new Error(`spawn ${user}/${name}: HTTP ${res.status} ${JSON.stringify(res.json)}\n${await this.logs()}`);
    return waitFor(`${user}/${name} through the proxy at ${this.base}`, () => this.answeringNode(user, name), 60_000, 100).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await this.logs()}`);
    });
  }

  /** Stop a user's server through the hub's REST API and wait until the hub has it stopped. */
  async stopServer(user: string): Promise<void> {
    const res = await this.api('DELETE', `/users/${user}/server`);
    if (![202, 204].includes(res.status)) throw new Error(`stop ${user}: HTTP ${res.status} ${JSON.stringify(res.json)}\n${await this.logs()}`);
    await waitFor(
      `${user}'s server stopped in the hub at ${this.base}`,
      async () => {
        const r = await this.api('GET', `/users/${user}`);
        return r.status === 200 && !r.json?.servers?.[''];
      },
      60_000,
      200,
    );
  }

  protected async waitApi(): Promise<void> {
    await waitFor(`the hub API at ${this.base}`, async () => (await this.api('GET', '/').catch(() => undefined))?.status === 200, 60_000, 200).catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await this.logs()}`);
      },
    );
  }
}

/** Hub and proxy as processes in the cluster's hub namespace, routing to hostUrl. */
export class NamespaceHub extends Hub {
  readonly base: string;
  private hub?: HubProcess;
  private proxy?: HubProcess;
  private readonly dir: string;

  constructor(cluster: Cluster, stack: Stack, opts: HubOptions) {
    super(cluster, stack, opts);
    this.base = `http://${cluster.hub.ip}:18000`;
    this.dir = join(stack.dir, 'hub-ns');
  }

  async start(): Promise<void> {
    for (const bin of ['/usr/bin/jupyterhub', '/usr/bin/configurable-http-proxy']) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install jupyterhub node-configurable-http-proxy`);
    }
    mkdirSync(this.dir, { recursive: true });
    const proxyToken = randomBytes(16).toString('hex');
    const cfg = join(this.dir, 'jupyterhub_config.py');
    writeFileSync(
      cfg,
      hubConfig({
        ...this.opts,
        endpoint: 'hostUrl',
        kubeconfig: this.stack.hubKubeconfig,
        token: this.token,
        ip: this.cluster.hub.ip,
        port: 18000,
        apiPort: 18081,
        dataDir: this.dir,
        proxyApiUrl: 'http://127.0.0.1:18001',
      }),
    );
    // The proxy runs on its own, as in production, and uses the machine's Node with Debian's modules.
    this.proxy = new HubProcess(
      this.cluster.hub.spawn(
        'configurable-http-proxy',
        [
          '--ip',
          this.cluster.hub.ip,
          '--port',
          '18000',
          '--api-ip',
          '127.0.0.1',
          '--api-port',
          '18001',
          '--default-target',
          'http://127.0.0.1:18081',
          '--error-target',
          'http://127.0.0.1:18081/hub/error',
        ],
        { env: { ...process.env, NODE_PATH: '/usr/share/nodejs:/usr/lib/nodejs', CONFIGPROXY_AUTH_TOKEN: proxyToken }, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      join(this.dir, 'proxy.log'),
    );
    this.hub = new HubProcess(
      this.cluster.hub.spawn(PYTHON, ['-m', 'jupyterhub', '-f', cfg], {
        env: { ...process.env, PYTHONPATH: repoPath('hub'), CONFIGPROXY_AUTH_TOKEN: proxyToken },
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: this.dir,
      }),
      join(this.dir, 'hub.log'),
    );
    await this.waitApi();
  }

  async logs(): Promise<string> {
    return [this.hub?.tail(30), this.proxy?.tail(10)].filter(Boolean).join('\n');
  }

  async stop(): Promise<void> {
    await this.hub?.stop();
    await this.proxy?.stop();
  }
}

/** Hub and proxy in one container: a Swarm service on the servers' overlay network, routing to service names. */
export class OverlayHub extends Hub {
  readonly base: string;
  private serviceId?: string;
  private readonly dir: string;
  readonly serviceName = `nbswarm-test-hub-${randomBytes(3).toString('hex')}`;

  constructor(
    cluster: Cluster,
    stack: Stack,
    opts: HubOptions & {
      /** Overlay network the servers are on (the operator policy's `network`). */
      network: string;
      /** A busybox image on the manager (by digest): its shell and this machine's /usr run the hub. */
      baseImage: string;
    },
  ) {
    super(cluster, stack, opts);
    this.base = `http://${cluster.manager.ip}:18000`;
    this.dir = join(stack.dir, 'hub-overlay');
  }

  async start(): Promise<void> {
    const o = this.opts as HubOptions & { network: string; baseImage: string };
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    writeFileSync(
      join(this.dir, 'jupyterhub_config.py'),
      hubConfig({
        ...o,
        endpoint: 'url',
        kubeconfig: '/srv/hub-etc/kubeconfig',
        token: this.token,
        ip: '0.0.0.0',
        port: 18000,
        apiPort: 18081,
        dataDir: '/tmp',
      }),
    );
    writeFileSync(join(this.dir, 'kubeconfig'), readFileSync(this.stack.hubKubeconfig, 'utf8'), { mode: 0o644 });
    const bind = (source: string, target: string) => ({ Type: 'bind', Source: source, Target: target, ReadOnly: true });
    const spec = {
      Name: this.serviceName,
      TaskTemplate: {
        ContainerSpec: {
          Image: o.baseImage,
          User: '0',
          Command: [PYTHON, '-m', 'jupyterhub', '-f', '/srv/hub-etc/jupyterhub_config.py'],
          Dir: '/tmp',
          Env: [
            'PATH=/usr/bin:/bin',
            'HOME=/tmp',
            'PYTHONPATH=/srv/hub-spawner',
            'NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs',
            `CONFIGPROXY_AUTH_TOKEN=${randomBytes(16).toString('hex')}`,
          ],
          // Debian merges /lib into /usr/lib: the loader and libraries are found under both names.
          Mounts: [
            bind('/usr', '/usr'),
            bind('/usr/lib', '/lib'),
            bind('/usr/lib64', '/lib64'),
            bind(repoPath('hub'), '/srv/hub-spawner'),
            bind(this.dir, '/srv/hub-etc'),
          ],
        },
        RestartPolicy: { Condition: 'none' },
        // The hub sits beside the Swarm manager, on the node the failure tests never break.
        Placement: { Constraints: ['node.role==manager'] },
        Networks: [{ Target: o.network }],
      },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 18000, PublishedPort: 18000, PublishMode: 'host' }] },
    };
    const created: any = await this.cluster.manager.docker.createService(spec as any);
    this.serviceId = created.id ?? created.ID;
    await this.waitApi();
  }

  async logs(): Promise<string> {
    if (!this.serviceId) return '(overlay hub not created)';
    try {
      const buf: any = await this.cluster.manager.docker.getService(this.serviceId).logs({ stdout: true, stderr: true, tail: 30 } as any);
      const tasks = (await this.cluster.manager.docker.listTasks({ filters: JSON.stringify({ service: [this.serviceId] }) } as object)) as any[];
      return `--- overlay hub tasks: ${tasks.map((t) => `${t.Status?.State} ${t.Status?.Err ?? ''}`).join(', ')}\n--- overlay hub log:\n${demux(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)))}`;
    } catch (err) {
      return `(overlay hub logs unavailable: ${(err as Error).message})`;
    }
  }

  async stop(): Promise<void> {
    if (this.serviceId)
      await this.cluster.manager.docker
        .getService(this.serviceId)
        .remove()
        .catch(() => undefined);
  }
}

function demux(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2)) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return i === 0 ? buf.toString('utf8') : out;
}
