/**
 * Idle culling: a short timeout stops an idle server via the nbswarm.io/stopped
 * annotation (spec untouched), an open connection keeps a server alive, the volume survives, and
 * removing the annotation starts the server again.
 */
import { expect } from 'chai';
import net from 'node:net';
import type { BackendKind } from '../../src/backends/types.js';
import { ANNOTATIONS } from '../../src/api/names.js';

const STOPPED_ANNOTATION = ANNOTATIONS.stopped;
import { TEST_IMAGE, sleep, waitFor } from '../helpers/docker.js';
import { HTTPD, NS, getNbs, nbsYaml, setupEnv, waitPhase, waitReady, type Env } from './operator-harness.js';

for (const kind of ['container', 'service'] as BackendKind[]) {
  describe(`idle culling with the ${kind} backend`, function () {
    this.timeout(120_000);
    let env: Env;
    before(async () => {
      env = await setupEnv(kind, { culling: { enabled: true, idleTimeoutSeconds: 3, probeIntervalSeconds: 1 } });
    });
    after(async () => {
      await env?.close();
    });

    it('stops an idle server with an annotation and an Event, keeps one with an open connection alive, and keeps the volume', async () => {
      await env.kubectl(['apply', '-f', '-'], nbsYaml('idle', { user: 'erin', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
      await env.kubectl(['apply', '-f', '-'], nbsYaml('busy', { user: 'frank', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
      await waitReady(env, 'idle');
      const busy = await waitReady(env, 'busy');
      // An open client connection (a browser tab / websocket) is activity.
      const sock = net.connect(Number(new URL(busy.status!.endpoint!.hostUrl!).port), '127.0.0.1');
      await new Promise<void>((r, j) => sock.once('connect', () => r()).once('error', j));
      sock.on('error', () => undefined);
      sock.write('GET / HTTP/1.1\r\n'); // headers never finished: the server keeps the connection open

      const culled = await waitPhase(env, 'idle', 'Stopped', 30_000);
      expect(culled.metadata.annotations?.[STOPPED_ANNOTATION]).to.be.a('string');
      expect(culled.metadata.annotations?.['nbswarm.io/stopped-reason']).to.equal('Culled');
      expect(culled.spec.stopped ?? false).to.equal(false);
      expect(culled.status?.message).to.contain(STOPPED_ANNOTATION);
      const described = await env.kubectl(['describe', 'nbs', 'idle', '-n', NS]);
      expect(described).to.match(/Culled/);
      await env.docker.getVolume(`${env.prefix}-erin-home`).inspect();
      const objs = await env.backend.find(culled.metadata.uid!);
      expect(objs.every((o) => o.state !== 'running')).to.equal(true);

      // Well past the idle timeout, the busy server still runs and has a recent lastActivity.
      await sleep(2000);
      const stillBusy = await getNbs(env, 'busy');
      expect(stillBusy.status?.phase).to.equal('Running');
      expect(stillBusy.metadata.annotations?.[STOPPED_ANNOTATION]).to.equal(undefined);
      expect(Date.parse(stillBusy.status!.lastActivity!)).to.be.greaterThan(
        Date.parse(busy.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!),
      );
      sock.destroy();
      await waitPhase(env, 'busy', 'Stopped', 30_000);

      // Removing the annotation starts the server again (spec never changed).
      await env.kubectl(['annotate', 'nbs', 'idle', '-n', NS, `${STOPPED_ANNOTATION}-`, 'nbswarm.io/stopped-generation-', 'nbswarm.io/stopped-reason-']);
      await waitReady(env, 'idle');
      await waitFor('idle culled again (no activity)', async () => (await getNbs(env, 'idle')).status?.phase === 'Stopped', 30_000);
    });
  });
}
