import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { apiRequest, widgetCrd } from '../helpers/apiserver.js';

const MAIN = fileURLToPath(new URL('../../src/apiserver/main.js', import.meta.url));

async function spawnServer(dataDir: string, synchronous: string): Promise<{ child: ChildProcess; srv: { url: string; caPem: string; adminToken: string } }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--data-dir', dataDir, '--synchronous', synchronous], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) resolve(JSON.parse(line).url);
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
  const caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
  const adminToken = readFileSync(join(dataDir, 'tokens.csv'), 'utf8')
    .split('\n')
    .find((l) => l.includes(',admin,admin'))!
    .split(',')[0];
  return { child, srv: { url, caPem, adminToken } };
}

for (const synchronous of ['NORMAL', 'FULL'])
  describe(`API server durability (synchronous ${synchronous})`, function () {
    let dataDir: string;
    let child: ChildProcess | undefined;
    before(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-durable-'));
    });
    after(() => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('keeps every acknowledged write across SIGKILL; resourceVersions keep increasing', async () => {
      const first = await spawnServer(dataDir, synchronous);
      child = first.child;
      expect((await apiRequest(first.srv, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() })).status).to.equal(
        201,
      );
      const W = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';
      const acked = new Map<string, { rv: number; size: number }>();
      let stop = false;
      // Four writers create and update objects until the server dies under them.
      const writer = async (id: number) => {
        for (let i = 0; !stop; i++) {
          const name = `w${id}-${i}`;
          try {
            const r = await apiRequest(first.srv, 'POST', W, {
              body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name }, spec: { user: 'u', size: i } },
            });
            if (r.status !== 201) throw new Error(r.text);
            acked.set(name, { rv: Number(r.body.metadata.resourceVersion), size: i });
            const u = await apiRequest(first.srv, 'PATCH', `${W}/${name}`, { body: { spec: { size: i + 1000 } }, contentType: 'application/merge-patch+json' });
            if (u.status !== 200) throw new Error(u.text);
            acked.set(name, { rv: Number(u.body.metadata.resourceVersion), size: i + 1000 });
          } catch {
            return; // the connection died with the server: this write was not acknowledged
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      while (acked.size < 60) await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGKILL');
      stop = true;
      await Promise.all(writers);
      await new Promise((r) => (child!.exitCode !== null || child!.signalCode ? r(null) : child!.once('exit', r)));

      const second = await spawnServer(dataDir, synchronous);
      child = second.child;
      const list = await apiRequest(second.srv, 'GET', W);
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
      const next = await apiRequest(second.srv, 'POST', W, {
        body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: 'after-restart' }, spec: { user: 'u' } },
      });
      expect(next.status).to.equal(201);
      expect(Number(next.body.metadata.resourceVersion)).to.be.greaterThan(maxAcked);
      expect(Number(next.body.metadata.resourceVersion)).to.be.greaterThan(Number(list.body.metadata.resourceVersion));
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    });
  });
