/** The API server's garbage collector by ownerReferences, over a real store (the pass itself; kubectl-gc drives it end to end). */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { GarbageCollector } from '../../src/apiserver/gc/owners.js';
import type { ResourceKind } from '../../src/apiserver/registry/kinds.js';
import { GenericStrategy } from '../../src/apiserver/registry/strategy.js';
import type { Store } from '../../src/apiserver/storage/sqlite.js';
import type { KubeObject } from '../../src/apiserver/types.js';
import { createLogger } from '../../src/log.js';
import { openTempStore, type TempStore } from '../helpers/store.js';

const configmaps = {
  group: '',
  resource: 'configmaps',
  storageKey: '/configmaps',
  namespaced: true,
  strategy: new GenericStrategy(),
} as unknown as ResourceKind;
const secrets = { group: '', resource: 'secrets', storageKey: '/secrets', namespaced: true, strategy: new GenericStrategy() } as unknown as ResourceKind;

describe('API server garbage collector', () => {
  let temp: TempStore;
  let storage: Store;
  let gc: GarbageCollector;
  beforeEach(() => {
    temp = openTempStore('gc-unit');
    storage = temp.storage;
    gc = new GarbageCollector(storage, () => [configmaps, secrets], createLogger({ silent: true }));
  });
  afterEach(async () => {
    gc.close();
    await temp.remove();
  });

  const put = (kind: ResourceKind, name: string, metadata: Record<string, unknown> = {}, data: Record<string, string> = {}) => {
    const uid = randomUUID();
    const o = {
      apiVersion: 'v1',
      kind: kind === secrets ? 'Secret' : 'ConfigMap',
      metadata: { name, namespace: 'default', uid, ...metadata },
      data,
    } as KubeObject;
    storage.write('ADDED', kind.storageKey, 'default', name, o);
    return uid;
  };
  const exists = (kind: ResourceKind, name: string) => storage.get(kind.storageKey, 'default', name) !== undefined;
  const ref = (name: string, uid: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, uid, ...extra });
  const passes = () => {
    for (let i = 0; i < 20 && gc.pass(); i++);
  };

  it('keeps dependents whose owner exists among objects that are neither owners nor owned, and deletes those whose owners are gone', async () => {
    for (let i = 0; i < 50; i++) put(configmaps, `plain-${i}`, {}, { uid: randomUUID() });
    // The owner holds nothing the pass looks for but its uid; another object has a member "uid" with that value.
    const owner = put(configmaps, 'owner');
    put(configmaps, 'mentions-owner', {}, { uid: owner });
    put(secrets, 'kept', { ownerReferences: [ref('owner', owner)] });
    put(secrets, 'orphaned', { ownerReferences: [ref('gone', randomUUID())] });
    put(secrets, 'half', { ownerReferences: [ref('owner', owner), ref('gone', randomUUID())] });
    await storage.settled();
    passes();
    await storage.settled();
    expect(exists(secrets, 'kept')).to.equal(true);
    expect(exists(secrets, 'orphaned')).to.equal(false);
    expect(storage.get(secrets.storageKey, 'default', 'half')?.metadata.ownerReferences).to.deep.equal([ref('owner', owner)]);
    expect(exists(configmaps, 'plain-0') && exists(configmaps, 'owner') && exists(configmaps, 'mentions-owner')).to.equal(true);
  });

  it('finishes an orphaning owner whose dependents are found by their references', async () => {
    const owner = put(configmaps, 'owner', { deletionTimestamp: new Date().toISOString(), finalizers: ['orphan'] });
    put(secrets, 'dep', { ownerReferences: [ref('owner', owner)] });
    await storage.settled();
    passes();
    await storage.settled();
    expect(exists(configmaps, 'owner')).to.equal(false);
    expect(storage.get(secrets.storageKey, 'default', 'dep')?.metadata.ownerReferences).to.equal(undefined);
  });

  it('deletes a chain of dependents once the first owner is gone', async () => {
    const a = put(configmaps, 'a');
    const b = put(configmaps, 'b', { ownerReferences: [ref('a', a)] });
    put(secrets, 'c', { ownerReferences: [ref('b', b)] });
    await storage.settled();
    passes();
    expect(exists(secrets, 'c')).to.equal(true);
    storage.write('DELETED', configmaps.storageKey, 'default', 'a', storage.get(configmaps.storageKey, 'default', 'a')!);
    await storage.settled();
    passes();
    await storage.settled();
    expect(exists(configmaps, 'b')).to.equal(false);
    expect(exists(secrets, 'c')).to.equal(false);
  });
  it('finds objects with owners or finalizers written before a restart, and follows writes that add or drop them', async () => {
    const owner = put(configmaps, 'owner', { finalizers: ['example.com/keep'] });
    put(secrets, 'dep', { ownerReferences: [ref('owner', owner)] });
    put(secrets, 'orphan', { ownerReferences: [ref('gone', randomUUID())] });
    put(secrets, 'plain');
    await storage.settled();
    gc.close();
    // A restart: the store reads which objects have owners or finalizers from their stored text.
    storage = await temp.reopen();
    gc = new GarbageCollector(storage, () => [configmaps, secrets], createLogger({ silent: true }));
    expect([...storage.withOwnersOrFinalizers(secrets.storageKey)].map((o) => o.metadata.name)).to.deep.equal(['dep', 'orphan']);
    expect([...storage.withOwnersOrFinalizers(configmaps.storageKey)].map((o) => o.metadata.name)).to.deep.equal(['owner']);
    passes();
    expect(exists(secrets, 'orphan')).to.equal(false);
    expect(exists(secrets, 'dep')).to.equal(true);
    // Not yet committed: a dependent gains a reference to a missing owner; the owner drops its finalizer.
    const plain = storage.get(secrets.storageKey, 'default', 'plain')!;
    storage.write(
      'MODIFIED',
      secrets.storageKey,
      'default',
      'plain',
      { ...plain, metadata: { ...plain.metadata, ownerReferences: [ref('gone', randomUUID())] } },
      plain,
    );
    const o = storage.get(configmaps.storageKey, 'default', 'owner')!;
    storage.write('MODIFIED', configmaps.storageKey, 'default', 'owner', { ...o, metadata: { ...o.metadata, finalizers: [] } }, o);
    expect([...storage.withOwnersOrFinalizers(configmaps.storageKey)]).to.deep.equal([]);
    passes();
    await storage.settled();
    expect(exists(secrets, 'plain')).to.equal(false);
    expect(exists(secrets, 'dep')).to.equal(true);
  });
});
