/**
 * Drift on the container backend, against the real dockerd: limits or the restart policy changed
 * with `docker update` are written back (in place, the same container), a limit nbswarm does not
 * set (which Docker's update cannot unset) is reverted by recreating the container, each with a
 * Warning naming what changed; an idle operator writes nothing.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { waitFor } from '../helpers/docker.js';
import { HTTPD, NS, getNbs, nbsYaml, setupEnv, waitReady, type Env } from './operator-harness.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

describe('drift: `docker update` on a managed container (container backend, real dockerd)', function () {
  this.timeout(180_000);
  let env: Env;
  let uid: string;

  const container = async (): Promise<any> => {
    const found = await env.backend.find(uid);
    expect(found, 'one container').to.have.length(1);
    return env.docker.getContainer(found[0]!.id).inspect();
  };
  const events = async () =>
    env.kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=drifty', '-o', 'custom-columns=R:.reason,M:.message', '--no-headers']);
  // The Event is recorded after the Docker writes it tells of: under load, a moment after the test sees them.
  const eventMatching = (re: RegExp) =>
    waitFor(
      `an Event matching ${re}`,
      async () => {
        const e = await events();
        if (!re.test(e)) throw new Error(`the Events so far:\n${e}`);
        return e;
      },
      30_000,
      250,
    );
  /** Resync every server twice over; the count of Docker writes must not move. */
  const idleWrites = async (): Promise<number> => {
    await env.op.queue.whenIdle();
    const before = env.op.stats().reconciler.dockerWrites;
    for (let i = 0; i < 2; i++) {
      for (const k of env.op.informer.keys()) env.op.queue.enqueue(k, 'resync', 'low');
      await new Promise((r) => setTimeout(r, 500));
      await env.op.queue.whenIdle();
    }
    return env.op.stats().reconciler.dockerWrites - before;
  };

  before(async () => {
    env = await setupEnv('container');
    await env.kubectl(['apply', '-f', '-'], nbsYaml('drifty', { user: 'drifty', command: HTTPD }));
    uid = (await waitReady(env, 'drifty')).metadata.uid!;
  });
  after(async () => {
    await env?.close();
  });

  it('an idle server (observed by inspect, as after an event) is not drift: nothing is written', async () => {
    // A Docker event (an update that changes nothing) makes the next read an inspect, which
    // carries the config drift is judged on.
    await run('docker', ['update', '--restart', 'unless-stopped', (await container()).Id]);
    await new Promise((r) => setTimeout(r, 500));
    expect(await idleWrites(), JSON.stringify(env.op.stats().reconciler.actions)).to.equal(0);
  });

  it('memory, CPU and restart policy changed with `docker update` are written back in place', async () => {
    const c0 = await container();
    expect(c0.HostConfig).to.include({ Memory: 64 * MiB, NanoCpus: 5e8 });
    expect(c0.HostConfig.RestartPolicy.Name).to.equal('unless-stopped');
    await run('docker', ['update', '--memory', '200m', '--memory-swap', '400m', '--cpus', '1', '--restart', 'no', c0.Id]);
    const c1 = await waitFor(
      'the limits and restart policy written back',
      async () => {
        const c = await container();
        return c.HostConfig.Memory === 64 * MiB && c.HostConfig.NanoCpus === 5e8 && c.HostConfig.RestartPolicy.Name === 'unless-stopped' ? c : undefined;
      },
      30_000,
      250,
    );
    expect(c1.Id, 'the same container, updated in place').to.equal(c0.Id);
    expect(c1.HostConfig.MemorySwap).to.equal(128 * MiB);
    await eventMatching(/DriftReverted\s+container \S+ had been changed outside nbswarm \((?=[^)]*Memory)(?=[^)]*NanoCpus)(?=[^)]*RestartPolicy)[^)]*\)/);
    expect((await getNbs(env, 'drifty')).status?.phase).to.equal('Running');
    expect(await idleWrites(), 'settled: a resync writes nothing').to.equal(0);
  });

  it('a limit nbswarm leaves unset (Docker cannot unset it in place): the container is recreated without it', async () => {
    const c0 = await container();
    await run('docker', ['update', '--memory-reservation', '32m', c0.Id]);
    const c1 = await waitFor(
      'a new container without the reservation',
      async () => {
        const c = await container().catch(() => undefined);
        return c && c.Id !== c0.Id && !c.HostConfig.MemoryReservation ? c : undefined;
      },
      60_000,
      250,
    );
    expect(c1.HostConfig.Memory).to.equal(64 * MiB);
    await eventMatching(/DriftReverted\s+container \S+ had been changed outside nbswarm \(MemoryReservation\)/);
    await waitReady(env, 'drifty');
    expect(await idleWrites(), 'settled: a resync writes nothing').to.equal(0);
  });
});
