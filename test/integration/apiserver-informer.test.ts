import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { apiRequest, startTestApiServer, until, widgetCrd, type TestApiServer } from '../helpers/apiserver.js';

const G = 'example.nbswarm.io',
  V = 'v1',
  P = 'widgets';
const PATH = `/apis/${G}/${V}/namespaces/default/${P}`;

describe('API server with @kubernetes/client-node', function () {
  let srv: TestApiServer;
  let kc: k8s.KubeConfig;
  let api: k8s.CustomObjectsApi;

  before(async () => {
    // Short watches and a small history window, so the informer must resume and, once, relist.
    srv = await startTestApiServer({ watchWindow: 20, bookmarkIntervalMs: 100, maxWatchSeconds: 2 });
    expect((await apiRequest(srv, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() })).status).to.equal(201);
    kc = new k8s.KubeConfig();
    kc.loadFromFile(srv.kubeconfigPath);
    api = kc.makeApiClient(k8s.CustomObjectsApi);
  });
  after(async () => srv?.cleanup());

  const body = (name: string, labels: Record<string, string> = {}) => ({
    apiVersion: `${G}/${V}`,
    kind: 'Widget',
    metadata: { name, labels },
    spec: { user: 'alice' },
  });

  it('informer sees ADDED/MODIFIED/DELETED in order and recovers from 410 by relisting', async () => {
    let lists = 0;
    const listFn = () => {
      lists++;
      return api.listNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P }) as Promise<
        k8s.KubernetesListObject<k8s.KubernetesObject>
      >;
    };
    const inf = k8s.makeInformer(kc, PATH, listFn, 'watched=yes');
    const seen: string[] = [];
    const errors: unknown[] = [];
    inf.on('add', (o) => seen.push(`add:${o.metadata?.name}`));
    inf.on('update', (o) => seen.push(`update:${o.metadata?.name}:${(o as unknown as { spec: { size: number } }).spec.size}`));
    inf.on('delete', (o) => seen.push(`delete:${o.metadata?.name}`));
    inf.on('error', (e) => errors.push(e));
    await inf.start();
    try {
      await api.createNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P, body: body('i1', { watched: 'yes' }) });
      await api.patchNamespacedCustomObject(
        { group: G, version: V, namespace: 'default', plural: P, name: 'i1', body: { spec: { size: 5 } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await api.deleteNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P, name: 'i1' });
      await until(() => seen.length >= 3, 10000, 'three informer events');
      expect(seen).to.deep.equal(['add:i1', 'update:i1:5', 'delete:i1']);
      expect(lists).to.equal(1);

      // Changes the informer does not select move the history past its resourceVersion.
      await api.createNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P, body: body('other') });
      for (let i = 0; i < 30; i++) {
        await api.patchNamespacedCustomObject(
          { group: G, version: V, namespace: 'default', plural: P, name: 'other', body: { spec: { size: i } } },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      }
      // When the server ends the watch, the resume gets 410 and the informer lists again.
      await until(() => lists >= 2, 15000, 'a relist after 410');
      await api.createNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P, body: body('i2', { watched: 'yes' }) });
      await until(() => seen.includes('add:i2'), 10000, 'add after relist');
      expect(errors).to.deep.equal([]);
    } finally {
      await inf.stop();
    }
  });

  it('watch delivers bookmarks when asked', async () => {
    const list = await api.listNamespacedCustomObject({ group: G, version: V, namespace: 'default', plural: P });
    const rv = (list as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const phases: string[] = [];
    let bookmarkRv = '';
    const req = await new k8s.Watch(kc).watch(
      PATH,
      { allowWatchBookmarks: true, resourceVersion: rv },
      (phase, obj) => {
        phases.push(phase);
        if (phase === 'BOOKMARK') bookmarkRv = obj.metadata.resourceVersion;
      },
      () => {},
    );
    try {
      await until(() => phases.includes('BOOKMARK'), 10000, 'a bookmark');
    } finally {
      req.abort();
    }
    expect(Number(bookmarkRv)).to.be.at.least(Number(rv));
  });
});
