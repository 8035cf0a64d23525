/**
 * What the harness removes as stale on start (and `cluster:down`): a kept cluster none of whose
 * processes runs, and namespaces named like a cluster's that no state describes and no process
 * uses — never a namespace some process still uses.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { run } from '../../bench/lib/exec.js';
import { processRef, type ProcessRef } from './procs.js';
import { isStale, stateRoot, type ClusterState } from './state.js';
import { removeDeadNamespaces } from './teardown.js';
import { sleep } from './wait.js';

function keptState(refs: (ProcessRef | undefined)[]): ClusterState {
  return {
    version: 1,
    name: 'x',
    dir: '/nonexistent',
    owner: null,
    createdAt: new Date().toISOString(),
    subnet: '10.250.0',
    heartbeatSeconds: 1,
    preferOfflineImage: false,
    fabric: { netns: 'nbsc-x-fabric', bridge: 'br0', ip: '10.250.0.1', anchor: refs[0] },
    registry: { address: '10.250.0.1:5000', process: refs[1] },
    hub: { netns: 'nbsc-x-hub', ip: '10.250.0.2', link: 'v-hub', agentSocket: '/nonexistent', anchor: refs[2] },
    sharedDir: '/nonexistent',
    cgroupMounts: [],
    nodes: [],
  };
}

describe('multi-node harness: stale state', () => {
  it('a kept cluster is stale once none of its processes runs, not while one does', () => {
    const me = processRef(process.pid)!;
    const dead: ProcessRef = { pid: me.pid, startTime: `${me.startTime}0` }; // same pid, another process
    expect(isStale(keptState([dead, dead, dead]))).to.equal(true);
    expect(isStale(keptState([dead, me, dead]))).to.equal(false);
    expect(isStale(keptState([undefined, undefined, undefined])), 'nothing recorded yet').to.equal(false);
    expect(isStale({ ...keptState([me]), owner: dead }), 'owner exited').to.equal(true);
  });

  it("removes namespaces named like a cluster's that no state describes and no process uses, and keeps one in use", async function () {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (ip netns)');
    const tag = `zs${process.pid % 100000}`;
    const unused = `nbsc-${tag}-node1`;
    const inUse = `nbsc-${tag}-hub`;
    let holder: ChildProcess | undefined;
    try {
      await run('ip', ['netns', 'add', unused]);
      await run('ip', ['netns', 'add', inUse]);
      holder = spawn('ip', ['netns', 'exec', inUse, 'sleep', '60'], { stdio: 'ignore' });
      // Wait until the sleep has entered the namespace.
      for (let i = 0; i < 100 && !(await run('ip', ['netns', 'pids', inUse])).trim(); i++) await sleep(20);
      const logged: string[] = [];
      await removeDeadNamespaces(stateRoot(), (l) => logged.push(l));
      expect(existsSync(`/run/netns/${unused}`), logged.join('\n')).to.equal(false);
      expect(existsSync(`/run/netns/${inUse}`)).to.equal(true);
      expect(logged.join('\n')).to.include(unused);
    } finally {
      holder?.kill('SIGKILL');
      for (const ns of [unused, inUse]) if (existsSync(`/run/netns/${ns}`)) await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
    }
  });
});
