/**
 * `npm run cluster:up | cluster:down | cluster:status`: the multi-node test cluster by hand, for
 * trying the operator against several nodes or for running tests against a cluster kept up
 * between runs (NBSWARM_CLUSTER=NAME npm test).
 */
import { Command } from 'commander';
import { attachCluster, destroyCluster, listClusters, pruneStaleClusters, startCluster, type Cluster } from './cluster.js';
import { isRunning } from './procs.js';
import { isStale, readState, stateRoot } from './state.js';

function summary(c: Cluster): object {
  return {
    name: c.name,
    dockerHost: c.dockerHost,
    registry: c.registry,
    hub: { netns: c.hub.netns, ip: c.hub.ip, agentSocket: c.hub.agentSocket, pid: c.state.hub.anchor?.pid },
    sharedDir: c.sharedDir,
    heartbeatSeconds: c.heartbeatSeconds,
    nodes: c.nodes.map((n) => ({ name: n.name, role: n.role, hostname: n.hostname, ip: n.ip, dockerHost: n.dockerHost, pid: n.pid ?? null })),
  };
}

function printHuman(c: Cluster, swarm?: Map<string, any>, links?: Map<string, boolean>): void {
  const hubPid = c.state.hub.anchor?.pid;
  const lines = [
    `  export DOCKER_HOST=${c.dockerHost}`,
    `  registry:   ${c.registry}   (plain HTTP; reachable from the nodes and the hub namespace only)`,
    `  hub:        netns ${c.hub.netns}, ${c.hub.ip}; run a process there: nsenter -t ${hubPid ?? '?'} -n -m -u -- CMD`,
    `  shared dir: ${c.sharedDir}   (the same path on every node)`,
    `  nodes:`,
    ...c.nodes.map((n) => {
      const s = swarm?.get(n.hostname);
      const state = s ? `${s.Status?.State}/${s.Spec?.Availability}` : '';
      const link = links && links.get(n.name) === false ? ' LINK CUT' : '';
      return `    ${n.name.padEnd(7)} ${n.role.padEnd(8)} ${n.hostname.padEnd(24)} ${n.ip.padEnd(14)} dockerd ${n.pid ? `pid ${n.pid}` : 'NOT RUNNING'} ${state}${link}`;
    }),
    `  tests on it: NBSWARM_CLUSTER=${c.name} npm test    stop it: npm run cluster:down -- --name ${c.name}`,
  ];
  console.log(lines.join('\n'));
}

async function swarmView(c: Cluster): Promise<Map<string, any> | undefined> {
  if (c.manager.pid === undefined) return undefined;
  try {
    const nodes = (await c.manager.docker.listNodes()) as any[];
    return new Map(nodes.map((n) => [n.Description?.Hostname as string, n]));
  } catch {
    return undefined;
  }
}

function fail(err: unknown): never {
  console.error(`nbswarm cluster: ${(err as Error).message}`);
  process.exit(1);
}

const program = new Command('cluster').description('multi-node Docker Swarm for tests, on this machine (root)');
program.option('--root <dir>', 'state folder (default $NBSWARM_CLUSTER_ROOT or /var/tmp/nbswarm-cluster)');

program
  .command('up')
  .description('start a cluster and print the DOCKER_HOST and registry to use')
  .option('--name <name>', 'cluster name', 'dev')
  .option('--nodes <n>', 'nodes (1 manager + n-1 workers)', '3')
  .option('--heartbeat <seconds>', 'Swarm dispatcher heartbeat (a lost node is Down after a few)', '5')
  .option('--shared-dir <dir>', 'host folder every node sees (default: one inside the state folder)')
  .option('--subnet <a.b.c>', 'the cluster /24', '10.250.0')
  .option('--replace', 'replace a running cluster of the same name')
  .option('--prefer-offline-image', 'start the daemons with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (they then never pull)')
  .option('--json', 'print the cluster as JSON')
  .action(async (o) => {
    const root = program.opts().root as string | undefined;
    try {
      const c = await startCluster({
        name: o.name,
        nodes: Number(o.nodes),
        heartbeatSeconds: Number(o.heartbeat),
        sharedDir: o.sharedDir,
        subnet: o.subnet,
        root,
        persistent: true,
        replace: !!o.replace,
        preferOfflineImage: !!o.preferOfflineImage,
        log: o.json ? undefined : (l) => console.error(`  … ${l}`),
      });
      if (o.json) console.log(JSON.stringify({ ...summary(c), timings: c.timings }, null, 2));
      else {
        console.log(`cluster ${c.name} is up: ${c.nodes.length} nodes in ${((c.timings?.totalMs ?? 0) / 1000).toFixed(1)} s`);
        printHuman(c, await swarmView(c));
      }
      process.exit(0);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('down')
  .description('stop a cluster and remove everything it made (also removes clusters left by killed test runs)')
  .option('--name <name>', 'cluster name', 'dev')
  .action(async (o) => {
    const root = program.opts().root as string | undefined;
    try {
      const t0 = Date.now();
      const found = await destroyCluster(o.name, root, (l) => console.error(`  … ${l}`));
      await pruneStaleClusters(root, (l) => console.error(`  … ${l}`));
      console.log(found ? `cluster ${o.name} removed in ${((Date.now() - t0) / 1000).toFixed(1)} s` : `no cluster named ${o.name}`);
      process.exit(0);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('status')
  .description('show a cluster (or, without --name, every cluster)')
  .option('--name <name>', 'cluster name')
  .option('--json', 'print as JSON')
  .action(async (o) => {
    const root = program.opts().root as string | undefined;
    try {
      const names = o.name ? [o.name as string] : listClusters(root).map((s) => s.name);
      if (names.length === 0) {
        console.log(`no cluster under ${stateRoot(root)}`);
        process.exit(0);
      }
      const out: object[] = [];
      for (const name of names) {
        const st = readState(stateRoot(root), name);
        if (!st) fail(new Error(`no cluster named ${name} under ${stateRoot(root)}`));
        const c = attachCluster(name, root);
        const links = new Map<string, boolean>();
        for (const n of c.nodes) links.set(n.name, await c.linkUp(n).catch(() => false));
        const owner = st.owner
          ? `owned by process ${st.owner.pid}${isRunning(st.owner) ? '' : ' (exited: stale, removed by the next start)'}`
          : `kept until cluster:down${isStale(st) ? ', but none of its processes runs (stale, removed by the next start)' : ''}`;
        if (o.json) out.push({ ...summary(c), owner: st.owner, createdAt: st.createdAt, links: Object.fromEntries(links) });
        else {
          console.log(`cluster ${name} (since ${st.createdAt}, ${owner})`);
          printHuman(c, await swarmView(c), links);
        }
      }
      if (o.json) console.log(JSON.stringify(out, null, 2));
      process.exit(0);
    } catch (err) {
      fail(err);
    }
  });

program.parseAsync(process.argv).catch(fail);
