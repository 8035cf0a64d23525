import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { expect } from 'chai';
import { installNotebookServerCrd, kubectlAs, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

/** kube-apiserver's metadata rules, seen through kubectl 1.27, 1.32, 1.33 and client-node. */
const server = (name: string) => `apiVersion: nbswarm.io/v1alpha1
kind: NotebookServer
metadata:
  name: ${name}
  finalizers: [example.com/hold]
spec:
  user: alice
`;

describe('metadata rules of kube-apiserver', function () {
  let srv: TestApiServer;
  before(async () => {
    srv = await startTestApiServer();
    await installNotebookServerCrd(srv.kubeconfigPath);
  });
  after(async () => srv?.cleanup());

  for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) {
    describe(bin, () => {
      const ns = `md-${bin.replace(/\W/g, '-')}`;
      const { run: k, ok } = kubectlAs(() => srv.kubeconfigPath, bin, ns);
      before(async () => void (await ok(['create', 'namespace', ns])));

      it('uid is immutable and creationTimestamp is kept whatever an update says', async () => {
        await ok(['apply', '-f', '-'], server('fixed'));
        const [uid, created] = (await ok(['get', 'nbs', 'fixed', '-o', 'jsonpath={.metadata.uid} {.metadata.creationTimestamp}'])).split(' ');
        const r = await k(['patch', 'nbs', 'fixed', '--type=merge', '-p', '{"metadata":{"uid":"00000000-0000-0000-0000-000000000000"}}']);
        expect(r.code).to.not.equal(0);
        expect(r.stderr).to.match(/metadata\.uid: Invalid value: "00000000-0000-0000-0000-000000000000": field is immutable/);
        await ok(['patch', 'nbs', 'fixed', '--type=merge', '-p', '{"metadata":{"creationTimestamp":"2001-01-01T00:00:00Z"}}']);
        expect(await ok(['get', 'nbs', 'fixed', '-o', 'jsonpath={.metadata.uid} {.metadata.creationTimestamp}'])).to.equal(`${uid} ${created}`);
      });

      it('deletion bumps generation; a terminating object takes no new finalizer and keeps its grace period', async () => {
        await ok(['apply', '-f', '-'], server('held'));
        expect(await ok(['get', 'nbs', 'held', '-o', 'jsonpath={.metadata.generation}'])).to.equal('1');
        await ok(['delete', 'nbs', 'held', '--wait=false']);
        expect(await ok(['get', 'nbs', 'held', '-o', 'jsonpath={.metadata.generation} {.metadata.deletionGracePeriodSeconds}'])).to.equal('2 0');

        const add = await k(['patch', 'nbs', 'held', '--type=merge', '-p', '{"metadata":{"finalizers":["example.com/hold","example.com/late"]}}']);
        expect(add.code).to.not.equal(0);
        expect(add.stderr).to.match(
          /metadata\.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers \[\]string\{"example.com\/late"\}/,
        );
        const grace = await k(['patch', 'nbs', 'held', '--type=merge', '-p', '{"metadata":{"deletionGracePeriodSeconds":30}}']);
        expect(grace.code).to.not.equal(0);
        expect(grace.stderr).to.match(/metadata\.deletionGracePeriodSeconds: Invalid value: 30: field is immutable; may only be changed via deletion/);

        await ok(['patch', 'nbs', 'held', '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
        const gone = await k(['get', 'nbs', 'held']);
        expect(gone.stderr).to.match(/NotFound|not found/);
      });
    });
  }

  it('client-node sees the same rules', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfigPath);
    const api = kc.makeApiClient(CustomObjectsApi);
    const ref = { group: 'nbswarm.io', version: 'v1alpha1', plural: 'notebookservers', namespace: 'default' };
    await api.createNamespacedCustomObject({
      ...ref,
      body: { apiVersion: 'nbswarm.io/v1alpha1', kind: 'NotebookServer', metadata: { name: 'cn', finalizers: ['example.com/hold'] }, spec: { user: 'alice' } },
    });
    await api.deleteNamespacedCustomObject({ ...ref, name: 'cn' });
    const o = (await api.getNamespacedCustomObject({ ...ref, name: 'cn' })) as { metadata: { generation: number; deletionTimestamp?: string } };
    expect(o.metadata.generation).to.equal(2);
    expect(o.metadata.deletionTimestamp).to.be.a('string');
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const err = await api.patchNamespacedCustomObject({ ...ref, name: 'cn', body: { metadata: { finalizers: ['example.com/hold', 'x.io/y'] } } }, merge).then(
      () => undefined,
      (e: { code?: number; body?: string }) => e,
    );
    expect(err?.code).to.equal(422);
    expect(String(err?.body)).to.contain('no new finalizers can be added if the object is being deleted');
    await api.patchNamespacedCustomObject({ ...ref, name: 'cn', body: { metadata: { finalizers: null } } }, merge);
  });
});
