/**
 * The multi-node harness itself: a real 3-node Swarm (separate dockerd processes in their own
 * namespaces) with a registry, node failures of two kinds, and a teardown that leaves nothing.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpGet, requireDocker, TEST_IMAGE, TEST_RUN_ID, TEST_RUN_LABEL, testLabels, uniqueName, waitFor } from '../helpers/docker.js';
import { startCluster, type Cluster, type ClusterNode } from './cluster.js';
import { childrenOf, commOf, isRunning, processRef, type ProcessRef } from './procs.js';
import type { PushedImage } from './push.js';
import { sharedCluster, sharedClusterStartMs } from './shared.js';
import { stateRoot } from './state.js';

const SERVICE_PORT = 8080;
/** busybox httpd serving the name of the node it runs on (Swarm fills in the hostname template). */
const SERVE_NODE_NAME = ['sh', '-c', 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8888 -h /tmp/www'];

function ms(n: number): string {
  return `${(n / 1000).toFixed(2)} s`;
}

function report(line: string): void {
  console.log(`      [cluster] ${line}`);
}

async function hostSwarmView(docker: Docker): Promise<{ nodeId: string; nodes: string[] }> {
  const info: any = await docker.info();
  const nodes = info?.Swarm?.ControlAvailable ? ((await docker.listNodes()) as any[]).map((n) => n.ID as string).sort() : [];
  return { nodeId: String(info?.Swarm?.NodeID ?? ''), nodes };
}

/** The node that runs the service's task Swarm wants running, if that task is running. */
async function runningOn(cluster: Cluster, service: string): Promise<ClusterNode | undefined> {
  const mgr = cluster.manager.docker;
  const tasks = (await mgr.listTasks({ filters: JSON.stringify({ service: [service], 'desired-state': ['running'] }) })) as any[];
  const task = tasks.find((t) => t?.Status?.State === 'running');
  if (!task) return undefined;
  const swarmNodes = (await mgr.listNodes()) as any[];
  const hostname = swarmNodes.find((n) => n.ID === task.NodeID)?.Description?.Hostname;
  return cluster.nodes.find((n) => n.hostname === hostname);
}

/**
 * The node of the service's running task, once the manager reports one. A task that already
 * answers HTTP can still be `starting` in the manager's view for a moment (its worker reports the
 * state after the container starts), so a test that begins right after a move waits for it.
 */
function taskNode(cluster: Cluster, service: string): Promise<ClusterNode> {
  return waitFor("the manager to report the service's task running", () => runningOn(cluster, service), 60000);
}

/** Containers of the service on every node whose dockerd runs (a node with a cut link still answers on its socket). */
async function containersOf(cluster: Cluster, service: string): Promise<{ node: string; id: string }[]> {
  const out: { node: string; id: string }[] = [];
  for (const n of cluster.nodes) {
    if (n.pid === undefined) continue;
    const cs = await n.docker.listContainers({ filters: JSON.stringify({ label: [`com.docker.swarm.service.name=${service}`] }) });
    for (const c of cs) out.push({ node: n.name, id: c.Id });
  }
  return out;
}

function signalIfAlive(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** `docker save | docker load` between two daemons. */
async function copyImage(from: Docker, to: Docker, image: string): Promise<void> {
  const saved = (await from.getImage(image).get()) as unknown as NodeJS.ReadableStream;
  const loading = (await to.loadImage(saved, { quiet: true })) as unknown as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => to.modem.followProgress(loading, (err: Error | null) => (err ? reject(err) : resolve())));
}

describe('multi-node Swarm harness', function () {
  this.timeout(120000);
  let machineDocker: Docker;
  let machineSwarm: { nodeId: string; nodes: string[] };
  let cluster: Cluster;
  let image: PushedImage;
  const service = uniqueName('nbsc-web');

  before(async function () {
    ({ docker: machineDocker } = await requireDocker({ image: TEST_IMAGE }));
    machineSwarm = await hostSwarmView(machineDocker);
    cluster = await sharedCluster();
    const t = cluster.timings;
    report(
      t
        ? `up in ${ms(sharedClusterStartMs() ?? t.totalMs)} (namespaces ${ms(t.namespacesMs)}, daemons + registry ${ms(t.daemonsMs)}, swarm ${ms(t.swarmMs)})`
        : `reusing cluster ${cluster.name}`,
    );
  });

  after(async function () {
    if (cluster && !cluster.isStopped)
      await cluster.manager.docker
        .getService(service)
        .remove()
        .catch(() => undefined);
  });

  it('has one manager and the other nodes as workers, all Ready, each with its own hostname and address', async () => {
    const swarmNodes = (await cluster.manager.docker.listNodes()) as any[];
    expect(swarmNodes).to.have.length(3);
    const byHost = new Map(swarmNodes.map((s) => [s.Description.Hostname as string, s]));
    expect([...byHost.keys()].sort()).to.deep.equal(cluster.nodes.map((n) => n.hostname).sort());
    for (const n of cluster.nodes) {
      const s = byHost.get(n.hostname);
      expect(s.Status.State, n.name).to.equal('ready');
      expect(s.Spec.Role, n.name).to.equal(n === cluster.manager ? 'manager' : 'worker');
      expect(s.Status.Addr, n.name).to.equal(n.ip);
      const info: any = await n.docker.info();
      expect(info.Name, `${n.name}'s own hostname`).to.equal(n.hostname);
      expect(info.Swarm.NodeAddr).to.equal(n.ip);
    }
    expect(new Set(cluster.nodes.map((n) => n.ip)).size).to.equal(3);
    // The shared folder is the same folder on every node (for shared-storage tests).
    const marker = join(cluster.sharedDir, `${TEST_RUN_ID}.txt`);
    writeFileSync(marker, TEST_RUN_ID);
    try {
      for (const n of cluster.nodes) expect((await cluster.nodeExec(n, 'cat', [marker])).stdout, n.name).to.equal(TEST_RUN_ID);
    } finally {
      rmSync(marker, { force: true });
    }
    expect(cluster.dockerHost).to.equal(`unix://${cluster.manager.socketPath}`);
    expect((await cluster.hub.exec('hostname', [])).stdout.trim()).to.equal(`${cluster.name}-hub`);
    await cluster.setNodeLabels(cluster.workers[0], { [TEST_RUN_LABEL]: TEST_RUN_ID });
    expect((await cluster.swarmNode(cluster.workers[0])).Spec.Labels[TEST_RUN_LABEL]).to.equal(TEST_RUN_ID);
  });

  it('pushes a machine-built image to the registry and names it by digest; no worker has it', async () => {
    const t0 = Date.now();
    // busybox httpd runs as PID 1 and ignores SIGTERM: the pushed image stops on SIGKILL instead.
    // The run label makes the digest new on every run, also on a cluster kept up between runs.
    image = await cluster.pushImage(TEST_IMAGE, { changes: ['STOPSIGNAL SIGKILL', `LABEL ${TEST_RUN_LABEL}=${TEST_RUN_ID}`] });
    report(`push of ${TEST_IMAGE} (docker save → load on the manager → push): ${ms(Date.now() - t0)}`);
    expect(image.reference).to.match(new RegExp(`^${cluster.registry.replace(/\./g, '\\.')}/local/busybox@sha256:[0-9a-f]{64}$`));
    const onManager: any = await cluster.manager.docker.getImage(image.reference).inspect();
    expect(onManager.Config.StopSignal).to.equal('SIGKILL');
    const original: any = await machineDocker.getImage(TEST_IMAGE).inspect();
    expect(onManager.RootFS.Layers, 'configuration changes add no layer').to.deep.equal(original.RootFS.Layers);
    for (const w of cluster.workers) {
      const err = await w.docker
        .getImage(image.reference)
        .inspect()
        .then(
          () => undefined,
          (e: any) => e,
        );
      expect(err?.statusCode, `${w.name} must not have the image before the test`).to.equal(404);
    }
  });

  it('runs the image as a service (dnsrr, mode=host port) on a worker that pulls it by digest; the port answers from the hub namespace', async () => {
    const t0 = Date.now();
    await cluster.manager.docker.createService({
      Name: service,
      Labels: testLabels(),
      TaskTemplate: {
        ContainerSpec: { Image: image.reference, Hostname: '{{.Node.Hostname}}', Command: SERVE_NODE_NAME },
        RestartPolicy: { Condition: 'any', Delay: 0 },
        Placement: { Constraints: ['node.role==worker'] },
      },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 8888, PublishedPort: SERVICE_PORT, PublishMode: 'host' }] },
    } as any);
    const node = await taskNode(cluster, service);
    expect(node.role).to.equal('worker');
    const answer = await cluster.hub.waitForHttp(`http://${node.ip}:${SERVICE_PORT}/`);
    report(`service running and answering on ${node.name}: ${ms(Date.now() - t0)}`);
    expect(answer.body.trim()).to.equal(node.hostname);
    // The same port through a loopback forward, for clients that need a plain TCP address.
    const fwd = await cluster.hub.forward(node.ip, SERVICE_PORT);
    try {
      expect((await httpGet(`http://127.0.0.1:${fwd.port}/`)).body.trim()).to.equal(node.hostname);
    } finally {
      await fwd.close();
    }

    const spec: any = (await cluster.manager.docker.getService(service).inspect()).Spec;
    expect(spec.TaskTemplate.ContainerSpec.Image, 'the spec names the image by digest only').to.equal(image.reference);
    expect(spec.EndpointSpec.Mode).to.equal('dnsrr');
    const pulled: any = await node.docker.getImage(image.reference).inspect();
    expect(pulled.RepoDigests).to.include(image.reference);
    const [task] = await node.docker.listContainers({ filters: JSON.stringify({ label: [`com.docker.swarm.service.name=${service}`] }) });
    const inspected: any = await node.docker.getContainer(task.Id).inspect();
    expect(inspected.Config.StopSignal, "the task stops with the image's stop signal").to.equal('SIGKILL');

    const rss = cluster.rss();
    report(
      `RSS: ${rss.nodes.map((n) => `${n.name} daemons ${(n.daemonsBytes / 2 ** 20).toFixed(0)} MB + ${n.containers} container(s) ${(n.containersBytes / 2 ** 20).toFixed(1)} MB`).join(', ')}; ` +
        `registry ${(rss.registryBytes / 2 ** 20).toFixed(0)} MB, hub agent ${(rss.hubBytes / 2 ** 20).toFixed(0)} MB; total ${(rss.totalBytes / 2 ** 20).toFixed(0)} MB`,
    );
  });

  it("moves the task to the other worker when a worker's dockerd is killed (-9); the restarted node is Ready again", async () => {
    const victim = await taskNode(cluster, service);
    const other = cluster.workers.find((w) => w !== victim)!;
    const t0 = Date.now();
    await cluster.killNode(victim);
    expect(victim.pid).to.equal(undefined);
    await cluster.waitForNodeState(victim, 'down', 60000);
    const down = Date.now() - t0;
    await cluster.hub.waitForHttp(`http://${other.ip}:${SERVICE_PORT}/`, { timeoutMs: 60000, accept: (b) => b.trim() === other.hostname });
    report(`kill -9 of ${victim.name}'s dockerd: node Down after ${ms(down)}, task answering on ${other.name} after ${ms(Date.now() - t0)}`);
    expect((await taskNode(cluster, service)).name).to.equal(other.name);
    // dockerd died, its containers did not: the old task still serves (split brain) until the node is back.
    expect((await cluster.hub.httpGet(`http://${victim.ip}:${SERVICE_PORT}/`)).body.trim()).to.equal(victim.hostname);

    const t1 = Date.now();
    await cluster.restartNode(victim);
    report(`restart of ${victim.name}: Ready after ${ms(Date.now() - t1)}`);
    expect((await cluster.swarmNode(victim)).Status.State).to.equal('ready');
    const left = await waitFor('the stale task on the restarted node to be removed', async () => {
      const cs = await containersOf(cluster, service);
      return cs.length === 1 ? cs : undefined;
    });
    expect(left[0].node).to.equal(other.name);
  });

  it("starts a worker's dockerd again when it gives up on a containerd that does not answer within its 15 s (as systemd would)", async () => {
    const victim = cluster.workers[cluster.workers.length - 1];
    const node = cluster.state.nodes[victim.index];
    await cluster.killNode(victim);
    const logStart = readFileSync(join(node.dir, 'dockerd.log')).length;
    // Stop the first containerd the new dockerd starts, before it can answer, for 20 s.
    const stopped: number[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching && stopped.length === 0) {
        const dockerd = node.dockerd?.pid;
        const containerd = dockerd === undefined ? undefined : childrenOf(dockerd).find((pid) => commOf(pid) === 'containerd');
        if (containerd !== undefined) {
          process.kill(containerd, 'SIGSTOP');
          stopped.push(containerd);
          setTimeout(() => signalIfAlive(containerd, 'SIGCONT'), 20_000).unref();
        } else await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const t0 = Date.now();
    try {
      await cluster.restartNode(victim);
    } finally {
      watching = false;
      await watcher;
      for (const pid of stopped) signalIfAlive(pid, 'SIGCONT');
    }
    const took = Date.now() - t0;
    report(`restart of ${victim.name} whose first containerd was stopped: Ready after ${ms(took)}`);
    expect(stopped, 'the first containerd was caught and stopped').to.have.length(1);
    const log = readFileSync(join(node.dir, 'dockerd.log')).subarray(logStart).toString('utf8');
    expect(log, 'the first dockerd gave up on its containerd').to.include('timeout waiting for containerd to start');
    expect(took).to.be.greaterThan(15_000);
    expect((await cluster.swarmNode(victim)).Status.State).to.equal('ready');
  });

  it("moves the task when a worker's link is cut; the node is Ready again once the link is restored", async () => {
    const victim = await taskNode(cluster, service);
    const other = cluster.workers.find((w) => w !== victim)!;
    const t0 = Date.now();
    await cluster.cutLink(victim);
    expect(await cluster.linkUp(victim)).to.equal(false);
    await cluster.waitForNodeState(victim, 'down', 60000);
    const down = Date.now() - t0;
    await cluster.hub.waitForHttp(`http://${other.ip}:${SERVICE_PORT}/`, { timeoutMs: 60000, accept: (b) => b.trim() === other.hostname });
    report(`link of ${victim.name} cut: node Down after ${ms(down)}, task answering on ${other.name} after ${ms(Date.now() - t0)}`);
    const unreachable = await cluster.hub.httpGet(`http://${victim.ip}:${SERVICE_PORT}/`, 1000).then(
      () => false,
      () => true,
    );
    expect(unreachable, `${victim.ip} must be unreachable while its link is cut`).to.equal(true);
    // Its dockerd still runs and still runs the old task: the other half of the split.
    expect((await containersOf(cluster, service)).map((c) => c.node).sort()).to.deep.equal([victim.name, other.name].sort());

    const t1 = Date.now();
    await cluster.restoreLink(victim);
    await cluster.waitForNodeState(victim, 'ready', 60000);
    report(`link of ${victim.name} restored: Ready after ${ms(Date.now() - t1)}`);
    const left = await waitFor('the stale task on the reconnected node to be removed', async () => {
      const cs = await containersOf(cluster, service);
      return cs.length === 1 ? cs : undefined;
    });
    expect(left[0].node).to.equal(other.name);
  });

  it('drains a node: its task moves to the other worker; activate makes the node schedulable again', async () => {
    const drained = await taskNode(cluster, service);
    const other = cluster.workers.find((w) => w !== drained)!;
    const t0 = Date.now();
    await cluster.drain(drained);
    try {
      expect((await cluster.swarmNode(drained)).Spec.Availability).to.equal('drain');
      await cluster.hub.waitForHttp(`http://${other.ip}:${SERVICE_PORT}/`, { timeoutMs: 60000, accept: (b) => b.trim() === other.hostname });
      report(`drain of ${drained.name}: task answering on ${other.name} after ${ms(Date.now() - t0)}`);
      await waitFor(`no task container left on the drained ${drained.name}`, async () =>
        (await containersOf(cluster, service)).every((c) => c.node !== drained.name),
      );
    } finally {
      await cluster.activate(drained);
    }
    expect((await cluster.swarmNode(drained)).Spec.Availability).to.equal('active');
  });

  it('powers a worker off (every process of it killed) and back on: the task moves, nothing of the old one survives', async () => {
    const victim = await taskNode(cluster, service);
    const other = cluster.workers.find((w) => w !== victim)!;
    const t0 = Date.now();
    await cluster.powerOffNode(victim);
    const unreachable = await cluster.hub.httpGet(`http://${victim.ip}:${SERVICE_PORT}/`, 1000).then(
      () => false,
      () => true,
    );
    expect(unreachable, 'a powered-off node serves nothing').to.equal(true);
    await cluster.hub.waitForHttp(`http://${other.ip}:${SERVICE_PORT}/`, { timeoutMs: 60000, accept: (b) => b.trim() === other.hostname });
    report(`power-off of ${victim.name}: task answering on ${other.name} after ${ms(Date.now() - t0)}`);
    const t1 = Date.now();
    await cluster.restartNode(victim);
    report(`power-on of ${victim.name}: Ready after ${ms(Date.now() - t1)}`);
    expect((await cluster.nodeExec(victim, 'hostname', [])).stdout.trim()).to.equal(victim.hostname);
    expect((await containersOf(cluster, service)).map((c) => c.node)).to.deep.equal([other.name]);
  });

  it("never touches the machine's dockerd or its Swarm", async () => {
    expect(await hostSwarmView(machineDocker)).to.deep.equal(machineSwarm);
    const machineNames = ((await machineDocker.listNodes().catch(() => [])) as any[]).map((n) => n.Description?.Hostname);
    for (const n of cluster.nodes) expect(machineNames).to.not.include(n.hostname);
  });
});

describe('multi-node Swarm harness: stop()', function () {
  this.timeout(120000);

  it('removes every process, namespace (with its bridge and veths), mount, cgroup and folder, also after a node was killed', async () => {
    const { docker: machineDocker } = await requireDocker({ image: TEST_IMAGE });
    const machineSwarm = await hostSwarmView(machineDocker);
    const c = await startCluster({ name: `s${process.pid}`, nodes: 2, heartbeatSeconds: 1 });
    let stopped = false;
    try {
      // A running container on the worker, orphaned by a kill -9 of its dockerd (its shim lives on).
      const worker = c.workers[0];
      await copyImage(machineDocker, worker.docker, TEST_IMAGE);
      const ctr = await worker.docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sleep', '600'], Labels: testLabels() });
      await ctr.start();
      const containerPid: number = ((await ctr.inspect()) as any).State.Pid;
      await c.killNode(worker);
      // A process a test started in the hub namespace, and a cut link.
      const hubChild = c.hub.spawn('sleep', ['600'], { stdio: 'ignore' });
      await c.cutLink(c.manager);

      const st = c.state;
      const fabricLinks = execFileSync('ip', ['-n', st.fabric.netns, '-o', 'link'], { encoding: 'utf8' });
      for (const l of [st.fabric.bridge, st.hub.link, ...st.nodes.map((n) => n.link)]) expect(fabricLinks).to.include(`${l}`);
      const recorded: ProcessRef[] = [
        st.fabric.anchor,
        st.hub.anchor,
        st.hub.agent,
        st.registry.process,
        ...st.nodes.flatMap((n) => [n.anchor, n.dockerd]),
      ].filter((r): r is ProcessRef => !!r);
      const orphan = processRef(containerPid);
      expect(isRunning(orphan), 'the container outlives its killed dockerd').to.equal(true);
      const namespaces = [st.fabric.netns, st.hub.netns, ...st.nodes.map((n) => n.netns)];
      const cgroupDirs = st.nodes.flatMap((n) => n.cgroupDirs);
      expect(cgroupDirs.length).to.be.greaterThan(0);

      const r = await c.stop();
      stopped = true;
      report(`stop of a 2-node cluster with an orphaned container: ${ms(r.ms)} (${r.killedProcesses} processes)`);

      expect(c.leftovers()).to.deep.equal([]);
      for (const p of [...recorded, orphan!]) expect(isRunning(p), `process ${p.pid}`).to.equal(false);
      expect(hubChild.pid !== undefined && isRunning(processRef(hubChild.pid))).to.equal(false);
      const netnsLeft = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
      for (const ns of namespaces) expect(netnsLeft, 'network namespaces').to.not.include(ns);
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      expect(mounts).to.not.include(st.dir);
      for (const d of cgroupDirs) expect(existsSync(d), d).to.equal(false);
      expect(existsSync(st.dir)).to.equal(false);
      // The bridge and veths lived only in the cluster's namespaces; none ever reached the machine's.
      const hostLinks = readdirSync('/sys/class/net');
      for (const l of [st.fabric.bridge, st.hub.link, ...st.nodes.map((n) => n.link)]) expect(hostLinks).to.not.include(l);
      expect(await hostSwarmView(machineDocker)).to.deep.equal(machineSwarm);
    } finally {
      if (!stopped) await c.stop().catch(() => undefined);
    }
  });

  it('a cluster left behind by a killed run is removed by the next start, and nothing else is', async () => {
    const shared = await sharedCluster();
    // A separate process starts a cluster and is killed: its cluster is stale from then on.
    const script = `import('${new URL('./cluster.js', import.meta.url).href}').then(async (m) => { await m.startCluster({ name: 'k${process.pid}', nodes: 1 }); process.kill(process.pid, 'SIGKILL'); })`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 });
    expect(child.signal, child.stderr).to.equal('SIGKILL');
    const staleDir = join(stateRoot(), `k${process.pid}`);
    expect(existsSync(staleDir), 'the killed run left its cluster behind').to.equal(true);
    const staleState = JSON.parse(readFileSync(`${staleDir}/state.json`, 'utf8'));

    const next = await startCluster({ name: `n${process.pid}`, nodes: 1 });
    try {
      expect(existsSync(staleDir), 'the stale cluster was removed').to.equal(false);
      const netnsLeft = readdirSync('/run/netns');
      expect(netnsLeft.filter((n) => n.startsWith(`nbsc-k${process.pid}-`))).to.deep.equal([]);
      expect(isRunning(staleState.nodes[0].dockerd)).to.equal(false);
      // The shared cluster (alive, owned by this process) was left alone.
      expect(shared.manager.pid).to.be.a('number');
      expect((await shared.swarmNode(shared.manager)).Status.State).to.equal('ready');
    } finally {
      await next.stop();
    }
  });
});
