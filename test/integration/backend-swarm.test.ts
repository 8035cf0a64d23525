/**
 * Swarm backend against the real dockerd in Swarm mode: create, observe, HTTP through the
 * mode=host published port, no-op apply, update in place, stop/start with the volume kept,
 * remove, image pinning and the error for a missing image.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import Dockerode from 'dockerode';
import { startCountingProxy, type CallCounts } from '../../bench/lib/docker-proxy.js';
import { Subscription } from 'rxjs';
import { LABELS } from '../../src/api/types.js';
import { createBackend, detectBackendKind } from '../../src/backends/docker.js';
import { SwarmBackend } from '../../src/backends/swarm.js';
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

describe('backend: Swarm services (real dockerd)', function () {
  this.timeout(90_000);
  let docker: Docker;
  let backend: SwarmBackend;
  let image: ResolvedImage;
  const events: BackendEvent[] = [];
  let eventsSub: Subscription | undefined;

  before(async () => {
    ({ docker } = await requireDocker({ swarm: true }));
    backend = (await createBackend('service', { docker })) as SwarmBackend;
    eventsSub = backend.events().subscribe((e) => events.push(e));
    image = await backend.resolveImage(TEST_IMAGE, 'never');
  });

  after(async () => {
    eventsSub?.unsubscribe();
    await backend?.close();
    if (docker) await cleanupDocker(docker);
  });

  async function running(uid: string, what = 'running task with a published port'): Promise<ObservedServer> {
    return waitFor(what, async () => {
      const [o] = await backend.find(uid);
      return o && o.state === 'running' && o.hostPort && o.containerId ? o : undefined;
    });
  }

  it('auto-detects the service backend from docker info', async () => {
    expect(await detectBackendKind(docker)).to.equal('service');
    const auto = await createBackend('auto', { docker });
    expect(auto.kind).to.equal('service');
    await auto.close();
  });

  it('pins a tag-only local image to its image ID', () => {
    expect(image.reference).to.equal(TEST_IMAGE);
    expect(image.id).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(image.digestReference).to.equal(undefined);
    expect(image.pinned).to.equal(image.id);
  });

  it('refuses a missing image with pullPolicy never, with a hint', async () => {
    const err = await backend.resolveImage('local/does-not-exist:nope', 'never').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(BackendError);
    expect((err as BackendError).reason).to.equal('ImageNotFound');
    expect((err as BackendError).hint).to.match(/pullPolicy is never/);
    expect((err as BackendError).message).to.contain('local/does-not-exist:nope');
  });

  it('runs a server as one service: create, observe, HTTP, no-op, update, stop/start, remove', async () => {
    const name = uniqueName('nbs-test-swarm');
    const vol = `${name}-home`;
    let d = testDesiredServer({
      dockerName: name,
      env: { GREETING: 'one' },
      volumes: [{ type: 'volume', source: vol, target: '/home/jovyan', labels: testLabels() }],
    });

    // create
    const created = await backend.apply(d, image);
    expect(created.action).to.equal('created');
    const svc: any = await docker.getService(created.observed.id).inspect();
    const cs = svc.Spec.TaskTemplate.ContainerSpec;
    expect(cs.Image, 'service must be pinned, never a bare tag').to.equal(image.id);
    expect(cs.Image).to.not.contain(':test');
    expect(svc.Spec.Labels[LABELS.uid]).to.equal(d.uid);
    expect(cs.Labels[LABELS.uid], 'tasks carry the labels too').to.equal(d.uid);
    expect(svc.Spec.Labels[LABELS.image]).to.equal(TEST_IMAGE);
    expect(cs.CapabilityDrop).to.deep.equal(['ALL']);
    expect(svc.Spec.TaskTemplate.Resources.Limits).to.include({ NanoCPUs: 500_000_000, MemoryBytes: 64 * 1024 * 1024, Pids: 64 });
    expect(svc.Spec.TaskTemplate.RestartPolicy.Condition).to.equal('on-failure');
    expect(svc.Spec.Mode.Replicated.Replicas).to.equal(1);
    const vinfo: any = await docker.getVolume(vol).inspect();
    expect(vinfo.Labels[LABELS.volume]).to.equal('true');

    // observe + HTTP through the published port read back from the task
    let obs = await running(d.uid);
    expect(obs.kind).to.equal('service');
    expect(obs.name).to.equal(name);
    expect(obs.specHash).to.equal(d.specHash);
    expect(obs.node).to.be.a('string').and.not.equal('');
    expect(obs.hostIp).to.equal('127.0.0.1');
    const body = await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`);
    expect(body).to.contain('nbswarm test image');
    const c: any = await docker.getContainer(obs.containerId!).inspect();
    expect(c.Config.Labels[LABELS.uid], 'task container labelled').to.equal(d.uid);
    expect(c.Config.Env).to.include('GREETING=one');
    expect(c.HostConfig.CapDrop).to.deep.equal(['ALL']);
    expect(c.HostConfig.PidsLimit).to.equal(64);

    // listManaged sees it
    const managed = await backend.listManaged();
    expect(managed.map((m) => m.id)).to.include(obs.id);

    // a file in the volume, to follow through stop/start
    const w = await execIn(docker, obs.containerId!, ['sh', '-c', 'echo kept > /home/jovyan/note.txt']);
    expect(w.exitCode, w.output).to.equal(0);

    // unchanged: same hash → zero writes (Version index unchanged, no service event in the window)
    const before: any = await docker.getService(obs.id).inspect();
    const t0 = Date.now();
    const same = await backend.apply(d, image, obs);
    const same2 = await backend.apply(d, image); // without a cached observation: reads only
    const t1 = Date.now();
    expect(same.action).to.equal('unchanged');
    expect(same2.action).to.equal('unchanged');
    const afterNoop: any = await docker.getService(obs.id).inspect();
    expect(afterNoop.Version.Index).to.equal(before.Version.Index);
    const window = (await dockerEventsBetween(docker, Math.floor(t0 / 1000), Math.ceil(t1 / 1000) + 1, { type: ['service'] })).filter(
      (e) => e.Actor?.ID === obs.id && e.timeNano / 1e6 >= t0 && e.timeNano / 1e6 <= t1,
    );
    expect(window, 'no service write during the no-op applies').to.deep.equal([]);

    // update in place: same service, new hash, new env
    d = withHash({ ...d, env: { GREETING: 'two' }, generation: 2 });
    const updated = await backend.apply(d, image, obs);
    expect(updated.action).to.equal('updated');
    expect(updated.observed.id).to.equal(obs.id);
    expect((await backend.find(d.uid)).length).to.equal(1);
    obs = await waitFor('updated task running', async () => {
      const [o] = await backend.find(d.uid);
      if (!o || o.state !== 'running' || !o.containerId || !o.hostPort) return undefined;
      const ci: any = await docker.getContainer(o.containerId).inspect();
      return ci.Config.Env.includes('GREETING=two') ? o : undefined;
    });
    expect(obs.specHash).to.equal(d.specHash);
    expect((await docker.getService(obs.id).inspect()).Spec.Labels[LABELS.generation]).to.equal('2');
    await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`);

    // stop: scale to 0, volume kept
    const stopped = await backend.apply({ ...d, stopped: true }, image, obs);
    expect(stopped.action).to.equal('stopped');
    expect(stopped.observed.replicas).to.equal(0);
    // The backend stops the task's container itself (no wait for Swarm's gossip pause): once the
    // stop returns, the container has exited and Swarm did not take that for a crash to restart.
    const exited: any = await docker.getContainer(obs.containerId!).inspect();
    expect(exited.State.Running).to.equal(false);
    expect(stopped.observed.state).to.be.oneOf(['running', 'stopped']);
    await waitFor('task shut down', async () => {
      const [o] = await backend.find(d.uid);
      return o && o.state === 'stopped' ? o : undefined;
    });
    const tasks: any[] = await docker.listTasks({ filters: JSON.stringify({ service: [obs.id] }) });
    expect(tasks.filter((t) => t.DesiredState === 'running')).to.deep.equal([]);
    await docker.getVolume(vol).inspect();
    const again = await backend.apply({ ...d, stopped: true }, image);
    expect(again.action).to.equal('unchanged');

    // start: scale to 1, the file written before is still there
    const started = await backend.apply(d, image, again.observed);
    expect(started.action).to.equal('started');
    obs = await waitFor('restarted task', async () => {
      const [o] = await backend.find(d.uid);
      return o && o.state === 'running' && o.containerId && o.containerId !== stopped.observed.containerId ? o : undefined;
    });
    const r = await execIn(docker, obs.containerId!, ['cat', '/home/jovyan/note.txt']);
    expect(r.output.trim()).to.equal('kept');

    // events: the stream saw this server's service and task events, mapped to its uid
    await waitFor('backend events for the server', async () => events.some((e) => e.uid === d.uid && e.type === 'service'));
    expect(events.some((e) => e.uid === d.uid && (e.type === 'task' || e.type === 'container') && e.action === 'start')).to.equal(true);

    // commit (source-server images) and remove the image again
    const imgId = await backend.commitImage(obs, `local/nbs-test-commit-${TEST_RUN_ID}`, 'g1', { ...testLabels(), 'nbswarm.io/source-uid': d.uid });
    const img: any = await docker.getImage(imgId).inspect();
    expect(img.Config.Labels['nbswarm.io/source-uid']).to.equal(d.uid);
    await backend.removeImage(imgId);
    const gone = await docker
      .getImage(imgId)
      .inspect()
      .then(
        () => false,
        (e: any) => e.statusCode === 404,
      );
    expect(gone).to.equal(true);
    await backend.removeImage(imgId); // idempotent

    // remove: service gone, volume kept
    await backend.remove(obs);
    expect(await backend.find(d.uid)).to.deep.equal([]);
    await docker.getVolume(vol).inspect();
    await backend.remove(obs); // idempotent
  });

  it('runs on the host network: attached to "host", nothing published', async () => {
    const port = await freePort();
    const { desired: d, page, www } = hostNetworkTestServer('nbs-test-swarmhost', port);
    const res = await backend.apply(d, image);
    expect(res.action).to.equal('created');
    const svc: any = await docker.getService(res.observed.id).inspect();
    expect(svc.Spec.EndpointSpec?.Ports ?? []).to.deep.equal([]);
    expect(svc.Spec.TaskTemplate.Networks).to.have.length(1);
    const obs = await waitFor('host-network task', async () => {
      const [o] = await backend.find(d.uid);
      return o?.state === 'running' ? o : undefined;
    });
    expect(obs.hostPort).to.equal(port);
    const hc: any = await docker.getContainer(obs.containerId!).inspect();
    expect(hc.HostConfig.NetworkMode).to.equal('host');
    const id = await execIn(docker, obs.containerId!, ['sh', '-c', 'id -u; id -G; pwd; echo $NB_PORT']);
    expect(id.output.trim().split('\n')).to.deep.equal(['1000', '100 65534', '/tmp', String(port)]);
    expect(await waitForHttp(`http://127.0.0.1:${port}/`)).to.equal(page);
    const ro = await execIn(docker, obs.containerId!, ['sh', '-c', 'touch /www/x']);
    expect(ro.exitCode, 'bind is read-only').to.not.equal(0);
    await backend.remove(obs);
    rmSync(www, { recursive: true, force: true });
  });

  it("reports a failing command as failed with Docker's error", async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-swarmfail'), command: ['/bin/does-not-exist'] });
    await backend.apply(d, image);
    // Swarm gives up after its restart policy's 5 attempts 2 s apart: ~15 s, more on a busy machine.
    const obs = await waitFor(
      'failed task',
      async () => {
        const [o] = await backend.find(d.uid);
        return o && (o.state === 'failed' || o.state === 'rejected') ? o : undefined;
      },
      90_000,
    );
    expect(obs.message).to.match(/non-zero exit \(127\)|does-not-exist/);
    await backend.remove(obs);
  });

  it('attaches to an overlay network where the service name reaches the server', async () => {
    const net = uniqueName('nbs-test-overlay');
    await docker.createNetwork({ Name: net, Driver: 'overlay', Attachable: true, Labels: testLabels() } as any);
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-swarmnet'), network: net });
    await backend.apply(d, image);
    const obs = await running(d.uid);
    const svc: any = await docker.getService(obs.id).inspect();
    expect(svc.Spec.TaskTemplate.Networks).to.have.length(1);
    expect(svc.Spec.TaskTemplate.Networks[0].Aliases).to.deep.equal([d.dockerName]);
    expect(svc.Spec.EndpointSpec.Mode).to.equal('dnsrr');
    // From inside the network (the server's own container), by name: what endpoint.url relies on.
    const got = await waitFor('service name answering on the overlay', async () => {
      const r = await execIn(docker, obs.containerId!, ['wget', '-qO-', `http://${d.dockerName}:8888/`]);
      return r.exitCode === 0 ? r.output : undefined;
    });
    expect(got).to.contain('nbswarm test image');
    // And still published on the host.
    expect(await waitForHttp(`http://127.0.0.1:${obs.hostPort}/`)).to.contain('nbswarm test image');
    await backend.remove(obs);
  });

  it('two applies in a row create one service, even right after a list that did not have it', async () => {
    const d = testDesiredServer({ dockerName: uniqueName('nbs-test-svc2x') });
    expect((await backend.listManaged()).filter((o) => o.labels[LABELS.uid] === d.uid)).to.deep.equal([]);
    expect((await backend.apply(d, image)).action).to.equal('created');
    expect((await backend.apply(d, image)).action).to.equal('unchanged');
    const onDocker = await docker.listServices({ filters: JSON.stringify({ label: [`${LABELS.uid}=${d.uid}`] }) } as object);
    expect(onDocker.length).to.equal(1);
    // listManaged with a scope sees only names with that prefix.
    expect((await backend.listManaged({ prefix: d.dockerName })).map((o) => o.labels[LABELS.uid])).to.deep.equal([d.uid]);
    expect(await backend.listManaged({ prefix: `${d.dockerName}-nothing` })).to.deep.equal([]);
    for (const o of await backend.find(d.uid)) await backend.remove(o);
    expect(await backend.find(d.uid)).to.deep.equal([]);
  });

  it('an idle apply of a server with secret files asks Docker for no secrets; a changed file makes a new secret and prunes the old', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbs-proxy-'));
    const proxy = await startCountingProxy(join(dir, 'docker.sock'));
    const counted = (await createBackend('service', { docker: new Dockerode({ socketPath: proxy.socketPath }) })) as SwarmBackend;
    const secretCalls = (from: CallCounts) =>
      Object.entries(proxy.since(from).byKind)
        .filter(([k]) => k.includes('/secrets'))
        .reduce((n, [, v]) => n + v, 0);
    try {
      const d = withHash({
        ...testDesiredServer({ dockerName: uniqueName('nbs-test-secrets') }),
        secretFiles: [{ name: 'nbswarm-git-credentials', data: 'one' }],
      });
      expect((await counted.apply(d, image)).action).to.equal('created');
      const secretsOf = async () =>
        (await docker.listSecrets({ filters: JSON.stringify({ label: [`${LABELS.uid}=${d.uid}`] }) } as object)).map((x: any) => x.ID);
      const first = await secretsOf();
      expect(first).to.have.length(1);

      const before = proxy.counts();
      for (let i = 0; i < 3; i++) expect((await counted.apply(d, image)).action).to.equal('unchanged');
      expect(secretCalls(before), 'idle applies read the secret refs from the service').to.equal(0);

      const changed = withHash({ ...d, secretFiles: [{ name: 'nbswarm-git-credentials', data: 'two' }] });
      expect((await counted.apply(changed, image)).action).to.equal('updated');
      const second = await secretsOf();
      expect(second).to.have.length(1);
      expect(second[0]).to.not.equal(first[0]);
      for (const o of await counted.find(d.uid)) await counted.remove(o);
      expect(await secretsOf()).to.deep.equal([]);
    } finally {
      await counted.close();
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
