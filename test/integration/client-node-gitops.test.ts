/**
 * Server-side apply, garbage collection and pruning through @kubernetes/client-node, the library
 * the operator and GitOps tools written for Node use: apply patches with a field manager (with
 * and without force), cascading deletion in the background, the foreground and orphaning, and a
 * sync that prunes by label what left the desired set.
 */
import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { installCrd } from '../../src/controller/crd.js';
import { apiRequest, startTestApiServer, type TestApiServer, until } from '../helpers/apiserver.js';

const NS = 'default';
const NBS = 'nbswarm.io/v1alpha1';

type Obj = k8s.KubernetesObject & Record<string, unknown>;
interface ManagedEntry {
  manager: string;
  operation: string;
  fieldsV1: Record<string, Record<string, unknown>>;
}

const configMap = (name: string, data: Record<string, string>, labels?: Record<string, string>, ownerReferences?: k8s.V1OwnerReference[]): Obj => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: NS, ...(labels ? { labels } : {}), ...(ownerReferences ? { ownerReferences } : {}) },
  data,
});
const notebook = (name: string, env: { name: string; value: string }[], labels?: Record<string, string>): Obj => ({
  apiVersion: NBS,
  kind: 'NotebookServer',
  metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
  spec: { user: 'alice', env },
});

describe('SSA, garbage collection and pruning with @kubernetes/client-node', function () {
  let srv: TestApiServer;
  let objects: k8s.KubernetesObjectApi;

  const apply = (o: Obj, manager: string, force = false, dryRun?: string) =>
    objects.patch(o, undefined, dryRun, manager, force, k8s.PatchStrategy.ServerSideApply) as Promise<Obj>;
  const read = (o: Obj) => objects.read(o as Obj & { metadata: { name: string } }) as Promise<Obj>;
  const exists = async (o: Obj) => (await failure(read(o))) !== 404;
  const managed = async (o: Obj) => ((await read(o)).metadata?.managedFields ?? []) as unknown as ManagedEntry[];
  const owner = async (name: string): Promise<k8s.V1OwnerReference> => {
    const created = await objects.create(notebook(name, []));
    return { apiVersion: NBS, kind: 'NotebookServer', name, uid: created.metadata!.uid! };
  };

  before(async () => {
    srv = await startTestApiServer();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(srv.kubeconfigPath);
    objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    // The operator's own installer, which sends the CRD through client-node's typed model.
    expect(await installCrd(kc, { timeoutMs: 10_000 })).to.equal('created');
  });
  after(async () => srv?.cleanup());

  describe('server-side apply', () => {
    it("the operator's CRD installer keeps the schema's list types (client-node drops x-kubernetes-* keys of plain objects)", async () => {
      const crd = await apiRequest(srv, 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/notebookservers.nbswarm.io');
      const spec = crd.body.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
      expect(spec.env).to.include({ 'x-kubernetes-list-type': 'map' });
      expect(spec.env['x-kubernetes-list-map-keys']).to.deep.equal(['name']);
    });

    it('records the field manager, refuses a conflicting manager unless forced, and then hands the field over', async () => {
      const created = await apply(configMap('ssa', { a: '1', b: '2' }), 'gitops-agent');
      expect(created.data).to.deep.equal({ a: '1', b: '2' });
      const agent = (await managed(created)).find((m) => m.manager === 'gitops-agent');
      expect(agent?.operation).to.equal('Apply');
      expect(agent?.fieldsV1['f:data']).to.have.keys('f:a', 'f:b');

      const conflict = await failure(apply(configMap('ssa', { b: '3' }), 'rollout-tool'), true);
      expect(conflict.code).to.equal(409);
      expect(conflict.body)
        .to.match(/conflict with "gitops-agent"/)
        .and.to.match(/\.data\.b/);
      expect((await read(created)).data).to.deep.equal({ a: '1', b: '2' });

      const forced = await apply(configMap('ssa', { b: '3' }), 'rollout-tool', true);
      expect(forced.data).to.deep.equal({ a: '1', b: '3' });
      const entries = await managed(created);
      expect(entries.find((m) => m.manager === 'rollout-tool')?.fieldsV1['f:data']).to.deep.equal({ 'f:b': {} });
      expect(entries.find((m) => m.manager === 'gitops-agent')?.fieldsV1['f:data']).to.deep.equal({ 'f:a': {} });

      // The agent's next apply without b leaves b (another manager owns it); the other manager dropping it removes it.
      await apply(configMap('ssa', { a: '1' }), 'gitops-agent');
      expect((await read(created)).data).to.deep.equal({ a: '1', b: '3' });
      await apply(configMap('ssa', {}), 'rollout-tool');
      expect((await read(created)).data).to.deep.equal({ a: '1' });
    });

    it('merges list items keyed by the schema between managers, and a server dry run stores nothing', async () => {
      await apply(notebook('ssa-nb', [{ name: 'A', value: '1' }]), 'gitops-agent');
      await apply(notebook('ssa-nb', [{ name: 'HUB', value: 'h' }]), 'hub');
      const nb = await read(notebook('ssa-nb', []));
      expect((nb.spec as { env: unknown[] }).env).to.deep.equal([
        { name: 'A', value: '1' },
        { name: 'HUB', value: 'h' },
      ]);
      const hub = (await managed(nb)).find((m) => m.manager === 'hub');
      expect(hub?.fieldsV1['f:spec']).to.have.nested.property('f:env.k:{"name":"HUB"}');

      const dry = await apply(notebook('ssa-nb', [{ name: 'A', value: '2' }]), 'gitops-agent', false, 'All');
      expect((dry.spec as { env: unknown[] }).env).to.deep.include({ name: 'A', value: '2' });
      const stored = await read(nb);
      expect(stored.metadata?.resourceVersion).to.equal(nb.metadata?.resourceVersion);
      expect((stored.spec as { env: unknown[] }).env).to.deep.include({ name: 'A', value: '1' });
    });
  });

  describe('garbage collection', () => {
    it('background (the default): a dependent goes with its owner', async () => {
      const ref = await owner('gc-bg');
      const dep = await objects.create(configMap('gc-bg-dep', { k: 'v' }, undefined, [ref]));
      await objects.delete(notebook('gc-bg', []));
      await until(async () => !(await exists(dep as Obj)), 10_000, 'the dependent collected');
    });

    it('foreground: the owner waits with foregroundDeletion while a blocking dependent is deleted', async () => {
      const ref = await owner('gc-fg');
      const dep = configMap('gc-fg-dep', { k: 'v' }, undefined, [{ ...ref, blockOwnerDeletion: true }]);
      dep.metadata!.finalizers = ['example.com/hold'];
      await objects.create(dep);
      await objects.delete(notebook('gc-fg', []), undefined, undefined, undefined, undefined, 'Foreground');
      const waiting = await read(notebook('gc-fg', []));
      expect(waiting.metadata?.deletionTimestamp).to.be.a('date');
      expect(waiting.metadata?.finalizers).to.include('foregroundDeletion');
      await until(async () => !!(await read(dep)).metadata?.deletionTimestamp, 10_000, 'the dependent being deleted');
      expect(await exists(waiting), 'the owner waits for its blocking dependent').to.equal(true);
      await objects.patch(
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'gc-fg-dep', namespace: NS, finalizers: null } } as unknown as Obj,
        undefined,
        undefined,
        'test',
        undefined,
        k8s.PatchStrategy.MergePatch,
      );
      await until(async () => !(await exists(waiting)), 10_000, 'the owner collected');
      expect(await exists(dep)).to.equal(false);
    });

    it('orphan: the owner goes at once and its dependent stays without the reference', async () => {
      const ref = await owner('gc-or');
      const dep = configMap('gc-or-dep', { k: 'v' }, undefined, [ref]);
      await objects.create(dep);
      await objects.delete(notebook('gc-or', []), undefined, undefined, undefined, undefined, 'Orphan');
      await until(async () => !(await exists(notebook('gc-or', []))), 10_000, 'the owner gone');
      const left = await read(dep);
      expect(left.metadata?.ownerReferences ?? []).to.deep.equal([]);
    });
  });

  describe('pruning by label', () => {
    const SET = { 'app.kubernetes.io/managed-by': 'gitops-agent', 'gitops.example.com/set': 'demo' };
    const selector = Object.entries(SET)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    /** One sync as a Node GitOps tool does it: apply the desired set, then delete what carries the set's labels but left it. */
    const sync = async (desired: Obj[]) => {
      for (const o of desired) await apply(o, 'gitops-agent', true);
      const pruned: string[] = [];
      for (const [apiVersion, kind] of [
        ['v1', 'ConfigMap'],
        [NBS, 'NotebookServer'],
      ]) {
        const live = await objects.list(apiVersion, kind, NS, undefined, undefined, undefined, undefined, selector);
        for (const o of live.items) {
          if (desired.some((d) => d.kind === kind && d.metadata?.name === o.metadata?.name)) continue;
          await objects.delete(
            { apiVersion, kind, metadata: { name: o.metadata!.name!, namespace: NS } },
            undefined,
            undefined,
            undefined,
            undefined,
            'Background',
          );
          pruned.push(`${kind}/${o.metadata!.name}`);
        }
      }
      return pruned.sort();
    };

    it('prunes exactly the labelled objects that left the set, and their dependents with them', async () => {
      await objects.create(configMap('pr-bystander', { k: 'v' }, { 'app.kubernetes.io/managed-by': 'gitops-agent' }));
      const full = [configMap('pr-a', { k: '1' }, SET), configMap('pr-b', { k: '2' }, SET), notebook('pr-nb', [{ name: 'A', value: '1' }], SET)];
      expect(await sync(full)).to.deep.equal([]);
      const nb = await read(full[2]);
      // A dependent the operator would create for the server (not labelled: it goes by ownership).
      const dep = configMap('pr-nb-hub', { k: 'v' }, undefined, [{ apiVersion: NBS, kind: 'NotebookServer', name: 'pr-nb', uid: nb.metadata!.uid! }]);
      await objects.create(dep);

      expect(await sync([full[0]])).to.deep.equal(['ConfigMap/pr-b', 'NotebookServer/pr-nb']);
      expect(await exists(full[0])).to.equal(true);
      expect(await exists(full[1])).to.equal(false);
      expect(await exists(configMap('pr-bystander', {})), 'not in the set: not pruned').to.equal(true);
      await until(async () => !(await exists(full[2])) && !(await exists(dep)), 10_000, 'the pruned server and its dependent gone');
      expect(await sync([full[0]])).to.deep.equal([]);
    });
  });
});

/** The HTTP status a call failed with (or 200); with `detail`, the status and the Status message too. */
async function failure(p: Promise<unknown>): Promise<number>;
async function failure(p: Promise<unknown>, detail: true): Promise<{ code: number; body: string }>;
async function failure(p: Promise<unknown>, detail = false): Promise<number | { code: number; body: string }> {
  let code = 200;
  let body = '';
  try {
    await p;
  } catch (e) {
    const err = e as { code?: number; body?: unknown };
    if (typeof err.code !== 'number') throw e;
    code = err.code;
    // client-node keeps the response body as the text it received: a JSON Status.
    const text = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    try {
      body = String((JSON.parse(text) as { message?: unknown }).message ?? text);
    } catch {
      body = text;
    }
  }
  return detail ? { code, body } : code;
}
