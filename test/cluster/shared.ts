/**
 * One cluster for every test file of a mocha run: started by the first `sharedCluster()` call,
 * removed by a root-level `after` hook once the whole run is over (a failing removal fails the
 * run). With NBSWARM_CLUSTER=NAME the tests use a cluster started by `npm run cluster:up` instead,
 * and leave it running.
 */
import { attachCluster, startCluster, type Cluster } from './cluster.js';

/** What the test suites expect of the shared cluster. */
export const SHARED_CLUSTER = { nodes: 3, heartbeatSeconds: 1 } as const;

let pending: Promise<Cluster> | undefined;
let startedMs: number | undefined;

export function sharedCluster(): Promise<Cluster> {
  if (!pending) {
    const reuse = process.env.NBSWARM_CLUSTER;
    const t0 = Date.now();
    pending = reuse
      ? Promise.resolve(attachCluster(reuse))
      : startCluster({ name: `t${process.pid}`, ...SHARED_CLUSTER }).then((c) => {
          startedMs = Date.now() - t0;
          return c;
        });
  }
  return pending;
}

/** How long the shared cluster took to start (undefined when it was reused or not started). */
export function sharedClusterStartMs(): number | undefined {
  return startedMs;
}

async function stopSharedCluster(): Promise<void> {
  if (!pending || process.env.NBSWARM_CLUSTER) return;
  let cluster: Cluster;
  try {
    cluster = await pending;
  } catch {
    return; // the start failed and cleaned up after itself; the tests that needed it have failed
  }
  pending = undefined;
  if (cluster.isStopped) return;
  const report = await cluster.stop();
  console.log(`      [cluster] shared cluster ${cluster.name}: up ${startedMs} ms, down ${report.ms} ms (${report.killedProcesses} processes)`);
}

// Registered on mocha's root suite when a spec file imports this module: runs after every file.
if (typeof after === 'function') {
  after('stop the shared multi-node cluster', async function () {
    this.timeout(60000);
    await stopSharedCluster();
  });
}
