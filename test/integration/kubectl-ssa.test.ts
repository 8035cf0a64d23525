import { expect } from 'chai';
import { installNotebookServerCrd, kubectlAs, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

/**
 * Server-side apply ownership the way GitOps agents use it, with the real kubectl binaries:
 * the client-side → server-side migration Argo CD performs, shared ownership, finalizers as a
 * set, map lists keyed by the schema, and dry run agreeing with the real apply.
 */
interface Entry {
  manager: string;
  operation: string;
  fieldsV1: Record<string, Record<string, unknown>>;
}

const configMap = (data: Record<string, string>, extra = '') =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n${extra}data:\n${Object.entries(data)
    .map(([k, v]) => `  ${k}: "${v}"\n`)
    .join('')}`;

const notebook = (env: Record<string, string>, finalizers: string[] = []) => `apiVersion: nbswarm.io/v1alpha1
kind: NotebookServer
metadata:
  name: nb
${finalizers.length ? `  finalizers:\n${finalizers.map((f) => `  - ${f}\n`).join('')}` : ''}spec:
  user: alice
  env:
${Object.entries(env)
  .map(([n, v]) => `  - name: ${n}\n    value: "${v}"\n`)
  .join('')}`;

for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) {
  describe(`server-side apply ownership (${bin})`, function () {
    let srv: TestApiServer;
    const ns = `ssa-${bin.replace(/\W/g, '-')}`;
    const { run: k, ok } = kubectlAs(() => srv.kubeconfigPath, bin, ns);
    const managed = async (kind: string, name: string): Promise<{ obj: any; entries: Entry[] }> => {
      const obj = JSON.parse(await ok(['get', kind, name, '-o', 'json', '--show-managed-fields']));
      return { obj, entries: obj.metadata.managedFields ?? [] };
    };
    const entry = (entries: Entry[], manager: string) => entries.find((e) => e.manager === manager);

    before(async () => {
      srv = await startTestApiServer();
      await ok(['create', 'namespace', ns]);
      await installNotebookServerCrd(srv.kubeconfigPath);
    });
    after(async () => srv?.cleanup());

    it('migrates client-side apply to the server-side manager, so a field removed from Git leaves the object', async () => {
      await ok(['apply', '-f', '-'], configMap({ a: '1', b: '2' }));
      expect(entry((await managed('cm', 'cfg')).entries, 'kubectl-client-side-apply')?.fieldsV1['f:data']).to.have.keys('f:a', 'f:b');

      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], configMap({ a: '1', b: '2' }));
      const { entries } = await managed('cm', 'cfg');
      const argo = entry(entries, 'argocd-controller');
      expect(argo?.operation).to.equal('Apply');
      expect(argo?.fieldsV1['f:data']).to.have.keys('f:a', 'f:b');
      expect(entry(entries, 'kubectl-client-side-apply'), "kubectl moved the client-side owner's fields").to.equal(undefined);

      const diff = await k(['diff', '--server-side', '--field-manager=argocd-controller', '-f', '-'], configMap({ a: '1' }));
      expect(diff.code, diff.stderr).to.equal(1);
      expect(diff.stdout).to.match(/-\s+b: "2"/);

      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], configMap({ a: '1' }));
      expect((await managed('cm', 'cfg')).obj.data).to.deep.equal({ a: '1' });
      const clean = await k(['diff', '--server-side', '--field-manager=argocd-controller', '-f', '-'], configMap({ a: '1' }));
      expect(clean.code, clean.stdout + clean.stderr).to.equal(0);
    });

    it('records a second manager applying the same value as a shared owner, and keeps the field while either applies it', async () => {
      await ok(['apply', '--server-side', '--field-manager=team-b', '-f', '-'], configMap({ a: '1' }));
      const { entries } = await managed('cm', 'cfg');
      expect(entry(entries, 'team-b')?.fieldsV1['f:data']).to.have.keys('f:a');
      expect(entry(entries, 'argocd-controller')?.fieldsV1['f:data']).to.have.keys('f:a');
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], configMap({ c: '3' }));
      expect((await managed('cm', 'cfg')).obj.data, 'team-b still applies a').to.deep.equal({ a: '1', c: '3' });
    });

    it('writes the managedFields a dry run showed', async () => {
      const input = configMap({ c: '3', d: '4' }, '  labels:\n    app: x\n');
      const dry = JSON.parse(
        await ok(['apply', '--server-side', '--field-manager=argocd-controller', '--dry-run=server', '--show-managed-fields', '-o', 'json', '-f', '-'], input),
      );
      const real = JSON.parse(
        await ok(['apply', '--server-side', '--field-manager=argocd-controller', '--show-managed-fields', '-o', 'json', '-f', '-'], input),
      );
      // Entries are ordered by time: when the second ticks between the dry run and the apply, the
      // applier moves behind a manager it came before. Compare them by manager, without times.
      const strip = (l: Entry[]) => l.map((e) => ({ ...e, time: undefined })).sort((a, b) => a.manager.localeCompare(b.manager));
      expect(strip(real.metadata.managedFields)).to.deep.equal(strip(dry.metadata.managedFields));
      expect(real.data).to.deep.equal(dry.data);
      expect(entry(real.metadata.managedFields, 'argocd-controller')?.fieldsV1['f:metadata']).to.deep.equal({ 'f:labels': { 'f:app': {} } });
    });

    it("treats finalizers as a set: a declared one neither conflicts with nor removes the operator's", async () => {
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], notebook({ A: '1' }));
      await ok([
        'patch',
        'notebookserver',
        'nb',
        '--type=merge',
        '--field-manager=nbswarm-operator',
        '-p',
        '{"metadata":{"finalizers":["nbswarm.io/cleanup"]}}',
      ]);
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], notebook({ A: '1' }, ['example.com/keep']));
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '--force-conflicts', '-f', '-'], notebook({ A: '1' }, ['example.com/keep']));
      const { obj, entries } = await managed('notebookserver', 'nb');
      expect(obj.metadata.finalizers).to.have.members(['nbswarm.io/cleanup', 'example.com/keep']);
      expect(entry(entries, 'nbswarm-operator')?.fieldsV1['f:metadata']).to.deep.equal({ 'f:finalizers': { 'v:"nbswarm.io/cleanup"': {} } });
      expect(entry(entries, 'argocd-controller')?.fieldsV1['f:metadata']).to.deep.equal({ 'f:finalizers': { 'v:"example.com/keep"': {} } });
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], notebook({ A: '1' }));
      expect(JSON.parse(await ok(['get', 'notebookserver', 'nb', '-o', 'json'])).metadata.finalizers).to.deep.equal(['nbswarm.io/cleanup']);
      await ok(['patch', 'notebookserver', 'nb', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    });

    it("merges spec.env by name: another manager's variable stays, and a conflict names the item", async () => {
      await ok([
        'patch',
        'notebookserver',
        'nb',
        '--type=json',
        '--field-manager=hub',
        '-p',
        '[{"op":"add","path":"/spec/env/-","value":{"name":"HUB","value":"h"}}]',
      ]);
      await ok(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], notebook({ A: '2' }));
      expect(JSON.parse(await ok(['get', 'notebookserver', 'nb', '-o', 'json'])).spec.env).to.deep.equal([
        { name: 'A', value: '2' },
        { name: 'HUB', value: 'h' },
      ]);
      const r = await k(['apply', '--server-side', '--field-manager=argocd-controller', '-f', '-'], notebook({ A: '2', HUB: 'mine' }));
      expect(r.code).to.not.equal(0);
      expect(r.stderr)
        .to.match(/conflict with "hub"/)
        .and.to.match(/\.spec\.env\[name="HUB"\]\.value/);
    });
  });
}
