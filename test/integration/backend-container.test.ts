/**
 * Plain-container backend against the real dockerd: create with `-p 127.0.0.1::8888`, observe
 * the port from inspect, HTTP, no-op apply, recreate on a spec change, stop/start keeping the
 * container and the volume, remove, host networking, missing image.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import type Docker from 'dockerode';
import { Subscription } from 'rxjs';
import { LABELS } from '../../src/api/types.js';
import { ContainerBackend } from '../../src/backends/container.js';
import { createBackend } from '../../src/backends/docker.js';
import { BackendError, type BackendEvent, type ObservedServer, type ResolvedImage } from '../../src/backends/types.js';
import {
  cleanupDocker,
  dockerEventsBetween,
  execIn,
  freePort,
  requireDocker,
  TEST_IMAGE,
  TEST_RUN_ID,
  hostNetworkTestServer,
  testDesiredServer,
  testLabels,
  uniqueName,
  waitFor,
  waitForHttp,
  withHash,
} from '../helpers/docker.js';

describe('backend: plain containers (real dockerd)', function () {
  this.timeout(90_000);
  let docker: Docker;
  let backend: ContainerBackend;
  let image: ResolvedImage;
  const events: BackendEvent[] = [];
  let eventsSub: Subscription | undefined;

  before(async () => {
    ({ docker } = await requireDocker());
    backend = (await createBackend('container', { docker })) as ContainerBackend;
    expect(backend.kind).to.equal('container');
    eventsSub = backend.events().subscribe((e) => events.push(e));
    image = await backend.resolveImage(TEST_IMAGE, 'never');
  });

  after(async () => {
    eventsSub?.unsubscribe();
    await backend?.close();
    if (docker) await cleanupDocker(docker);
  });

  async function running(uid: string): Promise<ObservedServer> {
    return waitFor('running container with a published port', async () => {
      const [o] = await backend.find(uid);
      return o && o.state === 'running' && o.hostPort ? o : undefined;
    });
  }

  it('refuses a missing image with pullPolicy never, with a hint', async () => {
    const err = await backend.resolveImage(`local/missing-${TEST_RUN_ID}:x`, 'never').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as BackendError).reason).to.equal('ImageNotFound');
    expect((err as BackendError).dockerCall).to.contain('docker image inspect');
    expect((err as BackendError).hint).to.match(/build it or `docker load` it/);
  });

  it('runs a server as one container: create, observe, HTTP, no-op, recreate, stop/start, remove', async () => {
    const name = uniqueName('nbs-test-ctr');
    const vol = `${name}-home`;
    let d = testDesiredServer({
      dockerName: name,
      env: { GREETING: 'one' },
      volumes: [{ type: 'volume', source: vol, target: '/home/jovyan', labels: testLabels() }],
    });

    const created = await backend.apply(d, image);
    expect(created.action).to.equal('created');
    let obs = await running(d.uid);
    expect(obs.id).to.equal(created.observed.id);
    expect(obs.hostIp).to.equal('127.0.0.1');
    expect(obs.specHash).to.equal(d.specHash);
    expect(await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`)).to.contain('nbswarm test image');

    const c: any = await docker.getContainer(obs.id).inspect();
    expect(c.Config.Labels[LABELS.uid]).to.equal(d.uid);
    expect(c.Config.Labels[LABELS.image]).to.equal(TEST_IMAGE);
    expect(c.Image).to.equal(image.id);
    expect(c.HostConfig.PortBindings['8888/tcp']).to.deep.equal([{ HostIp: '127.0.0.1', HostPort: '' }]);
    expect(c.HostConfig.SecurityOpt).to.deep.equal(['no-new-privileges:true']);
    expect(c.HostConfig.CapDrop).to.deep.equal(['ALL']);
    expect(c.HostConfig.PidsLimit).to.equal(64);
    expect(c.HostConfig.Memory).to.equal(64 * 1024 * 1024);
    expect(c.HostConfig.NanoCpus).to.equal(500_000_000);
    expect(c.HostConfig.RestartPolicy.Name).to.equal('unless-stopped');
    const nnp = await execIn(docker, obs.id, ['grep', 'NoNewPrivs', '/proc/self/status']);
    expect(nnp.output).to.match(/NoNewPrivs:\s+1/);
    expect(((await docker.getVolume(vol).inspect()) as any).Labels[LABELS.volume]).to.equal('true');

    expect((await backend.listManaged()).map((m) => m.id)).to.include(obs.id);
    const w = await execIn(docker, obs.id, ['sh', '-c', 'echo kept > /home/jovyan/note.txt']);
    expect(w.exitCode, w.output).to.equal(0);

    // unchanged → no Docker write in the window
    const t0 = Date.now();
    expect((await backend.apply(d, image, obs)).action).to.equal('unchanged');
    expect((await backend.apply(d, image)).action).to.equal('unchanged');
    const t1 = Date.now();
    const writes = (await dockerEventsBetween(docker, Math.floor(t0 / 1000), Math.ceil(t1 / 1000) + 1, { type: ['container'] })).filter(
      (e) => e.Actor?.ID === obs.id && e.timeNano / 1e6 >= t0 && e.timeNano / 1e6 <= t1 && !String(e.Action).startsWith('exec_'),
    );
    expect(writes, 'no container write during the no-op applies').to.deep.equal([]);

    // spec change → recreated: one container, new ID, same name, volume content carried over
    d = withHash({ ...d, env: { GREETING: 'two' }, generation: 2 });
    const re = await backend.apply(d, image, obs);
    expect(re.action).to.equal('recreated');
    expect(re.observed.id).to.not.equal(obs.id);
    const all = await backend.find(d.uid);
    expect(all.map((o) => o.id)).to.deep.equal([re.observed.id]);
    obs = await running(d.uid);
    expect(obs.name).to.equal(name);
    expect(((await docker.getContainer(obs.id).inspect()) as any).Config.Env).to.include('GREETING=two');
    expect((await execIn(docker, obs.id, ['cat', '/home/jovyan/note.txt'])).output.trim()).to.equal('kept');
    await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`);

    // stop keeps the container, start runs the same one again
    const st = await backend.apply({ ...d, stopped: true }, image, obs);
    expect(st.action).to.equal('stopped');
    expect(st.observed.state).to.equal('stopped');
    expect(st.observed.id).to.equal(obs.id);
    expect((await backend.apply({ ...d, stopped: true }, image)).action).to.equal('unchanged');
    const started = await backend.apply(d, image);
    expect(started.action).to.equal('started');
    expect(started.observed.id).to.equal(obs.id);
    obs = await running(d.uid);
    expect((await execIn(docker, obs.id, ['cat', '/home/jovyan/note.txt'])).output.trim()).to.equal('kept');
    await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`);

    await waitFor('container events for the server', async () => events.some((e) => e.uid === d.uid && e.type === 'container' && e.action === 'start'));
    expect(events.some((e) => e.uid === d.uid && e.action === 'die')).to.equal(true);
    expect(
      events.some((e) => e.action.startsWith('exec_')),
      'probe noise filtered',
    ).to.equal(false);

    // commit for source-server images; removeImage leaves an image a container still uses
    const imgId = await backend.commitImage(obs, `local/nbs-test-commit-${TEST_RUN_ID}`, 'c1', { ...testLabels(), 'nbswarm.io/source-uid': d.uid });
    const user = await docker.createContainer({ Image: imgId, Cmd: ['true'], Labels: testLabels() });
    await backend.removeImage(imgId);
    await docker.getImage(imgId).inspect(); // still there: a container uses it
    await user.remove();
    await backend.removeImage(imgId);
    expect(
      await docker
        .getImage(imgId)
        .inspect()
        .then(
          () => 'present',
          (e: any) => e.statusCode,
        ),
    ).to.equal(404);

    await backend.remove(obs);
    expect(await backend.find(d.uid)).to.deep.equal([]);
    await docker.getVolume(vol).inspect();
    await backend.remove(obs);
  });

  it("runs on the host network with the server's own port", async () => {
    const port = await freePort();
    const { desired: d, page, www } = hostNetworkTestServer('nbs-test-ctrhost', port);
    const res = await backend.apply(d, image);
    expect(res.action).to.equal('created');
    const obs = await running(d.uid);
    expect(obs.hostPort).to.equal(port);
    const c: any = await docker.getContainer(obs.id).inspect();
    expect(c.HostConfig.NetworkMode).to.equal('host');
    expect(c.HostConfig.PortBindings ?? {}).to.deep.equal({});
    const id = await execIn(docker, obs.id, ['sh', '-c', 'id -u; id -G; pwd; echo $NB_PORT']);
    expect(id.output.trim().split('\n')).to.deep.equal(['1000', '100 65534', '/tmp', String(port)]);
    expect(await waitForHttp(`http://127.0.0.1:${port}/`)).to.equal(page);
    const ro = await execIn(docker, obs.id, ['sh', '-c', 'touch /www/x']);
    expect(ro.exitCode, 'bind is read-only').to.not.equal(0);
    await backend.remove(obs);
    rmSync(www, { recursive: true, force: true });
  });

  it('reports a crashing command as restarting by Docker, with its restart count and exit code', async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctrfail'), command: ['/bin/does-not-exist'] });
    expect((await backend.apply(d, image)).action).to.equal('created');
    // Docker restarts it (unless-stopped) with its own back-off: not failed, but never running for
    // long. Between a restart and the next crash it runs, and Docker has reset its exit code then:
    // no observation may report that as the last failure.
    const failures = new Set<string>();
    const obs = await waitFor('a container Docker restarted', async () => {
      const [o] = await backend.find(d.uid);
      if (o?.lastFailure) failures.add(o.lastFailure);
      return o && (o.restarts ?? 0) >= 2 && o.lastFailure ? o : undefined;
    });
    expect(obs.lastFailure).to.match(/exit code 127/);
    expect(
      [...failures].filter((f) => !/exit code 127/.test(f)),
      'other last failures reported',
    ).to.deep.equal([]);
    expect(obs.state).to.be.oneOf(['starting', 'running']);
    await backend.remove(obs);
    expect(await backend.find(d.uid)).to.deep.equal([]);
  });

  it('wraps Docker failures with the call, the daemon message and a hint', async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctrnet'), network: `nbs-test-no-such-net-${TEST_RUN_ID}` });
    const err = await backend.apply(d, image).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as BackendError).dockerCall).to.match(/^docker (create|start) /);
    expect((err as BackendError).message).to.match(/HTTP \d{3}\).*network .*not found/i);
    expect((err as BackendError).hint).to.match(/network named in the policy does not exist/);
    for (const o of await backend.find(d.uid)) await backend.remove(o);
  });

  it('attaches to a user network with the container name as alias', async () => {
    const net = uniqueName('nbs-test-bridge');
    await docker.createNetwork({ Name: net, Driver: 'bridge', Labels: testLabels() } as any);
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctrnet'), network: net });
    await backend.apply(d, image);
    const obs = await running(d.uid);
    const c: any = await docker.getContainer(obs.id).inspect();
    expect(Object.keys(c.NetworkSettings.Networks)).to.deep.equal([net]);
    expect(c.NetworkSettings.Networks[net].Aliases).to.include(d.dockerName);
    const r = await execIn(docker, obs.id, ['wget', '-qO-', `http://${d.dockerName}:8888/`]);
    expect(r.output).to.contain('nbswarm test image');
    expect(await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`)).to.contain('nbswarm test image');
    await backend.remove(obs);
  });

  it('keeps delivering events after the daemon stream drops', async () => {
    const seen: BackendEvent[] = [];
    const b = (await createBackend('container', { docker, eventsBackoffMs: [50, 500] })) as ContainerBackend;
    const sub = b.events().subscribe((e) => seen.push(e));
    // Two daemon streams: managed objects, and images (for the image-resolution cache).
    await waitFor('event streams open', async () => ((b as any).streams as Set<unknown>).size === 2);
    // Cut the HTTP stream under the backend, as a dockerd restart would.
    for (const s of (b as any).streams as Set<any>) s.destroy();
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctrev') });
    await b.apply(d, image);
    await waitFor('events after reconnect', async () => seen.some((e) => e.uid === d.uid && e.action === 'start'));
    let completed = false;
    b.events().subscribe({ complete: () => (completed = true) });
    await b.close();
    expect(completed, 'close() completes event streams').to.equal(true);
    sub.unsubscribe();
    for (const o of await backend.find(d.uid)) await backend.remove(o);
  });

  it('two applies in a row create one container, even right after a list that did not have it', async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctr2x') });
    // A snapshot taken before the create must not make the second apply create again.
    expect((await backend.listManaged()).filter((o) => o.labels[LABELS.uid] === d.uid)).to.deep.equal([]);
    expect((await backend.apply(d, image)).action).to.equal('created');
    expect((await backend.apply(d, image)).action).to.equal('unchanged');
    const onDocker = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.uid}=${d.uid}`] }) });
    expect(onDocker.length).to.equal(1);
    for (const o of await backend.find(d.uid)) await backend.remove(o);
    expect(await backend.find(d.uid)).to.deep.equal([]);
  });

  it('observes a never-started container of a stopped server as stopped, and sees changes made behind its back', async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-ctrcr'), stopped: true });
    const created = await backend.apply(d, image);
    expect(created.action).to.equal('created');
    expect(created.observed.state).to.equal('stopped');
    const [o] = await backend.find(d.uid);
    expect(o.state).to.equal('stopped');
    expect((await backend.apply(d, image)).action).to.equal('unchanged');
    // Started by someone else: the cached "stopped" must give way (Docker's event), well before the cache's max age.
    await docker.getContainer(o.id).start();
    await waitFor('find to see the container started outside the backend', async () => (await backend.find(d.uid))[0]?.state === 'running', 15_000);
    for (const x of await backend.find(d.uid)) await backend.remove(x);
  });

  it('does not answer image resolution from a stale cache after the tag is removed', async () => {
    const repo = `local/nbs-test-tag-${TEST_RUN_ID}`;
    await docker.getImage(TEST_IMAGE).tag({ repo, tag: 'x' });
    const r = await backend.resolveImage(`${repo}:x`, 'never');
    expect(r.id).to.equal(image.id);
    await docker.getImage(`${repo}:x`).remove();
    await waitFor(
      'resolveImage to notice the removed tag',
      async () =>
        await backend.resolveImage(`${repo}:x`, 'never').then(
          () => false,
          (e: unknown) => e instanceof BackendError && e.reason === 'ImageNotFound',
        ),
      4000,
    );
  });
});
