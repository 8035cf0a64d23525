/**
 * Source-server images (cdsdashboards' DockerBuilder, declaratively). A file
 * installed into server A's container filesystem (not a volume) with docker exec is in dashboard
 * B built with spec.source.server: A; A keeps running in the same container; the build is recorded
 * in status.build, is not repeated on an unrelated spec change, is repeated on the rebuild
 * annotation, and B's image is removed with B.
 */
import { expect } from 'chai';
import { LABELS } from '../../src/api/types.js';
import type { BackendKind } from '../../src/backends/types.js';
import { ANNOTATIONS } from '../../src/api/names.js';
import { httpGet, waitFor } from '../helpers/docker.js';
import { HTTPD, NS, dockerExec, getNbs, nbsYaml, patchSpec, setupEnv, waitReady, type Env } from './operator-harness.js';

const imageExists = async (env: Env, ref: string): Promise<boolean> =>
  env.docker
    .getImage(ref)
    .inspect()
    .then(
      () => true,
      (err: { statusCode?: number }) => {
        if (err.statusCode === 404) return false;
        throw err;
      },
    );

for (const kind of ['service', 'container'] as BackendKind[]) {
  describe(`source-server images with the ${kind} backend`, function () {
    this.timeout(120_000);
    let env: Env;
    before(async () => {
      env = await setupEnv(kind);
    });
    after(async () => {
      await env?.close();
    });

    it("B built from A sees what was installed in A's container; A is untouched; B's image goes with B", async () => {
      const t0 = Date.now() - 1000;
      await env.kubectl(['apply', '-f', '-'], nbsYaml('src-a', { user: 'gina', mode: 'custom', command: HTTPD }));
      const a = await waitReady(env, 'src-a');
      const [objA] = await env.backend.find(a.metadata.uid!);
      expect(objA?.containerId).to.be.a('string');
      const containerA = objA!.containerId!;
      // "Install" into A's own filesystem layer, as a user's pip/apt would: not a volume.
      await dockerExec(
        env.docker,
        containerA,
        ['sh', '-c', 'echo "installed in A" > /www/installed.txt && mkdir -p /opt/pkg && echo 42 > /opt/pkg/VERSION'],
        '0',
      );
      expect((await httpGet(`${a.status!.endpoint!.hostUrl}/installed.txt`)).body).to.equal('installed in A\n');

      await env.kubectl(
        ['apply', '-f', '-'],
        nbsYaml('dash-b', { user: 'gina', servername: 'b', mode: 'custom', command: HTTPD, source: { server: 'src-a' } }),
      );
      const b = await waitReady(env, 'dash-b');
      const built = b.status?.build?.image;
      expect(built).to.equal(`local/${env.prefix}-built/${NS}/src-a:g${a.metadata.generation}`);
      expect(Date.parse(b.status!.build!.builtAt!)).to.be.at.least(t0);
      expect(b.status?.build?.sourceGeneration).to.equal(a.metadata.generation);
      expect(b.status?.backend?.image).to.equal(built);
      const described = await env.kubectl(['describe', 'nbs', 'dash-b', '-n', NS]);
      expect(described).to.match(/Normal\s+Built\s.*committed source server src-a/);

      // B serves and contains what was installed in A.
      const res = await httpGet(`${b.status!.endpoint!.hostUrl}/installed.txt`);
      expect(res.status).to.equal(200);
      expect(res.body).to.equal('installed in A\n');
      const [objB] = await env.backend.find(b.metadata.uid!);
      expect(await dockerExec(env.docker, objB!.containerId!, ['cat', '/opt/pkg/VERSION'])).to.equal('42\n');

      // The image is labelled with both UIDs, and its inherited identity labels are blanked, so B's
      // container is never taken for A's.
      const img: any = await env.docker.getImage(built!).inspect();
      expect(img.Config.Labels[LABELS.sourceUid]).to.equal(a.metadata.uid);
      expect(img.Config.Labels[LABELS.builtForUid]).to.equal(b.metadata.uid);
      expect(img.Config.Labels[LABELS.uid] ?? '').to.equal('');

      // A is untouched: same container, still running and answering, still one object.
      const objsA = await env.backend.find(a.metadata.uid!);
      expect(objsA.map((o) => [o.containerId, o.state])).to.deep.equal([[containerA, 'running']]);
      const aNow = await getNbs(env, 'src-a');
      expect(aNow.status?.phase).to.equal('Running');
      expect(aNow.metadata.generation).to.equal(a.metadata.generation);
      expect(aNow.status?.backend?.id).to.equal(a.status?.backend?.id);
      expect((await httpGet(`${a.status!.endpoint!.hostUrl}/`)).status).to.equal(200);

      // An unrelated spec change of B rolls B but does not commit A again.
      await patchSpec(env, 'dash-b', { env: [{ name: 'THEME', value: 'dark' }] });
      const b2 = await waitFor(
        'dash-b generation 2 Running',
        async () => {
          const o = await getNbs(env, 'dash-b');
          return o.metadata.generation === 2 && o.status?.observedGeneration === 2 && o.status?.phase === 'Running' ? o : undefined;
        },
        60_000,
      );
      expect(b2.status?.build).to.deep.equal(b.status?.build);

      // The rebuild annotation commits A again, to a new tag.
      await env.kubectl(['annotate', 'nbs', 'dash-b', '-n', NS, `${ANNOTATIONS.rebuild}=1`]);
      const b3 = await waitFor(
        'dash-b rebuilt and Running',
        async () => {
          const o = await getNbs(env, 'dash-b');
          return o.status?.build?.image !== built && o.status?.backend?.image === o.status?.build?.image && o.status?.phase === 'Running' ? o : undefined;
        },
        60_000,
      );
      const rebuilt = b3.status!.build!.image!;
      expect(rebuilt).to.match(new RegExp(`^local/${env.prefix}-built/${NS}/src-a:g1-r[0-9a-f]{8}$`));
      expect(await imageExists(env, rebuilt)).to.equal(true);
      expect((await httpGet(`${b3.status!.endpoint!.hostUrl}/installed.txt`)).body).to.equal('installed in A\n');
      // Nothing references the previous build any more (on Swarm, the old task's exited container
      // in the service's task history no longer pins it): it is collected.
      await waitFor(`previous build ${built} removed`, async () => !(await imageExists(env, built!)), 30_000);

      // Deleting B removes its (now unreferenced) image; A keeps running in the same container.
      await env.kubectl(['delete', 'nbs', 'dash-b', '-n', NS, '--timeout=60s']);
      await waitFor(
        `built images ${built} and ${rebuilt} removed`,
        async () => !(await imageExists(env, rebuilt)) && !(await imageExists(env, built!)),
        30_000,
      );
      expect((await env.backend.find(a.metadata.uid!)).map((o) => [o.containerId, o.state])).to.deep.equal([[containerA, 'running']]);
      expect((await httpGet(`${a.status!.endpoint!.hostUrl}/installed.txt`)).body).to.equal('installed in A\n');
    });
  });
}
