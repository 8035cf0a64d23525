/**
 * Fault suite: the operator against a PRIVATE dockerd (a 1-node Swarm from test/cluster/, in its
 * own network namespace), never the machine's. The node's dockerd is killed and started again
 * with 20 servers running: every server is Ready again, with its endpoint pointing at the port
 * its new task published, without a duplicate service, within 30 s of dockerd answering. Then an
 * operator process is killed with SIGKILL in the middle of creating 100 servers and started again:
 * exactly one service per server.
 */

const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { LABELS } from '../../src/api/names.js';
import { startCluster, type Cluster } from '../cluster/cluster.js';
import { TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { HTTPD, getNbs, nbsYaml, setupEnv, type Env } from './operator-harness.js';

describe('fault: the Swarm dockerd restarts under 20 running servers (private 1-node cluster)', function () {
  this.timeout(300_000);
  const COUNT = 20;
  const names = Array.from({ length: COUNT }, (_, i) => `srv${i}`);
  let cluster: Cluster;
  let env: Env;

  /** Every server Running, Ready, its endpoint the port its task publishes now, answering. */
  async function allReady(): Promise<boolean> {
    for (const n of names) {
      const o = await getNbs(env, n);
      const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
      if (o.status?.phase !== 'Running' || ready?.status !== 'True' || !o.status.endpoint?.url) return false;
      const [obs] = await env.backend.find(o.metadata.uid!);
      if (!obs || obs.hostPort !== o.status.endpoint.port) return false;
      const r = await cluster.hub.request(o.status.endpoint.url, { timeoutMs: 1500 }).catch(() => undefined);
      if (!r || r.status !== 200) return false;
    }
    return true;
  }

  before(async function () {
    cluster = await startCluster({ name: `f${process.pid % 100000}`, nodes: 1, heartbeatSeconds: 1, preferOfflineImage: true });
    const img = await cluster.pushImage(TEST_IMAGE, { changes: ['STOPSIGNAL SIGKILL'] });
    env = await setupEnv(
      'service',
      { defaultImage: img.tagged, allowedImages: ['**'], localImages: [], publishHostIp: cluster.manager.ip, concurrency: 8 },
      {
        docker: cluster.manager.docker,
        // The servers publish on the node's address, reachable from the cluster's namespaces only.
        probe: (url) =>
          cluster.hub.request(url, { timeoutMs: 1500 }).then(
            () => true,
            () => false,
          ),
      },
    );
  });
  let child: ChildProcess | undefined;
  let tmp: string | undefined;
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    // The cluster is private and destroyed next, its dockerd and data with it: no services to remove.
    await env?.close({ leaveDockerObjects: true }).catch(() => undefined);
    if (cluster && !cluster.isStopped) await cluster.stop();
  });

  it('all Ready again with updated endpoints and no duplicates within 30 s of dockerd answering', async () => {
    await env.kubectl(['apply', '-f', '-'], names.map((n) => nbsYaml(n, { user: n, command: HTTPD })).join('---\n'));
    await waitFor('20 servers Ready', async () => allReady(), 180_000, 1000);
    const before = new Map<string, string>();
    for (const n of names) {
      const o = await getNbs(env, n);
      before.set(n, (await env.backend.find(o.metadata.uid!))[0]!.id);
    }

    await cluster.restartNode(0, { waitReady: false });
    const answering = await waitFor(
      'dockerd answers',
      async () =>
        await cluster.manager.docker.ping().then(
          () => Date.now(),
          () => undefined,
        ),
      60_000,
      100,
    );
    await waitFor('20 servers Ready after the restart', async () => allReady(), 30_000, 500);
    const took = Date.now() - answering;
    console.log(`      [fault] ${COUNT} servers Ready ${took} ms after dockerd answered again`);

    const services = (await cluster.manager.docker.listServices({
      filters: JSON.stringify({ label: [`${LABELS.managedBy}=nbswarm`] }),
    } as any)) as unknown as any[];
    const ours = services.filter((s) => String(s.Spec?.Name ?? '').startsWith(`${env.prefix}-`));
    expect(ours, 'one service per server').to.have.length(COUNT);
    for (const n of names) {
      const o = await getNbs(env, n);
      const found = await env.backend.find(o.metadata.uid!);
      expect(
        found.map((f) => f.id),
        `${n}: the same service, no duplicate`,
      ).to.deep.equal([before.get(n)]);
    }
  });

  it('kill -9 of the operator during a burst of 100 creates: exactly 100 services after it restarts', async () => {
    const BURST = 100;
    const managed = async () => {
      const all = (await cluster.manager.docker.listServices({
        filters: JSON.stringify({ label: [`${LABELS.managedBy}=nbswarm`] }),
      } as any)) as unknown as any[];
      return all.filter((s) => String(s.Spec?.Name ?? '').startsWith(`${env.prefix}-`));
    };
    // The operator as its own process (the in-process one steps aside), on the node's socket.
    await env.op.stop();
    tmp = mkdtempSync(join(tmpdir(), 'nbswarm-fault-'));
    const policyFile = join(tmp, 'policy.yaml');
    writeFileSync(policyFile, YAML.stringify(env.policy));
    const startChild = () =>
      spawn(process.execPath, [CLI, 'operator', '--kubeconfig', env.kubeconfig, '--policy', policyFile, '--backend', 'service'], {
        env: { ...process.env, DOCKER_HOST: cluster.dockerHost, NBSWARM_LOG_LEVEL: 'error' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    child = startChild();
    const burst = Array.from({ length: BURST }, (_, i) => `b${i}`);
    await env.kubectl(['apply', '-f', '-'], burst.map((n) => nbsYaml(n, { user: n, command: HTTPD })).join('---\n'));
    await waitFor('the burst under way', async () => (await managed()).length >= COUNT + 25, 120_000, 100);
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    const atKill = (await managed()).length;
    child = startChild();
    await waitFor(`${COUNT + BURST} services`, async () => (await managed()).length >= COUNT + BURST, 240_000, 500);
    // Settled: nothing more appears.
    await new Promise((r) => setTimeout(r, 5000));
    const services = await managed();
    console.log(`      [fault] operator killed at ${atKill - COUNT}/${BURST} services; ${services.length - COUNT} after restart`);
    expect(services).to.have.length(COUNT + BURST);
    const byUid = new Map<string, number>();
    for (const s of services) byUid.set(s.Spec.Labels[LABELS.uid], (byUid.get(s.Spec.Labels[LABELS.uid]) ?? 0) + 1);
    expect(
      [...byUid.values()].every((n) => n === 1),
      'one service per server',
    ).to.equal(true);
    for (const n of burst) expect(byUid.get((await getNbs(env, n)).metadata.uid!), n).to.equal(1);
  });
});
