import { expect } from 'chai';
import { waitFor } from '../helpers/docker.js';
import { installNotebookServerCrd, kubectlAs, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

/** Garbage collection by ownerReferences: background, foreground and orphan deletion, and a deleted CRD's objects' dependents. */
const server = (name: string) => `apiVersion: nbswarm.io/v1alpha1\nkind: NotebookServer\nmetadata:\n  name: ${name}\nspec:\n  user: alice\n`;
const dependent = (name: string, owner: string, uid: string, extra = '', block = false) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
${extra}  ownerReferences:
  - apiVersion: nbswarm.io/v1alpha1
    kind: NotebookServer
    name: ${owner}
    uid: ${uid}
${block ? '    blockOwnerDeletion: true\n' : ''}data: {k: v}
`;

describe('garbage collection', function () {
  let srv: TestApiServer;
  before(async () => {
    srv = await startTestApiServer();
    await installNotebookServerCrd(srv.kubeconfigPath);
  });
  after(async () => srv?.cleanup());

  for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) {
    describe(bin, () => {
      const ns = `gc-${bin.replace(/\W/g, '-')}`;
      const { run: k, ok } = kubectlAs(() => srv.kubeconfigPath, bin, ns);
      const exists = async (what: string) => (await k(['get', what, '-o', 'name'])).code === 0;
      const owner = async (name: string) => {
        await ok(['apply', '-f', '-'], server(name));
        return ok(['get', 'nbs', name, '-o', 'jsonpath={.metadata.uid}']);
      };
      before(async () => void (await ok(['create', 'namespace', ns])));

      it('background (default): dependents of a deleted owner go; an object with another owner left only loses the reference', async () => {
        const a = await owner('bg-a');
        const b = await owner('bg-b');
        await ok(['apply', '-f', '-'], dependent('bg-dep', 'bg-a', a));
        const shared = dependent('bg-shared', 'bg-a', a).replace(
          'data: {k: v}',
          `  - {apiVersion: nbswarm.io/v1alpha1, kind: NotebookServer, name: bg-b, uid: ${b}}\ndata: {k: v}`,
        );
        await ok(['apply', '-f', '-'], shared);
        await ok(['delete', 'nbs', 'bg-a']);
        await waitFor('bg-dep collected', async () => !(await exists('cm/bg-dep')) || undefined, 10_000, 100);
        const refs = await waitFor(
          'bg-shared keeps bg-b only',
          async () => {
            const r = await ok(['get', 'cm', 'bg-shared', '-o', 'jsonpath={.metadata.ownerReferences[*].name}']);
            return r === 'bg-b' ? r : undefined;
          },
          10_000,
          100,
        );
        expect(refs).to.equal('bg-b');
      });

      it('foreground: the owner waits with foregroundDeletion until its blocking dependents are gone', async () => {
        const uid = await owner('fg');
        await ok(['apply', '-f', '-'], dependent('fg-dep', 'fg', uid, '  finalizers: [example.com/hold]\n', true));
        await ok(['delete', 'nbs', 'fg', '--cascade=foreground', '--wait=false']);
        expect(await ok(['get', 'nbs', 'fg', '-o', 'jsonpath={.metadata.finalizers}'])).to.contain('foregroundDeletion');
        await waitFor(
          'fg-dep being deleted',
          async () => (await ok(['get', 'cm', 'fg-dep', '-o', 'jsonpath={.metadata.deletionTimestamp}'])) || undefined,
          10_000,
          100,
        );
        expect(await exists('nbs/fg'), 'the owner waits for its blocking dependent').to.equal(true);
        await ok(['patch', 'cm', 'fg-dep', '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
        await waitFor('fg collected', async () => !(await exists('nbs/fg')) || undefined, 10_000, 100);
        expect(await exists('cm/fg-dep')).to.equal(false);
      });

      it('orphan: the owner goes, its dependents stay without the reference', async () => {
        const uid = await owner('or');
        await ok(['apply', '-f', '-'], dependent('or-dep', 'or', uid));
        await ok(['delete', 'nbs', 'or', '--cascade=orphan']);
        expect(await exists('nbs/or')).to.equal(false);
        expect(await ok(['get', 'cm', 'or-dep', '-o', 'jsonpath={.metadata.ownerReferences}'])).to.equal('');
      });
    });
  }

  // Last: it deletes the CRD (a describe's own tests run before its nested describes).
  describe('a deleted CRD', () =>
    it('takes the dependents of its objects with it', async () => {
      const { run: k } = kubectlAs(() => srv.kubeconfigPath, 'kubectl', 'default');
      expect((await k(['apply', '-f', '-'], server('crd-owner'))).code).to.equal(0);
      const uid = (await k(['get', 'nbs', 'crd-owner', '-o', 'jsonpath={.metadata.uid}'])).stdout;
      expect((await k(['apply', '-f', '-'], dependent('crd-dep', 'crd-owner', uid))).code).to.equal(0);
      expect((await k(['delete', 'crd', 'notebookservers.nbswarm.io'])).code).to.equal(0);
      await waitFor('crd-dep collected', async () => (await k(['get', 'cm', 'crd-dep'])).code !== 0 || undefined, 10_000, 100);
    }));
});
