/**
 * What an operator must do for every server, run against one backend kind (Swarm services or plain containers):
 * real dockerd, real embedded API server, real kubectl, the operator in-process.
 */
import { expect } from 'chai';
import { LABELS, type NotebookServer } from '../../src/api/types.js';
import type { BackendKind } from '../../src/backends/types.js';
import { TEST_IMAGE, dockerEventsBetween, httpGet, sleep, waitFor } from '../helpers/docker.js';
import {
  HTTPD,
  NS,
  containerEnv,
  dockerExec,
  getNbs,
  nbsYaml,
  patchSpec,
  reconcileAgain,
  reconcilesOf,
  setupEnv,
  waitPhase,
  waitReady,
  type Env,
} from './operator-harness.js';

// Exits on SIGTERM (PID 1 ignores signals it has no handler for), so removal does not wait 10 s.
const ORPHAN_CMD = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];
const WRITE_ACTIONS = new Set(['create', 'update', 'destroy', 'start', 'stop', 'die', 'remove', 'kill']);

export function operatorSuite(kind: BackendKind): void {
  describe(`operator with the ${kind} backend`, function () {
    this.timeout(180_000);
    let env: Env;
    const user = 'alice';

    before(async () => {
      env = await setupEnv(kind);
    });
    after(async () => {
      await env?.close();
    });

    const apply = (name: string, spec: Record<string, unknown>, meta?: Record<string, unknown>) => env.kubectl(['apply', '-f', '-'], nbsYaml(name, spec, meta));
    const objectsFor = async (name: string) => env.backend.find((await getNbs(env, name)).metadata.uid!);

    it('kubectl apply → Ready → HTTP GET on status.endpoint.hostUrl reaches the server; default and named servers get two objects', async () => {
      expect(await apply('nb-default', { user, mode: 'custom', command: HTTPD, image: TEST_IMAGE })).to.match(/created/);
      // No spec.mode: the policy's defaultMode (custom here) runs.
      await apply('nb-named', { user, servername: 'dash1', command: HTTPD, image: TEST_IMAGE });
      const a = await waitReady(env, 'nb-default');
      const b = await waitReady(env, 'nb-named');
      for (const o of [a, b]) {
        expect(o.status?.endpoint?.hostUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
        const res = await httpGet(o.status!.endpoint!.hostUrl!);
        expect(res.status).to.equal(200);
        expect(res.body).to.contain('nbswarm test image');
        expect(o.status?.backend?.kind).to.equal(kind);
        expect(o.metadata.finalizers).to.include('nbswarm.io/cleanup');
      }
      // The watch events of the operator's own finalizer patches are recognised as echoes, not reconciled again.
      expect(env.op.stats().echoesSkipped).to.be.at.least(2);
      expect(a.status!.endpoint!.hostUrl).to.not.equal(b.status!.endpoint!.hostUrl);
      const [oa] = await objectsFor('nb-default');
      const [ob] = await objectsFor('nb-named');
      expect(oa.name).to.match(new RegExp(`^${env.prefix}-alice($|-)`));
      expect(ob.name).to.match(new RegExp(`^${env.prefix}-alice-dash1($|-)`));
      expect(oa.name).to.not.equal(ob.name);
      // Printer columns through kubectl.
      const table = await env.kubectl(['get', 'nbs', '-n', NS]);
      expect(table).to.match(/nb-default\s+alice\s+\S*\s*custom\s+Running\s+http:\/\/127\.0\.0\.1/);
      // The MODE column shows the mode that runs, also when the policy's default chose it.
      expect((await getNbs(env, 'nb-named')).spec.mode).to.equal(undefined);
      expect(table).to.match(/nb-named\s+alice\s+dash1\s+custom\s+Running/);
      // Events are visible to kubectl describe.
      const described = await env.kubectl(['describe', 'nbs', 'nb-default', '-n', NS]);
      expect(described).to.match(/Created/);
    });

    it('an image or env change converges to the new generation without a duplicate object', async () => {
      const before = await getNbs(env, 'nb-default');
      await env.docker.getImage(TEST_IMAGE).tag({ repo: `local/${env.prefix}-built-alt`, tag: 'v2' });
      const img2 = `local/${env.prefix}-built-alt:v2`;
      await patchSpec(env, 'nb-default', { image: img2, env: [{ name: 'GREETING', value: 'hello' }] });
      const after = await waitPhase(env, 'nb-default', 'Running', 60_000, before);
      expect(after.status?.backend?.image).to.equal(img2);
      const objs = await env.backend.find(after.metadata.uid!);
      expect(objs).to.have.length(1);
      expect(objs[0].labels[LABELS.image]).to.equal(img2);
      await waitFor('env in the running container', async () => (await containerEnv(env, after.metadata.uid!)).includes('GREETING=hello'), 30_000);
      const res = await httpGet(after.status!.endpoint!.hostUrl!);
      expect(res.status).to.equal(200);
    });

    it('env from a Secret reaches the server; a missing Secret → Pending naming the field, then converges once it exists; a changed value restarts it', async () => {
      const secret = `${env.prefix}-creds`;
      await apply('nb-secret', {
        user: 'sam',
        mode: 'custom',
        command: HTTPD,
        image: TEST_IMAGE,
        env: [{ name: 'API_KEY', valueFrom: { secretKeyRef: { name: secret, key: 'key' } } }],
      });
      const waiting = await waitFor(
        'nb-secret waiting for its Secret',
        async () => {
          const o = await getNbs(env, 'nb-secret');
          return o?.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'SecretNotFound') ? o : undefined;
        },
        30_000,
      );
      expect(waiting.status?.phase).to.equal('Pending');
      expect(waiting.status?.message).to.contain('spec.env[0].valueFrom.secretKeyRef').and.to.contain(secret);
      await env.kubectl(['create', 'secret', 'generic', secret, '-n', NS, '--from-literal=key=s3cr3t']);
      const o = await waitReady(env, 'nb-secret');
      expect(await containerEnv(env, o.metadata.uid!)).to.include('API_KEY=s3cr3t');
      // A new value reaches the running server at once (the Secrets informer wakes it), not at the next resync.
      await env
        .kubectl(['create', 'secret', 'generic', secret, '-n', NS, '--from-literal=key=rotated', '--dry-run=client', '-o', 'yaml'])
        .then((yaml) => env.kubectl(['replace', '-f', '-'], yaml));
      await waitFor(
        'the rotated value in the running container',
        async () => (await containerEnv(env, o.metadata.uid!).catch(() => '')).includes('API_KEY=rotated'),
        30_000,
      );
      await env.kubectl(['delete', 'nbs', 'nb-secret', '-n', NS, '--wait=true']);
    });

    it('stopped: true → Stopped with the volume kept; false → Running with the same files', async () => {
      const o = await waitReady(env, 'nb-named');
      const [obs] = await env.backend.find(o.metadata.uid!);
      await dockerExec(env.docker, obs.containerId!, ['sh', '-c', 'echo persisted-$((6*7)) > /home/jovyan/keep.txt']);
      const reasons = async () =>
        (JSON.parse(await env.kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=nb-named', '-o', 'json'])).items as any[]).map(
          (e) => e.reason as string,
        );
      const reverts = async () => (await reasons()).filter((r) => r === 'DriftReverted' || r === 'Reverted').length;
      const revertsBefore = await reverts();
      // Stopped with a spec change at once, as JupyterHub's stop does (its token goes).
      await patchSpec(env, 'nb-named', { stopped: true, env: [{ name: 'SESSION', value: 'second' }] });
      const stopped = await waitPhase(env, 'nb-named', 'Stopped');
      expect(stopped.status?.endpoint).to.equal(undefined);
      await waitFor('no running task/container', async () => {
        const objs = await env.backend.find(o.metadata.uid!);
        return objs.length === 1 && objs[0].state !== 'running';
      });
      const vol = `${env.prefix}-alice-home`;
      expect((await env.docker.getVolume(vol).inspect()).Name).to.equal(vol);
      // The stop only scaled down: the stopped object is neither rewritten nor "reverted" to the new spec meanwhile.
      await sleep(2000);
      expect(await reverts(), (await reasons()).join(', ')).to.equal(revertsBefore);
      await patchSpec(env, 'nb-named', { stopped: false });
      const again = await waitReady(env, 'nb-named');
      const [obs2] = await env.backend.find(again.metadata.uid!);
      expect(await dockerExec(env.docker, obs2.containerId!, ['cat', '/home/jovyan/keep.txt'])).to.equal('persisted-42\n');
      // The change made with the stop runs once it starts.
      expect(await containerEnv(env, again.metadata.uid!)).to.include('SESSION=second');
    });

    it('created with stopped: true → Stopped with no Docker object (nor a missing image resolved); starting it creates one', async () => {
      // The image does not exist: a stopped server must not need it until it starts.
      await apply('nb-cold', { user: 'cora', mode: 'custom', command: HTTPD, image: `local/${env.prefix}-absent:v1`, stopped: true });
      const stopped = await waitPhase(env, 'nb-cold', 'Stopped');
      expect(stopped.status?.message).to.match(/no (service|container) exists until it starts/);
      expect(stopped.status?.backend).to.equal(undefined);
      expect(await env.backend.find(stopped.metadata.uid!)).to.have.length(0);
      await patchSpec(env, 'nb-cold', { image: TEST_IMAGE, stopped: false });
      const running = await waitReady(env, 'nb-cold');
      expect(await env.backend.find(running.metadata.uid!)).to.have.length(1);
      await env.kubectl(['delete', 'nbs', 'nb-cold', '-n', NS, '--wait=true', '--timeout=60s']);
    });

    it('delete removes the object but keeps the volume; a re-created server sees the file', async () => {
      const o = await getNbs(env, 'nb-named');
      await env.kubectl(['delete', 'nbs', 'nb-named', '-n', NS, '--wait=true', '--timeout=60s']);
      expect(await env.backend.find(o.metadata.uid!)).to.have.length(0);
      await env.docker.getVolume(`${env.prefix}-alice-home`).inspect();
      await apply('nb-named', { user, servername: 'dash1', mode: 'custom', command: HTTPD, image: TEST_IMAGE });
      const again = await waitReady(env, 'nb-named');
      expect(again.metadata.uid).to.not.equal(o.metadata.uid);
      const [obs] = await env.backend.find(again.metadata.uid!);
      expect(await dockerExec(env.docker, obs.containerId!, ['cat', '/home/jovyan/keep.txt'])).to.equal('persisted-42\n');
    });

    it('drift: an object removed by hand comes back; a labelled orphan with no resource is removed', async () => {
      const o = await getNbs(env, 'nb-named');
      const [obs] = await env.backend.find(o.metadata.uid!);
      if (kind === 'service') await env.docker.getService(obs.id).remove();
      else await env.docker.getContainer(obs.id).remove({ force: true });
      await waitFor(
        'object recreated',
        async () => {
          const objs = await env.backend.find(o.metadata.uid!);
          return objs.length === 1 && objs[0].id !== obs.id && objs[0].state === 'running';
        },
        60_000,
      );
      await waitReady(env, 'nb-named');

      // An orphan: labelled as ours, named with our prefix, for a UID the API does not know.
      const orphanName = `${env.prefix}-orphan`;
      const labels = { [LABELS.managedBy]: 'nbswarm', [LABELS.uid]: 'no-such-uid-' + env.prefix, [LABELS.namespace]: NS, [LABELS.name]: 'gone' };
      const imageId = (await env.docker.getImage(TEST_IMAGE).inspect()).Id;
      if (kind === 'service') {
        await env.docker.createService({
          Name: orphanName,
          Labels: labels,
          TaskTemplate: { ContainerSpec: { Image: imageId, Command: ORPHAN_CMD, Labels: labels } },
          Mode: { Replicated: { Replicas: 1 } },
        } as any);
      } else {
        const c = await env.docker.createContainer({ name: orphanName, Image: imageId, Cmd: ORPHAN_CMD, Labels: labels });
        await c.start();
      }
      await waitFor('orphan removed', async () => !(await env.backend.listManaged()).some((x) => x.name === orphanName), 60_000);
      // By the operator's GC: Docker lists the object as gone a moment before the GC's remove call returns and counts it.
      await waitFor('the GC to count the removal', async () => env.op.stats().gc.removed > 0, 10_000);
    });

    it('disallowed image → Failed with a message naming the image and the policy', async () => {
      await apply('nb-bad', { user: 'bob', mode: 'custom', command: HTTPD, image: 'evil.example/miner:latest' });
      const o = await waitPhase(env, 'nb-bad', 'Failed');
      expect(o.status?.message)
        .to.contain('evil.example/miner:latest')
        .and.to.match(/allowedImages|policy/);
      const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
      expect(ready?.status).to.equal('False');
      expect(ready?.reason).to.equal('ImageNotAllowed');
      expect(await env.backend.find(o.metadata.uid!)).to.have.length(0);
      await env.kubectl(['delete', 'nbs', 'nb-bad', '-n', NS, '--wait=true']);
    });

    it('missing image with pull policy never → ImageReady=False with a reason, retried with back-off (no hot loop)', async () => {
      const missing = `local/${env.prefix}-built-missing:nope`;
      await apply('nb-missing', { user: 'carol', mode: 'custom', command: HTTPD, image: missing });
      const o = await waitFor('ImageReady False', async () => {
        const x = await getNbs(env, 'nb-missing');
        return x.status?.conditions?.find((c) => c.type === 'ImageReady' && c.status === 'False') ? x : undefined;
      });
      const cond = o.status!.conditions!.find((c) => c.type === 'ImageReady')!;
      expect(cond.reason).to.equal('ImageNotFound');
      expect(cond.message).to.contain(missing);
      const key = `${NS}/nb-missing`;
      const start = env.op.stats().queue.perKey[key]?.reconciles ?? 0;
      const patchesBefore = env.op.stats().reconciler.statusPatches;
      await sleep(3000);
      const s = env.op.stats();
      const during = (s.queue.perKey[key]?.reconciles ?? 0) - start;
      // Back-off 200 ms doubling (cap 4 s): at most ~5 retries in 3 s; a hot loop would be hundreds.
      expect(during).to.be.at.most(6);
      expect(s.queue.perKey[key].failures).to.be.greaterThan(1);
      // Repeated failures do not rewrite an unchanged status.
      expect(s.reconciler.statusPatches - patchesBefore).to.be.at.most(1);
      await env.kubectl(['delete', 'nbs', 'nb-missing', '-n', NS, '--wait=true']);
    });

    it('50 rapid updates → the final Docker state matches the last spec; never two reconciles of one key at once', async () => {
      await apply('nb-rapid', { user: 'dave', mode: 'custom', command: HTTPD, image: TEST_IMAGE });
      await waitReady(env, 'nb-rapid');
      for (let i = 0; i < 50; i++) await patchSpec(env, 'nb-rapid', { env: [{ name: 'ROUND', value: String(i) }] });
      const last = await waitPhase(env, 'nb-rapid', 'Running', 90_000);
      const objs = await env.backend.find(last.metadata.uid!);
      expect(objs).to.have.length(1);
      await waitFor('ROUND=49 in the running container', async () => (await containerEnv(env, last.metadata.uid!)).includes('ROUND=49'), 60_000);
      const s = env.op.stats();
      expect(s.queue.maxConcurrentPerKey).to.equal(1);
      expect(s.queue.perKey[`${NS}/nb-rapid`].reconciles).to.be.lessThan(s.queue.perKey[`${NS}/nb-rapid`].enqueued);
    });

    it('operator restart with servers running → zero Docker writes and no status patches', async () => {
      const names = ['nb-default', 'nb-named', 'nb-rapid'];
      for (const n of names) await waitReady(env, n);
      // Let the last reconciles (and their Docker events) settle before the window opens.
      await env.op.queue.whenIdle();
      await sleep(1500);
      await env.op.queue.whenIdle();
      const since = Math.floor(Date.now() / 1000);
      const op = await env.restartOperator();
      await op.whenLeader();
      await waitFor('every server reconciled once after restart', async () => {
        const s = op.stats();
        return names.every((n) => (s.queue.perKey[`${NS}/${n}`]?.reconciles ?? 0) >= 1) && s.queue.depth === 0 && s.queue.inFlight === 0;
      });
      await sleep(1500);
      await op.queue.whenIdle();
      const until = Math.floor(Date.now() / 1000) + 1;
      const s = op.stats();
      expect(s.reconciler.dockerWrites, JSON.stringify(s.reconciler.actions)).to.equal(0);
      expect(s.reconciler.statusPatches).to.equal(0);
      expect(s.reconciler.metadataPatches).to.equal(0);
      const events = await dockerEventsBetween(env.docker, since, until);
      const ours = events.filter((e) => {
        const name = String(e.Actor?.Attributes?.name ?? '');
        // Swarm reports the progress of an earlier rolling update (its 5 s monitor period) as
        // service "update" events carrying updatestate.*; those are the manager's bookkeeping,
        // not a write by anyone. Every API write shows up as an update without them.
        if (e.Type === 'service' && e.Actor?.Attributes?.['updatestate.new']) return false;
        return name.startsWith(env.prefix + '-') && WRITE_ACTIONS.has(String(e.Action ?? '').split(':')[0]);
      });
      expect(ours.map((e) => `${e.Type} ${e.Action} ${e.Actor?.Attributes?.name}`)).to.deep.equal([]);
    });

    it('source server: a dashboard built from another server sees its files; deleting it removes the built image', async () => {
      const a = await waitReady(env, 'nb-default');
      const [obsA] = await env.backend.find(a.metadata.uid!);
      // Something "installed" in the source container's own filesystem (not the volume).
      await dockerExec(env.docker, obsA.containerId!, ['sh', '-c', 'echo installed-pkg > /tmp/pkg.txt']);
      await apply('nb-clone', { user, servername: 'clone', mode: 'custom', command: HTTPD, source: { server: 'nb-default' } });
      const b = await waitReady(env, 'nb-clone');
      expect(b.status?.build?.image).to.match(new RegExp(`^local/${env.prefix}-built/${NS}/nb-default:g\\d+$`));
      expect(b.status?.build?.builtAt).to.be.a('string');
      const [obsB] = await env.backend.find(b.metadata.uid!);
      expect(await dockerExec(env.docker, obsB.containerId!, ['cat', '/tmp/pkg.txt'])).to.equal('installed-pkg\n');
      // A is untouched: same object, still running.
      const [obsA2] = await env.backend.find(a.metadata.uid!);
      expect(obsA2.id).to.equal(obsA.id);
      expect(obsA2.state).to.equal('running');
      const built = b.status!.build!.image!;
      const img: any = await env.docker.getImage(built).inspect();
      expect(img.Config.Labels['nbswarm.io/source-uid']).to.equal(a.metadata.uid);
      expect(img.Config.Labels['nbswarm.io/built-for-uid']).to.equal(b.metadata.uid);
      // A label or another tool's annotation is nothing a reconcile reads: none runs.
      const runs = reconcilesOf(env, 'nb-clone');
      await env.kubectl(['annotate', 'nbs', 'nb-clone', '-n', NS, 'example.com/unrelated=1']);
      await env.kubectl(['label', 'nbs', 'nb-clone', '-n', NS, 'team=a']);
      await sleep(1000);
      expect(reconcilesOf(env, 'nb-clone'), 'reconciles after a label and a foreign annotation').to.equal(runs);
      // No rebuild on a plain reconcile: builtAt stays.
      await reconcileAgain(env, 'nb-clone');
      await sleep(1500);
      expect((await getNbs(env, 'nb-clone')).status?.build?.builtAt).to.equal(b.status?.build?.builtAt);
      // The rebuild annotation does.
      await env.kubectl(['annotate', 'nbs', 'nb-clone', '-n', NS, 'nbswarm.io/rebuild=1']);
      const rebuilt = await waitFor(
        'rebuilt',
        async () => {
          const o = await getNbs(env, 'nb-clone');
          return o.status?.build?.image !== built && o.status?.phase === 'Running' ? o : undefined;
        },
        60_000,
      );
      const built2 = rebuilt.status!.build!.image!;
      expect(built2).to.match(/:g\d+-r[0-9a-f]{8}$/);
      const [obsB2] = await env.backend.find(b.metadata.uid!);
      expect(await dockerExec(env.docker, obsB2.containerId!, ['cat', '/tmp/pkg.txt'])).to.equal('installed-pkg\n');
      // The superseded image goes now (container) or once Swarm's task history lets it go (GC retries).
      if (kind === 'container')
        await waitFor(
          'old built image removed',
          async () =>
            env.docker
              .getImage(built)
              .inspect()
              .then(
                () => false,
                () => true,
              ),
          30_000,
        );
      else
        expect(
          await env.docker
            .getImage(built)
            .inspect()
            .then(
              () => env.op.stats().gc.pending > 0,
              () => true,
            ),
        ).to.equal(true);
      // Edits of the source server do not rebuild: the build is a snapshot (this recreates A).
      await patchSpec(env, 'nb-default', { env: [{ name: 'GREETING', value: 'changed' }] });
      await waitReady(env, 'nb-default');
      await env.op.queue.whenIdle();
      expect((await getNbs(env, 'nb-clone')).status?.build?.image).to.equal(built2);
      await env.kubectl(['delete', 'nbs', 'nb-clone', '-n', NS, '--wait=true', '--timeout=60s']);
      await waitFor(
        'built image removed',
        async () =>
          env.docker
            .getImage(built2)
            .inspect()
            .then(
              () => false,
              () => true,
            ),
        30_000,
      );
    });
  });
}

export type { NotebookServer };
