/** Orphan GC and deferred removals over the FakeBackend. */
import { expect } from 'chai';
import { FakeBackend } from '../../src/backends/fake.js';
import type { DesiredServer } from '../../src/backends/types.js';
import { OrphanCollector } from '../../src/controller/gc.js';
import { createLogger } from '../../src/log.js';
import { LABELS, MANAGED_BY } from '../../src/api/names.js';

function desired(uid: string, dockerName: string, namespace = 'default'): DesiredServer {
  return {
    namespace,
    name: uid,
    uid,
    generation: 1,
    dockerName,
    labels: { [LABELS.uid]: uid, [LABELS.namespace]: namespace, [LABELS.managedBy]: MANAGED_BY },
    image: 'img',
    pullPolicy: 'never',
    command: [],
    env: {},
    port: 8888,
    networkMode: 'bridge',
    publishHostIp: '127.0.0.1',
    volumes: [{ type: 'volume', source: `${dockerName}-scratch`, target: '/s', labels: { [LABELS.deleteWithServer]: 'true', [LABELS.uid]: uid } }],
    resources: {},
    hardening: { noNewPrivileges: true, capDrop: [] },
    stopped: false,
    specHash: 'h',
  };
}

describe('OrphanCollector (FakeBackend)', () => {
  it("removes objects in its prefix (and namespace) whose NotebookServer is gone, never volumes, never other operators' objects", async () => {
    const b = new FakeBackend('container');
    const image = { reference: 'img', id: 'sha256:1', pinned: 'sha256:1' };
    for (const [uid, name, ns] of [
      ['known', 'nbs-known', 'default'],
      ['gone', 'nbs-gone', 'default'],
      ['other-ns', 'nbs-else', 'other'],
      ['theirs', 'xyz-gone', 'default'],
    ]) {
      await b.apply(desired(uid!, name!, ns), image);
    }
    const gc = new OrphanCollector(
      b,
      { hasSynced: () => true, keyForUid: (uid) => (uid === 'known' ? 'default/known' : undefined) },
      createLogger({ silent: true }),
      { prefix: 'nbs', namespace: 'default' },
    );
    const before = b.writes.length;
    expect(await gc.runOnce()).to.equal(1);
    expect(b.writes.slice(before)).to.deep.equal(['remove nbs-gone']);
    expect(b.volumeNames()).to.include('nbs-gone-scratch');
  });

  it('does nothing before the NotebookServer cache is complete', async () => {
    const b = new FakeBackend('service');
    await b.apply(desired('gone', 'nbs-gone'), { reference: 'img', id: 'sha256:1', pinned: 'sha256:1' });
    const gc = new OrphanCollector(b, { hasSynced: () => false, keyForUid: () => undefined }, createLogger({ silent: true }), { prefix: 'nbs' });
    expect(await gc.runOnce()).to.equal(0);
    expect(b.reads.listManaged ?? 0).to.equal(0);
  });

  it('a volume still in use is removed on a later pass', async () => {
    const b = new FakeBackend('container');
    await b.apply(desired('u', 'nbs-u'), { reference: 'img', id: 'sha256:1', pinned: 'sha256:1' });
    const gc = new OrphanCollector(b, { hasSynced: () => true, keyForUid: () => 'default/u' }, createLogger({ silent: true }), { prefix: 'nbs' });
    b.volumesInUse.add('nbs-u-scratch');
    expect(await gc.removeVolumeSoon('nbs-u-scratch')).to.equal(false);
    expect(gc.s.pending).to.equal(1);
    b.volumesInUse.clear();
    await gc.runOnce();
    expect(gc.s).to.include({ pending: 0, volumesRemoved: 1 });
    expect(b.volumeNames()).to.deep.equal([]);
    expect(await gc.removeVolumeSoon('nbs-u-scratch')).to.equal(true);
  });
});
