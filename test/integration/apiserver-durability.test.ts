import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { spawnApiServer, type ServerProcess } from '../../bench/lib/attacks.js';
import { apiRequest, widgetCrd } from '../helpers/apiserver.js';

for (const synchronous of ['NORMAL', 'FULL'])
  describe(`API server durability (synchronous ${synchronous})`, function () {
    let dataDir: string;
    let server: ServerProcess | undefined;
    const start = async () => (server = await spawnApiServer({ dataDir, args: ['--synchronous', synchronous] }));
    before(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-durable-'));
    });
    after(async () => {
      await server?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('keeps every acknowledged write across SIGKILL; resourceVersions keep increasing', async () => {
      const first = await start();
      expect((await apiRequest(first, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() })).status).to.equal(201);
      const W = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';
      const acked = new Map<string, { rv: number; size: number }>();
      let stop = false;
      // Four writers create and update objects until the server dies under them.
      const writer = async (id: number) => {
        for (let i = 0; !stop; i++) {
          const name = `w${id}-${i}`;
          try {
            const r = await apiRequest(first, 'POST', W, {
              body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name }, spec: { user: 'u', size: i } },
            });
            if (r.status !== 201) throw new Error(r.text);
            acked.set(name, { rv: Number(r.body.metadata.resourceVersion), size: i });
            const u = await apiRequest(first, 'PATCH', `${W}/${name}`, { body: { spec: { size: i + 1000 } }, contentType: 'application/merge-patch+json' });
            if (u.status !== 200) throw new Error(u.text);
            acked.set(name, { rv: Number(u.body.metadata.resourceVersion), size: i + 1000 });
          } catch {
            return; // the connection died with the server: this write was not acknowledged
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      while (acked.size < 60) await new Promise((r) => setTimeout(r, 10));
      first.child.kill('SIGKILL');
      stop = true;
      await Promise.all(writers);
      await new Promise((r) => (first.child.exitCode !== null || first.child.signalCode ? r(null) : first.child.once('exit', r)));

      const second = await start();
      const list = await apiRequest(second, 'GET', W);
      expect(list.status).to.equal(200);
      const stored = new Map<string, { metadata: { resourceVersion: string }; spec: { size: number } }>(
        list.body.items.map((i: { metadata: { name: string } }) => [i.metadata.name, i]),
      );
      let maxAcked = 0;
      for (const [name, a] of acked) {
        const s = stored.get(name);
        expect(s, `acknowledged ${name} lost`).to.not.equal(undefined);
        // A later unacknowledged update may have landed; an acknowledged one may never be missing.
        expect(Number(s!.metadata.resourceVersion)).to.be.at.least(a.rv);
        if (Number(s!.metadata.resourceVersion) === a.rv) expect(s!.spec.size).to.equal(a.size);
        maxAcked = Math.max(maxAcked, a.rv);
      }
      const next = await apiRequest(second, 'POST', W, {
        body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: 'after-restart' }, spec: { user: 'u' } },
      });
      expect(next.status).to.equal(201);
      expect(Number(next.body.metadata.resourceVersion)).to.be.greaterThan(maxAcked);
      expect(Number(next.body.metadata.resourceVersion)).to.be.greaterThan(Number(list.body.metadata.resourceVersion));
      await second.stop();
    });
  });
