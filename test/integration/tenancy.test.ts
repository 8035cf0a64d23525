/**
 * Tenancy and operator correctness against the real dockerd (Swarm services): servers of one user
 * in two namespaces share no Docker name or volume; a server created under the earlier naming is
 * adopted on upgrade, not renamed; a name held by someone else's object is never taken over;
 * servers run as uid 1000 with limits by default; a missing local/… image is reported, never
 * pulled; a change made by hand to a managed service is reverted (and an idle operator writes
 * nothing); a re-tagged image is taken when the server restarts, not while it runs.
 */
import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { GROUP, LABELS, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { HTTPD, dockerExec, reconcileAgain, setupEnv, type Env } from './operator-harness.js';

const run = promisify(execFile);

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { timeout: 60_000, maxBuffer: 8 << 20 })).stdout.trim();
}

describe('tenancy and drift (service backend, real dockerd)', function () {
  this.timeout(180_000);
  let env: Env;
  const handMade: string[] = [];
  const builtImages: string[] = [];

  const yaml = (ns: string, name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) =>
    JSON.stringify({
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'NotebookServer',
      metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
      spec,
    });
  const get = async (ns: string, name: string) =>
    (await env.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name })) as NotebookServer;
  const running = (ns: string, name: string, ms = 90_000) =>
    waitFor(
      `${ns}/${name} Running`,
      async () => {
        const o = await get(ns, name);
        return o.status?.phase === 'Running' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
      },
      ms,
    );
  const service = async (uid: string): Promise<any> => {
    const found = await env.backend.find(uid);
    expect(found, `one service for ${uid}`).to.have.length(1);
    return env.docker.getService(found[0]!.id).inspect();
  };
  const events = async (ns: string, name: string) =>
    env.kubectl(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`, '-o', 'custom-columns=R:.reason,M:.message', '--no-headers']);

  before(async () => {
    env = await setupEnv('service', {
      nameTemplate: '{prefix}-{namespace}-{username}-{servername}',
      volumes: [{ name: '{prefix}-{namespace}-{username}-home', target: '/home/jovyan', type: 'volume' }],
      pullPolicy: 'ifNotPresent',
    });
    for (const ns of ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-d', 'tenant-e']) await env.kubectl(['create', 'namespace', ns]);
  });
  after(async () => {
    for (const s of handMade) await docker('service', 'rm', s).catch(() => undefined);
    await env?.close();
    for (const id of builtImages) await docker('image', 'rm', id).catch(() => undefined);
  });

  it('alice in two namespaces: two services, two volumes, each labelled for its namespace', async () => {
    for (const ns of ['tenant-a', 'tenant-b']) await env.kubectl(['apply', '-f', '-'], yaml(ns, 'alice', { user: 'alice', command: HTTPD }));
    const [a, b] = [await running('tenant-a', 'alice'), await running('tenant-b', 'alice')];
    const [sa, sb] = [await service(a.metadata.uid!), await service(b.metadata.uid!)];
    expect(sa.Spec.Name).to.equal(`${env.prefix}-tenant-a-alice`);
    expect(sb.Spec.Name).to.equal(`${env.prefix}-tenant-b-alice`);
    const vol = (s: any) => s.Spec.TaskTemplate.ContainerSpec.Mounts.find((m: any) => m.Target === '/home/jovyan').Source;
    expect([vol(sa), vol(sb)]).to.deep.equal([`${env.prefix}-tenant-a-alice-home`, `${env.prefix}-tenant-b-alice-home`]);
    const labels = (await env.docker.getVolume(vol(sb)).inspect()).Labels;
    expect(labels).to.include({ [LABELS.namespace]: 'tenant-b', [LABELS.user]: 'alice' });
  });

  it("by default a server runs as uid 1000:100 (not the image's root) with memory, CPU and pids limits", async () => {
    const a = await get('tenant-a', 'alice');
    const [obs] = await env.backend.find(a.metadata.uid!);
    expect((await service(a.metadata.uid!)).Spec.TaskTemplate.ContainerSpec.User).to.equal('1000:100');
    expect((await dockerExec(env.docker, obs!.containerId!, ['id'])).trim()).to.match(/^uid=1000\b.* gid=100\b/);
    // An image whose USER is root runs as 1000:100 too.
    const rootImage = `local/${env.prefix}-root:1`;
    execFileSync('docker', ['build', '-q', '-t', rootImage, '-'], { input: `FROM ${TEST_IMAGE}\nUSER root\n`, timeout: 60_000 });
    builtImages.push(rootImage);
    await env.kubectl(['apply', '-f', '-'], yaml('tenant-a', 'rooty', { user: 'rooty', image: rootImage, command: HTTPD }));
    const rooty = await running('tenant-a', 'rooty');
    const [ro] = await env.backend.find(rooty.metadata.uid!);
    expect((await dockerExec(env.docker, ro!.containerId!, ['id', '-u'])).trim()).to.equal('1000');
    const c: any = await env.docker.getContainer(obs!.containerId!).inspect();
    expect(c.HostConfig.Memory).to.equal(64 * 2 ** 20);
    expect(c.HostConfig.NanoCpus).to.equal(0.5e9);
    expect(c.HostConfig.PidsLimit).to.equal(1024);
  });

  it('upgrade: a server created under the earlier names keeps its service and volume, without a write', async () => {
    const old = { nameTemplate: env.policy.nameTemplate, volumes: env.policy.volumes };
    Object.assign(env.policy, {
      nameTemplate: '{prefix}-{username}-{servername}',
      volumes: [{ name: '{prefix}-{username}-home', target: '/home/jovyan', type: 'volume' }],
    });
    await env.restartOperator();
    await env.kubectl(['apply', '-f', '-'], yaml('tenant-c', 'carol', { user: 'carol', command: HTTPD }));
    const c = await running('tenant-c', 'carol');
    const before = await service(c.metadata.uid!);
    expect(before.Spec.Name).to.equal(`${env.prefix}-carol`);
    Object.assign(env.policy, old);
    const op = await env.restartOperator();
    await waitFor(
      'carol reconciled by the new operator',
      async () => op.stats().reconciler.reconciles > 0 && (await get('tenant-c', 'carol')).status?.phase === 'Running',
    );
    await reconcileAgain(env, 'carol', 'tenant-c');
    await new Promise((r) => setTimeout(r, 3000));
    const after = await service(c.metadata.uid!);
    expect(after.ID).to.equal(before.ID);
    expect(after.Spec.Name).to.equal(`${env.prefix}-carol`);
    expect(after.Version.Index).to.equal(before.Version.Index);
    expect(after.Spec.TaskTemplate.ContainerSpec.Mounts[0].Source).to.equal(`${env.prefix}-carol-home`);
  });

  it('a name held by an object nbswarm does not own is left alone: the server gets a suffixed name', async () => {
    const taken = `${env.prefix}-tenant-d-bob`;
    handMade.push(taken);
    const id = await docker('service', 'create', '--detach', '--quiet', '--name', taken, '--replicas', '0', TEST_IMAGE, 'sleep', '1000');
    await env.kubectl(['apply', '-f', '-'], yaml('tenant-d', 'bob', { user: 'bob', command: HTTPD }));
    const bob = await running('tenant-d', 'bob');
    const s = await service(bob.metadata.uid!);
    expect(s.Spec.Name).to.match(new RegExp(`^${taken}-[0-9a-f]{8}$`));
    expect((await env.docker.getService(id).inspect()).Spec.Labels ?? {}).not.to.have.property(LABELS.uid);
    expect(await events('tenant-d', 'bob')).to.match(new RegExp(`NameTaken\\s+the service name ${taken} is held by an object nbswarm does not manage`));
  });

  it('a missing local/… image is reported, never pulled from Docker Hub, though pullPolicy is ifNotPresent', async () => {
    const image = `local/${env.prefix}-missing:1`;
    env.policy.allowedImages = ['local/*'];
    await env.kubectl(['apply', '-f', '-'], yaml('tenant-e', 'eve', { user: 'eve', image: `docker.io/${image}`, command: HTTPD }));
    const eve = await waitFor(
      'eve ImageNotFound',
      async () => {
        const o = await get('tenant-e', 'eve');
        return o.status?.conditions?.find((c) => c.reason === 'ImageNotFound') ? o : undefined;
      },
      60_000,
    );
    expect(eve.status?.message).to.contain('the pull policy is "never"');
    expect(await env.backend.find(eve.metadata.uid!)).to.deep.equal([]);
  });

  it('drift: `docker service update --env-add` is reverted, with a Warning naming what changed; idle, nothing is written', async () => {
    const a = await get('tenant-a', 'alice');
    const name = `${env.prefix}-tenant-a-alice`;
    await docker('service', 'update', '--detach', '--env-add', 'DRIFT=1', name);
    await waitFor(
      'drift reverted',
      async () => {
        const s = await service(a.metadata.uid!);
        return !(s.Spec.TaskTemplate.ContainerSpec.Env ?? []).includes('DRIFT=1') ? s : undefined;
      },
      30_000,
    );
    expect(await events('tenant-a', 'alice')).to.match(/DriftReverted\s+service \S+ had been changed outside nbswarm \(TaskTemplate\.ContainerSpec\.Env\)/);
    await running('tenant-a', 'alice');
    // Settled: a resync of every server writes nothing.
    await new Promise((r) => setTimeout(r, 2000));
    await env.op.queue.whenIdle();
    const writes = env.op.stats().reconciler.dockerWrites;
    const index = (await service(a.metadata.uid!)).Version.Index;
    for (const k of env.op.informer.keys()) env.op.queue.enqueue(k, 'resync', 'low');
    await new Promise((r) => setTimeout(r, 1000));
    await env.op.queue.whenIdle();
    expect(env.op.stats().reconciler.dockerWrites, JSON.stringify(env.op.stats().reconciler.actions)).to.equal(writes);
    expect((await service(a.metadata.uid!)).Version.Index).to.equal(index);
  });

  it('a re-tagged image: the running server keeps its image; on restart it takes the new one; "immediate" moves at once', async () => {
    const tag = `local/${env.prefix}-img:1`;
    const idOf = async (ref: string) => docker('image', 'inspect', '--format', '{{.Id}}', ref);
    await docker('tag', TEST_IMAGE, tag);
    const first = await idOf(tag);
    await env.kubectl(['apply', '-f', '-'], yaml('tenant-e', 'fay', { user: 'fay', image: tag, command: HTTPD }));
    const fay = await running('tenant-e', 'fay');
    const image = async () => (await service(fay.metadata.uid!)).Spec.TaskTemplate.ContainerSpec.Image as string;
    expect(await image()).to.equal(first);
    // Re-tag: the tag now names another image (built offline from the test image).
    execFileSync('docker', ['build', '-q', '-t', tag, '-'], { input: `FROM ${TEST_IMAGE}\nLABEL nbswarm.test.retag=${env.prefix}\n`, timeout: 60_000 });
    const second = await idOf(tag);
    builtImages.push(second);
    expect(second).not.to.equal(first);
    await reconcileAgain(env, 'fay', 'tenant-e');
    await new Promise((r) => setTimeout(r, 3000));
    expect(await image(), 'a running server is not restarted for a moved tag').to.equal(first);
    await env.kubectl(['annotate', '-n', 'tenant-e', 'nbs/fay', 'nbswarm.io/stopped=test']);
    await waitFor('fay stopped', async () => (await get('tenant-e', 'fay')).status?.phase === 'Stopped', 60_000);
    await env.kubectl(['annotate', '-n', 'tenant-e', 'nbs/fay', 'nbswarm.io/stopped-']);
    await waitFor('fay runs the new image', async () => (await image()) === second, 60_000);
    await running('tenant-e', 'fay');
    // And back, at once, when the server asks for it.
    await docker('tag', first, tag);
    await env.kubectl(['annotate', '-n', 'tenant-e', 'nbs/fay', 'nbswarm.io/image-updates=immediate']);
    await waitFor('fay moved at once', async () => (await image()) === first, 60_000);
  });
});
