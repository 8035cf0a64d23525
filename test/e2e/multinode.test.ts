/**
 * nbswarm on a real 3-node Swarm (test/cluster): the API server and two operators run beside the
 * manager in the cluster's hub namespace, one operator with node-local home volumes (servers are
 * pinned to the node holding them), one with a home on storage every node sees (servers move).
 * The tests share the cluster and run in order, each leaving the next what it needs: the spread
 * servers of the first are the ones the node failures later move or hold.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LABELS } from '../../src/api/names.js';
import type { NotebookServer } from '../../src/api/types.js';
import type { Policy } from '../../src/config/types.js';
import type { Cluster, ClusterNode } from '../cluster/cluster.js';
import type { PushedImage } from '../cluster/push.js';
import { sharedCluster } from '../cluster/shared.js';
import { requireDocker, TEST_IMAGE, TEST_RUN_ID, TEST_RUN_LABEL, waitFor } from '../helpers/docker.js';
import { dockerExec } from '../integration/operator-harness.js';
import { type Hub, NamespaceHub, OverlayHub } from './multinode-hubs.js';
import { Stack, type OperatorProcess } from './multinode-stack.js';

const RUN = TEST_RUN_ID.replace(/[^a-z0-9]/g, '').slice(-6);
const NS_PINNED = 'mn-local';
const NS_SHARED = 'mn-shared';
const BURST = 30;
/** busybox httpd serving the name of its node (Swarm fills {{.Node.Hostname}}) at /node. */
const SERVE_NODE = ['sh', '-c', 'mkdir -p /tmp/w && echo "$NODE" > /tmp/w/node && exec httpd -f -p {port} -h /tmp/w'];
const NODE_ENV = [{ name: 'NODE', value: '{{.Node.Hostname}}' }];

function report(line: string): void {
  console.log(`      [multinode] ${line}`);
}
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const readyCond = (o: NotebookServer) => o.status?.conditions?.find((c) => c.type === 'Ready');
const isReady = (o: NotebookServer) => readyCond(o)?.status === 'True' && o.status?.observedGeneration === o.metadata.generation;

describe('multi-node: nbswarm on a 3-node Swarm', function () {
  this.timeout(240_000);
  let cluster: Cluster;
  let stack: Stack;
  let pinned: OperatorProcess;
  let shared: OperatorProcess;
  let busybox: PushedImage;
  let network = '';
  let sharedHome = '';
  let nsHub: NamespaceHub | undefined;
  let overlayHub: OverlayHub | undefined;
  let builderReady: Promise<void>;
  const work = mkdtempSync(join(tmpdir(), 'nbswarm-mn-test-'));
  const tag = (what: string) => `${cluster.registry}/local/busybox:${what}-${RUN}`;
  const node = (i: number): ClusterNode => cluster.nodes[i]!;

  /** Every NotebookServer of a namespace, once `pred` holds for all of `names`. */
  async function until(
    ns: string,
    names: string[],
    what: string,
    pred: (o: NotebookServer) => boolean,
    timeoutMs = 90_000,
  ): Promise<Map<string, NotebookServer>> {
    const t0 = Date.now();
    return waitFor(
      `${what} (${names.length} in ${ns})`,
      async () => {
        const all = new Map((await stack.list(ns)).map((o) => [o.metadata.name!, o]));
        const bad = names.filter((n) => !all.get(n) || !pred(all.get(n)!));
        if (bad.length && Date.now() - t0 > timeoutMs - 300) {
          throw new Error(
            `not yet: ${bad
              .slice(0, 5)
              .map((n) => `${n}: ${all.get(n)?.status?.phase} ${all.get(n)?.status?.message}`)
              .join('; ')}\n${stack.tails()}`,
          );
        }
        return bad.length ? undefined : all;
      },
      timeoutMs,
      100,
    );
  }

  /** The node answering at the server's status.endpoint.hostUrl, from the hub namespace. */
  async function answeringNode(o: NotebookServer): Promise<string | undefined> {
    const url = o.status?.endpoint?.hostUrl;
    if (!url) return undefined;
    const r = await cluster.hub.httpGet(`${url}/node`, 2000).catch(() => undefined);
    return r?.status === 200 ? r.body.trim() : undefined;
  }

  /** Swarm services of a server (exactly one unless something duplicated it). */
  async function servicesOf(o: NotebookServer): Promise<any[]> {
    return (await cluster.manager.docker.listServices({ filters: JSON.stringify({ label: [`${LABELS.uid}=${o.metadata.uid}`] }) } as any)) as unknown as any[];
  }

  /** The running container of a server's task, and the cluster node it is on. */
  async function containerOf(o: NotebookServer): Promise<{ node: ClusterNode; id: string }> {
    const [svc] = await servicesOf(o);
    const tasks = (await cluster.manager.docker.listTasks({ filters: JSON.stringify({ service: [svc.ID], 'desired-state': ['running'] }) } as object)) as any[];
    const task = tasks.find((t) => t.Status?.State === 'running');
    if (!task) throw new Error(`${o.metadata.name} has no running task`);
    const swarmNode = (await cluster.manager.docker.getNode(task.NodeID).inspect()) as any;
    const n = cluster.nodes.find((x) => x.hostname === swarmNode.Description.Hostname)!;
    return { node: n, id: task.Status.ContainerStatus.ContainerID };
  }

  /** Running containers of our servers on a node, by service ID. */
  async function runningOn(n: ClusterNode): Promise<string[]> {
    const cs = await n.docker.listContainers({ filters: JSON.stringify({ label: [`${LABELS.managedBy}=nbswarm`] }) });
    return cs.map((c) => c.Labels['com.docker.swarm.service.id']!).filter(Boolean);
  }

  async function settledStats(op: OperatorProcess, servers: number) {
    return waitFor(
      `operator ${op.spec.name} to look at its ${servers} servers once`,
      async () => {
        const s = await op.stats();
        return s.reconciler.reconciles >= servers && s.queue.depth === 0 && (s.queue as any).inFlight === 0 ? s : undefined;
      },
      60_000,
      200,
    );
  }

  before(async function () {
    this.timeout(180_000);
    await requireDocker({ image: TEST_IMAGE });
    cluster = await sharedCluster();
    const reg = cluster.registry;
    const subnet = `${cluster.state.subnet}.0/24`;
    network = `nbs-mn-${RUN}`;
    sharedHome = join(cluster.sharedDir, `home-${RUN}`);
    stack = new Stack(cluster);
    const [bb] = await Promise.all([
      // busybox httpd ignores SIGTERM: every stop would wait 10 s without the image's stop signal.
      cluster.pushImage(TEST_IMAGE, { changes: ['STOPSIGNAL SIGKILL', `LABEL ${TEST_RUN_LABEL}=${TEST_RUN_ID}`] }),
      stack.start(),
      cluster.manager.docker.createNetwork({ Name: network, Driver: 'overlay', Attachable: true, Labels: { [TEST_RUN_LABEL]: TEST_RUN_ID } }),
    ]);
    busybox = bb;
    // Tags the placement rules below match; the same image, so these pushes send no layer.
    await Promise.all(
      ['hub', 'on3'].map((t) =>
        cluster.pushImage(TEST_IMAGE, { changes: ['STOPSIGNAL SIGKILL', `LABEL ${TEST_RUN_LABEL}=${TEST_RUN_ID}`], tag: `${t}-${RUN}` }),
      ),
    );
    // Only the dashboard test runs the builder: its image is built and pushed meanwhile.
    const builder = builderImageName(cluster);
    builderReady = buildBuilderImage(cluster, busybox, work, builder);
    builderReady.catch(() => undefined);
    // Labels of a cluster kept between runs (NBSWARM_CLUSTER) are reset: only node 3 takes the hub's image at first.
    for (const [i, v] of [
      [0, 'false'],
      [1, 'false'],
      [2, 'true'],
    ] as const)
      await cluster.setNodeLabels(node(i), { 'nbswarm-test-hub': v, 'nbswarm-test-gpu': 'false' });
    const common: Partial<Policy> = {
      allowedImages: [`${reg}/**`, 'local/*'],
      defaultImage: busybox.tagged,
      defaultMode: 'custom',
      registry: { address: reg, pushLocalImages: false },
      probeNetworks: ['127.0.0.0/8', subnet],
      resources: { defaults: { cpu: '0.1', memory: '32Mi' }, limits: { cpu: '1', memory: '256Mi' }, requests: { memory: '8Mi' } },
      placementRules: [
        { images: [`${reg}/local/busybox:hub-*`], constraints: ['node.labels.nbswarm-test-hub==true'] },
        { images: [`${reg}/local/busybox:gpu-*`], constraints: ['node.labels.nbswarm-test-gpu==true'] },
        // Rules match the image a server asks for (for a dashboard built from a source server, spec.image).
        { images: [`${reg}/local/busybox:on3-*`], constraints: [`node.hostname==${node(2).hostname}`] },
      ],
      // The dashboard test builds user dashu's dashboard from another user's server (on another node than dashu's home).
      sourceImages: { repository: `mn-built-${RUN}`, builderImage: builder, allowOtherUsers: true },
      resyncSeconds: 600,
    };
    mkdirSync(sharedHome, { recursive: true });
    [pinned, shared] = await Promise.all([
      stack.operator({ name: 'local', namespace: NS_PINNED, policy: { ...common, prefix: `ml${RUN}`, registry: { address: reg, pushLocalImages: true } } }),
      stack.operator({
        name: 'shared',
        namespace: NS_SHARED,
        policy: { ...common, prefix: `ms${RUN}`, network, volumes: [{ name: `${sharedHome}/{username}`, target: '/home/jovyan', type: 'bind', shared: true }] },
      }),
    ]);
  });

  after(async function () {
    this.timeout(120_000);
    await overlayHub?.stop().catch(() => undefined);
    await nsHub?.stop().catch(() => undefined);
    if (!cluster || cluster.isStopped) return;
    await stack?.stop().catch(() => undefined);
    const mgr = cluster.manager.docker;
    const ours = ((await mgr.listServices().catch(() => [])) as any[]).filter((s) => /^(ml|ms)/.test(s.Spec?.Name ?? '') && String(s.Spec?.Name).includes(RUN));
    await Promise.all(
      ours.map((s) =>
        mgr
          .getService(s.ID)
          .remove()
          .catch(() => undefined),
      ),
    );
    await mgr
      .getNetwork(network)
      .remove()
      .catch(() => undefined);
    for (const n of cluster.nodes) await cluster.activate(n).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
    rmSync(sharedHome, { recursive: true, force: true });
  });

  const burstA: string[] = [];
  const burstB: string[] = [];

  it(`spreads ${BURST} servers created at once over the 3 nodes (at least 5 each), all Ready and answering from the hub namespace`, async () => {
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: BURST }, (_, i) => {
        const ns = i % 2 ? NS_SHARED : NS_PINNED;
        const user = `u${String(i).padStart(2, '0')}`;
        (i % 2 ? burstB : burstA).push(user);
        if (i % 2) mkdirSync(join(sharedHome, user), { recursive: true });
        return stack.create(ns, user, { user, mode: 'custom', command: SERVE_NODE, env: NODE_ENV });
      }),
    );
    const a = await until(NS_PINNED, burstA, 'Ready', isReady);
    const b = await until(NS_SHARED, burstB, 'Ready', isReady);
    report(`${BURST} servers created at once: all Ready after ${secs(Date.now() - t0)}`);
    const all = [...a.values(), ...b.values()].filter((o) => burstA.includes(o.metadata.name!) || burstB.includes(o.metadata.name!));
    const perNode = new Map<string, number>();
    for (const o of all) perNode.set(o.status!.node!, (perNode.get(o.status!.node!) ?? 0) + 1);
    report(`spread: ${[...perNode].map(([n, c]) => `${n} ${c}`).join(', ')}`);
    expect([...perNode.keys()].sort()).to.deep.equal(cluster.nodes.map((n) => n.hostname).sort());
    for (const [n, c] of perNode) expect(c, n).to.be.at.least(5);
    await Promise.all(
      all.map(async (o) => {
        const n = cluster.nodes.find((x) => x.hostname === o.status!.node)!;
        expect(o.status!.endpoint!.hostUrl, o.metadata.name).to.match(new RegExp(`^http://${n.ip.replace(/\./g, '\\.')}:\\d+$`));
        expect(await answeringNode(o), o.metadata.name).to.equal(n.hostname);
        const svcs = await servicesOf(o);
        expect(svcs, `${o.metadata.name}: one service`).to.have.length(1);
        const spec = svcs[0].Spec;
        expect(spec.TaskTemplate.ContainerSpec.Image, 'pinned by digest').to.match(/@sha256:[0-9a-f]{64}$/);
        expect(spec.TaskTemplate.Resources.Reservations).to.deep.equal({ MemoryBytes: 8 * 2 ** 20 });
        const tasks = (await cluster.manager.docker.listTasks({ filters: JSON.stringify({ service: [svcs[0].ID] }) } as object)) as any[];
        expect(tasks, `${o.metadata.name}: pinning restarted no task`).to.have.length(1);
        if (o.metadata.namespace === NS_PINNED) {
          expect(spec.Labels[LABELS.node]).to.equal(n.hostname);
          expect(spec.TaskTemplate.Placement.Constraints).to.include(`node.hostname==${n.hostname}`);
          expect(o.status!.conditions!.find((c) => c.type === 'VolumeUnavailable')).to.include({ status: 'False' });
        } else {
          expect(spec.Labels[LABELS.node]).to.equal(undefined);
          expect(spec.TaskTemplate.Placement.Constraints ?? []).to.deep.equal([]);
        }
      }),
    );
    const wide = await stack.kubectl(['get', 'nbs', '-n', NS_PINNED, '-o', 'wide']);
    expect(wide.split('\n')[0]).to.match(/\bNODE\b/);
    expect(wide).to.include(node(0).hostname);
  });

  it('runs an image given by tag from the registry on a worker that never had it, pinned by digest; refuses a manager-only image unless the policy pushes it', async () => {
    const gpu = await cluster.pushImage(TEST_IMAGE, { changes: ['STOPSIGNAL SIGKILL', `LABEL gpu=${RUN}`], tag: `gpu-${RUN}` });
    for (const w of cluster.workers) {
      const err = await w.docker
        .getImage(gpu.reference)
        .inspect()
        .then(
          () => undefined,
          (e: any) => e,
        );
      expect(err?.statusCode, `${w.name} must not have the image yet`).to.equal(404);
    }
    // Manager-only images: tagged locally on the manager, in no registry. Two names, because the
    // operator that pushes one makes it a registry image for the other operator too.
    const local = `local/mn-only-${RUN}:1`;
    const toPush = `local/mn-push-${RUN}:1`;
    await cluster.manager.docker.getImage(busybox.id).tag({ repo: `local/mn-only-${RUN}`, tag: '1' });
    await cluster.manager.docker.getImage(busybox.id).tag({ repo: `local/mn-push-${RUN}`, tag: '1' });
    // Only node3 may run GPU images (policy placementRules → node.labels.nbswarm-test-gpu==true).
    await cluster.setNodeLabels(node(2), { 'nbswarm-test-hub': 'true', 'nbswarm-test-gpu': 'true' });
    await Promise.all([
      stack.create(NS_SHARED, 'gpu', { user: 'gpu', mode: 'custom', image: gpu.tagged, command: SERVE_NODE, env: NODE_ENV }),
      stack.create(NS_SHARED, 'localonly', { user: 'lo', mode: 'custom', image: local, command: SERVE_NODE, env: NODE_ENV }),
      stack.create(NS_PINNED, 'localpush', { user: 'lp', mode: 'custom', image: toPush, command: SERVE_NODE, env: NODE_ENV }),
    ]);
    mkdirSync(join(sharedHome, 'gpu'), { recursive: true });
    mkdirSync(join(sharedHome, 'lo'), { recursive: true });
    const o = (await until(NS_SHARED, ['gpu'], 'Ready', isReady)).get('gpu')!;
    expect(o.status!.node).to.equal(node(2).hostname);
    expect(await answeringNode(o)).to.equal(node(2).hostname);
    const [svc] = await servicesOf(o);
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).to.equal(gpu.reference);
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).to.not.include(`:gpu-${RUN}`);
    expect(svc.Spec.TaskTemplate.Placement.Constraints).to.include('node.labels.nbswarm-test-gpu==true');
    expect(o.status!.backend!.imageId).to.equal(gpu.digest);
    expect(((await node(2).docker.getImage(gpu.reference).inspect()) as any).RepoDigests).to.include(gpu.reference);

    const refused = (await until(NS_SHARED, ['localonly'], 'refused', (x) => x.status?.phase === 'Failed')).get('localonly')!;
    expect(readyCond(refused)?.reason).to.equal('ImageNotShared');
    expect(refused.status!.message).to.match(
      new RegExp(`exists only on the Swarm manager.*docker push ${cluster.registry.replace(/\./g, '\\.')}/local/mn-only-${RUN}:1.*registry\\.pushLocalImages`),
    );
    expect(await servicesOf(refused)).to.have.length(0);

    const pushedOne = (await until(NS_PINNED, ['localpush'], 'Ready', isReady)).get('localpush')!;
    const [psvc] = await servicesOf(pushedOne);
    expect(psvc.Spec.TaskTemplate.ContainerSpec.Image).to.match(new RegExp(`^${cluster.registry.replace(/\./g, '\\.')}/local/mn-push-${RUN}@sha256:`));
    await stack.custom.deleteNamespacedCustomObject({
      group: 'nbswarm.io',
      version: 'v1alpha1',
      plural: 'notebookservers',
      namespace: NS_SHARED,
      name: 'localonly',
    });
  });

  /** Wait until every server of `names` is Ready on a node other than `from` and answers there, from the hub namespace. */
  async function movedOff(ns: string, names: string[], from: string, what: string, timeoutMs = 60_000): Promise<Map<string, NotebookServer>> {
    const t0 = Date.now();
    return waitFor(
      `${what}: ${names.length} servers of ${ns} Ready away from ${from} and answering there`,
      async () => {
        const all = new Map((await stack.list(ns)).map((o) => [o.metadata.name!, o]));
        const bad: string[] = [];
        for (const n of names) {
          const o = all.get(n);
          if (!o || !isReady(o) || !o.status?.node || o.status.node === from) bad.push(`${n}: ${o?.status?.phase} on ${o?.status?.node}`);
          else if ((await answeringNode(o)) !== o.status.node) bad.push(`${n}: ${o.status.endpoint?.hostUrl} does not answer as ${o.status.node}`);
        }
        if (bad.length && Date.now() - t0 > timeoutMs - 1000) throw new Error(`not yet: ${bad.slice(0, 5).join('; ')}\n${stack.tails()}`);
        return bad.length ? undefined : all;
      },
      timeoutMs,
      200,
    );
  }

  const onNode = (servers: Iterable<NotebookServer>, n: ClusterNode, names: string[]) =>
    [...servers].filter((o) => names.includes(o.metadata.name!) && o.status?.node === n.hostname).map((o) => o.metadata.name!);

  const cat = async (o: NotebookServer, file: string) => {
    const c = await containerOf(o);
    return { node: c.node.hostname, text: (await dockerExec(c.node.docker, c.id, ['cat', file])).trim() };
  };

  it("keeps a user's file on its node across stop/start and an operator restart; a drained node gives VolumeUnavailable, not an empty home; shared storage moves with the file", async () => {
    const n2 = node(1);
    const pinnedAll = await stack.list(NS_PINNED);
    const sharedAll = await stack.list(NS_SHARED);
    const [victim] = onNode(pinnedAll, n2, burstA);
    const movers = onNode(sharedAll, n2, burstB);
    expect(victim, `a pinned server on ${n2.hostname}`).to.be.a('string');
    expect(movers, `shared-storage servers on ${n2.hostname}`).to.have.length.above(0);
    const v0 = pinnedAll.find((o) => o.metadata.name === victim)!;
    // The user writes into the home on node 2 (a node-local named volume).
    const c0 = await containerOf(v0);
    expect(c0.node.hostname).to.equal(n2.hostname);
    // As root: busybox has no start script that hands the fresh volume to the server's user.
    await dockerExec(c0.node.docker, c0.id, ['sh', '-c', `echo kept-${RUN} > /home/jovyan/work/keep.txt`], '0');
    const [svc0] = await servicesOf(v0);

    await stack.patch(NS_PINNED, victim!, { spec: { stopped: true } });
    await until(NS_PINNED, [victim!], 'Stopped', (o) => o.status?.phase === 'Stopped' && o.status?.observedGeneration === o.metadata.generation);
    expect((await stack.get(NS_PINNED, victim!)).status!.node, 'status.node kept while stopped').to.equal(n2.hostname);
    await stack.patch(NS_PINNED, victim!, { spec: { stopped: false } });
    const v1 = (await until(NS_PINNED, [victim!], 'Ready again', isReady)).get(victim!)!;
    expect(await cat(v1, '/home/jovyan/work/keep.txt')).to.deep.equal({ node: n2.hostname, text: `kept-${RUN}` });

    // An operator restart leaves every server where it is: no Docker write at all.
    await pinned.restart();
    const st = await settledStats(pinned, burstA.length);
    expect(st.reconciler.dockerWrites, 'Docker writes after an operator restart').to.equal(0);
    const [svc1] = await servicesOf(v1);
    expect(svc1.ID).to.equal(svc0.ID);
    expect(await cat(v1, '/home/jovyan/work/keep.txt')).to.deep.equal({ node: n2.hostname, text: `kept-${RUN}` });

    // The shared-storage user writes on node 2 too (a bind of a folder every node sees).
    const m0 = sharedAll.find((o) => o.metadata.name === movers[0])!;
    const mc = await containerOf(m0);
    await dockerExec(mc.node.docker, mc.id, ['sh', '-c', `echo moved-${RUN} > /home/jovyan/moved.txt`], '0');

    const t0 = Date.now();
    await cluster.drain(n2);
    // Later tests need node 2: it is made active again whatever this test's outcome.
    try {
      await drainedNodeHoldsServer(n2, victim!, movers, t0);
    } finally {
      await cluster.activate(n2);
    }
    const back = (await until(NS_PINNED, [victim!], 'Ready after the node is active again', isReady)).get(victim!)!;
    expect(back.status!.conditions!.find((c) => c.type === 'VolumeUnavailable')).to.include({ status: 'False' });
    expect(await cat(back, '/home/jovyan/work/keep.txt')).to.deep.equal({ node: n2.hostname, text: `kept-${RUN}` });
  });

  /** While `n2` is drained: the pinned `victim` waits for it with VolumeUnavailable, the shared-storage `movers` move off. */
  async function drainedNodeHoldsServer(n2: ClusterNode, victim: string, movers: string[], t0: number): Promise<void> {
    // Swarm stops the task on a drained node a moment after the node is marked drained; until
    // then the server still runs and answers (Ready, with VolumeUnavailable already True).
    const held = (
      await until(
        NS_PINNED,
        [victim],
        'VolumeUnavailable and not Ready',
        (o) => o.status?.conditions?.some((c) => c.type === 'VolumeUnavailable' && c.status === 'True') === true && readyCond(o)?.status === 'False',
      )
    ).get(victim)!;
    report(`drain of ${n2.hostname}: pinned server held with VolumeUnavailable after ${secs(Date.now() - t0)}`);
    expect(held.status!.conditions!.find((c) => c.type === 'VolumeUnavailable')).to.include({ reason: 'NodeDrained' });
    expect(readyCond(held)).to.include({ status: 'False', reason: 'VolumeUnavailable' });
    expect(held.status!.message).to.include(n2.hostname);
    expect(held.status!.node).to.equal(n2.hostname);
    const moved = await movedOff(NS_SHARED, movers, n2.hostname, `drain of ${n2.hostname}`);
    report(`drain of ${n2.hostname}: ${movers.length} shared-storage servers answering on other nodes after ${secs(Date.now() - t0)}`);
    expect(await cat(moved.get(movers[0]!)!, '/home/jovyan/moved.txt')).to.deep.include({ text: `moved-${RUN}` });
    // The held server started nowhere else (no running task on another node, still constrained to node 2).
    const [hsvc] = await servicesOf(held);
    expect(hsvc.Spec.TaskTemplate.Placement.Constraints).to.include(`node.hostname==${n2.hostname}`);
    const running = (
      (await cluster.manager.docker.listTasks({ filters: JSON.stringify({ service: [hsvc.ID], 'desired-state': ['running'] }) } as object)) as any[]
    ).filter((t) => t.Status?.State === 'running');
    expect(running, 'tasks of the held server running anywhere').to.have.length(0);
    const events = await stack.kubectl([
      'get',
      'events',
      '-n',
      NS_PINNED,
      '--field-selector',
      `involvedObject.name=${victim}`,
      '-o',
      'jsonpath={.items[*].reason}',
    ]);
    expect(events.split(' ')).to.include('VolumeUnavailable');
  }

  it('builds a dashboard from a server on node 2 (committed and pushed there) and runs it on node 3', async () => {
    await builderReady;
    const all = await stack.list(NS_PINNED);
    const [src] = onNode(all, node(1), burstA);
    const s = all.find((o) => o.metadata.name === src)!;
    const c = await containerOf(s);
    await dockerExec(c.node.docker, c.id, ['sh', '-c', `echo built-from-${c.node.hostname} > /tmp/w/origin`]);
    await stack.create(NS_PINNED, 'dash', { user: 'dashu', mode: 'custom', image: tag('on3'), source: { server: src }, command: SERVE_NODE, env: NODE_ENV });
    const d = (await until(NS_PINNED, ['dash'], 'Ready', isReady, 120_000)).get('dash')!;
    expect(d.status!.node).to.equal(node(2).hostname);
    expect(await answeringNode(d)).to.equal(node(2).hostname);
    const r = await cluster.hub.httpGet(`${d.status!.endpoint!.hostUrl}/origin`, 3000);
    expect(r.body.trim()).to.equal(`built-from-${node(1).hostname}`);
    const [svc] = await servicesOf(d);
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).to.match(
      new RegExp(`^${cluster.registry.replace(/\./g, '\\.')}/mn-built-${RUN}/${NS_PINNED}/${src}@sha256:[0-9a-f]{64}$`),
    );
    expect(d.status!.build!.image).to.match(/:g\d+$/);
  });

  const HUB_USERS = ['alice', 'bob'];
  it('serves users through two JupyterHubs with the spawner from hub/: one routing to node ports, one on the overlay network', async () => {
    for (const u of HUB_USERS) mkdirSync(join(sharedHome, u), { recursive: true });
    const image = tag('hub');
    nsHub = new NamespaceHub(cluster, stack, { namespace: NS_SHARED, image, users: HUB_USERS });
    overlayHub = new OverlayHub(cluster, stack, { namespace: NS_SHARED, image, users: HUB_USERS, network, baseImage: busybox.reference });
    await Promise.all([nsHub.start(), overlayHub.start()]);
    // Both hubs' servers start on node 3 (the node labelled for the hub's image), which the next tests break.
    expect(await nsHub.spawn('alice')).to.equal(node(2).hostname);
    expect(await overlayHub.spawn('bob')).to.equal(node(2).hostname);
    // From now on node 2 may run them too: where they go when node 3 is lost.
    await cluster.setNodeLabels(node(1), { 'nbswarm-test-hub': 'true' });
  });

  /** Node 3 lost (`how`), then back: unpinned servers move with their endpoints and hub routes; pinned ones wait; nothing duplicated or orphaned. */
  async function loseNode3(how: 'kill' | 'cut', extra: string[] = []): Promise<void> {
    const n3 = node(2);
    const shared0 = await stack.list(NS_SHARED);
    const pinned0 = await stack.list(NS_PINNED);
    const hubServers = shared0.filter((o) => o.status?.node === n3.hostname && HUB_USERS.includes(o.spec.user)).map((o) => o.metadata.name!);
    expect(hubServers, `the hubs' servers on ${n3.hostname}`).to.have.length(HUB_USERS.length);
    const movers = [...onNode(shared0, n3, [...burstB, ...extra])];
    const waiting = onNode(pinned0, n3, burstA);
    expect(movers, `shared-storage servers on ${n3.hostname}`).to.have.length.above(0);
    expect(waiting, `pinned servers on ${n3.hostname}`).to.have.length.above(0);
    const byName = new Map(shared0.map((o) => [o.metadata.name!, o]));
    const moverServices = new Set<string>();
    for (const m of [...movers, ...hubServers]) moverServices.add((await servicesOf(byName.get(m)!))[0].ID);

    const t0 = Date.now();
    if (how === 'kill') await cluster.killNode(n3);
    else await cluster.cutLink(n3);
    let back = false;
    const bringBack = async () => {
      back = true;
      if (how === 'kill') await cluster.restartNode(n3);
      else {
        await cluster.restoreLink(n3);
        await cluster.waitForNodeState(n3, 'ready');
      }
    };
    try {
      const moved = await movedOff(NS_SHARED, movers, n3.hostname, `${how} of ${n3.hostname}`, 90_000);
      report(`${how} of ${n3.hostname}: ${movers.length} unpinned servers answering at their new endpoints after ${secs(Date.now() - t0)}`);
      for (const m of movers) expect(moved.get(m)!.status!.endpoint!.hostUrl).to.not.include(`//${n3.ip}:`);
      const held = await until(
        NS_PINNED,
        waiting,
        'VolumeUnavailable',
        (o) => o.status?.conditions?.some((c) => c.type === 'VolumeUnavailable' && c.status === 'True' && c.reason === 'NodeDown') === true,
      );
      for (const w of waiting) expect(held.get(w)!.status!.node).to.equal(n3.hostname);
      // The hubs route again: one by following the new endpoint, one through the service name.
      const awayFrom3 = (hub: Hub, user: string) => async () => {
        const at = await hub.answeringNode(user);
        return at && at !== n3.hostname ? at : undefined;
      };
      await Promise.all([
        waitFor(`alice through the namespace hub, away from ${n3.hostname}`, awayFrom3(nsHub!, 'alice'), 60_000, 200),
        waitFor(`bob through the overlay hub, away from ${n3.hostname}`, awayFrom3(overlayHub!, 'bob'), 60_000, 200),
      ]);
      report(`${how} of ${n3.hostname}: both hubs' routes answer again after ${secs(Date.now() - t0)}`);

      if (how === 'kill') {
        // An operator restart while the worker is down writes nothing to Docker and duplicates nothing.
        await shared.restart();
        const st = await settledStats(shared, burstB.length);
        expect(st.reconciler.dockerWrites, 'Docker writes of a restart with a worker down').to.equal(0);
      }
      await bringBack();
      await until(NS_PINNED, waiting, `Ready again on ${n3.hostname}`, (o) => isReady(o) && o.status?.node === n3.hostname);
      // Swarm shuts the stale tasks on the returned node down: one service per server, no orphan container.
      await waitFor(
        `no container of a moved server left on ${n3.hostname}`,
        async () => (await runningOn(n3)).every((id) => !moverServices.has(id)),
        30_000,
        250,
      );
      for (const o of [...(await stack.list(NS_SHARED)), ...(await stack.list(NS_PINNED))]) {
        expect(await servicesOf(o), `${o.metadata.name}: one service`).to.have.length(1);
      }
      for (const m of movers) {
        const o = await stack.get(NS_SHARED, m);
        expect(await answeringNode(o), `${m} still answers at its endpoint`).to.equal(o.status!.node);
      }
    } finally {
      // A failure above must not leave node 3 lost for the tests after this one.
      if (!back) await bringBack().catch(() => undefined);
    }
  }

  it("kill -9 of node 3's dockerd: unpinned servers answer elsewhere at updated endpoints, hub routes follow, pinned ones wait; no duplicates or orphans once it returns", async () => {
    await loseNode3('kill');
  });

  it('a cut link to node 3 (a node that keeps running unseen): the same', async () => {
    const n3 = node(2);
    // The hubs' users restart their servers while only node 3 takes the hub's image, and a fresh
    // batch of unpinned servers lands there beside them.
    await Promise.all([nsHub!.stopServer('alice'), overlayHub!.stopServer('bob')]);
    await cluster.setNodeLabels(node(1), { 'nbswarm-test-hub': 'false' });
    const batch = ['c0', 'c1', 'c2'];
    for (const u of batch) mkdirSync(join(sharedHome, u), { recursive: true });
    await Promise.all(batch.map((u) => stack.create(NS_SHARED, u, { user: u, mode: 'custom', image: tag('hub'), command: SERVE_NODE, env: NODE_ENV })));
    const [, alice, bob] = await Promise.all([
      until(NS_SHARED, batch, `Ready on ${n3.hostname}`, (o) => isReady(o) && o.status?.node === n3.hostname),
      nsHub!.spawn('alice'),
      overlayHub!.spawn('bob'),
    ]);
    expect([alice, bob]).to.deep.equal([n3.hostname, n3.hostname]);
    await cluster.setNodeLabels(node(1), { 'nbswarm-test-hub': 'true' });
    await loseNode3('cut', batch);
  });
});

/** Where the builder image (below) is pushed. */
function builderImageName(cluster: Cluster): string {
  return `${cluster.registry}/local/docker-cli:${TEST_RUN_ID.replace(/[^a-z0-9]/g, '')}`;
}

/**
 * An image with the docker CLI for builder jobs (what docker:cli is on a real site: root, to use the
 * node's Docker socket): the pushed busybox plus this machine's docker CLI, built on the manager and
 * pushed.
 */
async function buildBuilderImage(cluster: Cluster, base: PushedImage, work: string, target: string): Promise<void> {
  const ctx = join(work, 'builder');
  mkdirSync(ctx, { recursive: true });
  // busybox has no libc: a dynamically linked CLI (Debian's docker.io) travels with the libraries it loads.
  const cli = ['/usr/local/bin/docker', '/usr/bin/docker'].find((p) => existsSync(p));
  if (!cli)
    throw new Error('no docker CLI on this machine (/usr/local/bin/docker or /usr/bin/docker): the builder image for source-server builds is made from it');
  const rootfs = join(ctx, 'rootfs');
  const ldd = spawnSync('ldd', [cli], { encoding: 'utf8' });
  const libs = ldd.status === 0 ? [...ldd.stdout.matchAll(/(\/\S+\.so[^\s]*)/g)].map((m) => m[1]!) : [];
  for (const f of [...libs.map((l) => [l, l]), [cli, '/bin/docker']]) {
    mkdirSync(join(rootfs, dirname(f[1]!)), { recursive: true });
    copyFileSync(realpathSync(f[0]!), join(rootfs, f[1]!));
    chmodSync(join(rootfs, f[1]!), 0o755);
  }
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${base.reference}\nCOPY rootfs/ /\nUSER 0\nLABEL ${TEST_RUN_LABEL}=${TEST_RUN_ID}\n`);
  const mgr = cluster.manager.docker;
  const follow = (s: NodeJS.ReadableStream) =>
    new Promise<any[]>((resolve, reject) =>
      mgr.modem.followProgress(s, (err: Error | null, out: any[]) => {
        const failed = err ?? out?.find((o) => o?.error);
        if (failed) reject(new Error(String((failed as any).error ?? (failed as Error).message)));
        else resolve(out);
      }),
    );
  await follow(
    (await mgr.buildImage({ context: ctx, src: ['Dockerfile', 'rootfs'] }, { t: target, rm: true, forcerm: true })) as unknown as NodeJS.ReadableStream,
  );
  await follow((await mgr.getImage(target).push({ authconfig: {} } as object)) as unknown as NodeJS.ReadableStream);
}
