/**
 * RBAC's pure parts (rule matching, the escalation cover check) and the parts that need a store
 * but no network: token expiry and audience, the bootstrap policy's reconciliation, and the
 * authorizer forgetting bindings that went away without passing the write path.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { RBACAuthorizer } from '../../src/apiserver/auth/rbac/authorizer.js';
import { reconcileBootstrapPolicy } from '../../src/apiserver/auth/rbac/bootstrap.js';
import { ruleAllows, uncoveredRules, type PolicyRule, type RuleRequest } from '../../src/apiserver/auth/rbac/rules.js';
import { loadSigningKey, ServiceAccountTokens } from '../../src/apiserver/auth/serviceaccounts.js';
import type { User } from '../../src/apiserver/auth/tokens.js';
import type { Attributes } from '../../src/apiserver/auth/authorizer.js';
import { KindRegistry } from '../../src/apiserver/registry/registry.js';
import type { Store } from '../../src/apiserver/storage/sqlite.js';
import type { StoredObject } from '../../src/apiserver/types.js';
import { createLogger } from '../../src/log.js';
import { openTempStore, type TempStore } from '../helpers/store.js';

const req = (verb: string, resource: string, extra: Partial<RuleRequest> = {}): RuleRequest => ({
  verb,
  resourceRequest: true,
  group: '',
  resource,
  subresource: '',
  name: '',
  path: '',
  ...extra,
});

describe('RBAC rules', () => {
  it('match verbs, groups, resources, subresources and names as Kubernetes does', () => {
    const pods: PolicyRule = { apiGroups: [''], resources: ['pods'], verbs: ['get'] };
    expect(ruleAllows(pods, req('get', 'pods'))).to.equal(true);
    expect(ruleAllows(pods, req('list', 'pods'))).to.equal(false);
    expect(ruleAllows(pods, req('get', 'pods', { group: 'apps' }))).to.equal(false);
    expect(ruleAllows(pods, req('get', 'pods', { subresource: 'log' })), 'a resource does not grant its subresources').to.equal(false);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }, req('get', 'pods', { subresource: 'log' }))).to.equal(true);
    expect(ruleAllows({ apiGroups: [''], resources: ['*/status'], verbs: ['get'] }, req('get', 'nodes', { subresource: 'status' }))).to.equal(true);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }, req('get', 'pods', { subresource: 'exec' }))).to.equal(true);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }, req('get', 'pods'))).to.equal(false);
    const named: PolicyRule = { apiGroups: ['*'], resources: ['*'], resourceNames: ['a'], verbs: ['*'] };
    expect(ruleAllows(named, req('delete', 'configmaps', { name: 'a' }))).to.equal(true);
    expect(ruleAllows(named, req('delete', 'configmaps', { name: 'b' }))).to.equal(false);
    expect(ruleAllows(named, req('list', 'configmaps')), 'resourceNames never allow a list').to.equal(false);
    const urls: PolicyRule = { nonResourceURLs: ['/apis/*', '/version'], verbs: ['get'] };
    const path = (p: string) => ({ ...req('get', ''), resourceRequest: false, path: p });
    expect(ruleAllows(urls, path('/apis/nbswarm.io/v1'))).to.equal(true);
    expect(ruleAllows(urls, path('/version'))).to.equal(true);
    expect(ruleAllows(urls, path('/metrics'))).to.equal(false);
    expect(ruleAllows(urls, req('get', 'pods')), 'URL rules grant no resources').to.equal(false);
  });

  it('cover only what the owner holds; a requested wildcard needs an owner wildcard', () => {
    const owner: PolicyRule[] = [
      { apiGroups: [''], resources: ['configmaps', 'pods/*'], verbs: ['get', 'list'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['s1'], verbs: ['get'] },
    ];
    expect(uncoveredRules(owner, [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }])).to.deep.equal([]);
    expect(uncoveredRules(owner, [{ apiGroups: [''], resources: ['pods/log'], verbs: ['list'] }])).to.deep.equal([]);
    expect(uncoveredRules(owner, [{ apiGroups: [''], resources: ['configmaps'], verbs: ['*'] }])).to.deep.equal([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['*'] },
    ]);
    expect(uncoveredRules(owner, [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['s1'], verbs: ['get'] }])).to.deep.equal([]);
    expect(uncoveredRules(owner, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]), 'all names is more than one name').to.have.length(1);
    expect(uncoveredRules(owner, [{ apiGroups: ['*'], resources: ['configmaps'], verbs: ['get'] }])).to.have.length(1);
    expect(uncoveredRules([{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }], [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }])).to.deep.equal([]);
    expect(uncoveredRules(owner, [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }])).to.have.length(1);
    expect(uncoveredRules([{ nonResourceURLs: ['/*'], verbs: ['get'] }], [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }])).to.deep.equal([]);
  });
});

describe('RBAC with a store', () => {
  let temp: TempStore;
  let storage: Store;
  let registry: KindRegistry;
  let authorizer: RBACAuthorizer;
  const stored = (o: object) =>
    ({
      ...o,
      metadata: { uid: randomUUID(), creationTimestamp: new Date().toISOString(), ...(o as { metadata: object }).metadata },
    }) as unknown as StoredObject;

  beforeEach(() => {
    temp = openTempStore('rbac-unit');
    storage = temp.storage;
    registry = new KindRegistry(createLogger({ silent: true }));
    authorizer = new RBACAuthorizer(storage, registry);
  });
  afterEach(() => temp.remove());

  it('bootstrap restores what a built-in role lacks, keeps what an admin added, and leaves autoupdate=false alone', async () => {
    reconcileBootstrapPolicy(storage);
    const key = 'rbac.authorization.k8s.io/clusterroles';
    const hub = storage.get(key, '', 'nbswarm-hub')!;
    const trimmed = { ...hub, rules: [{ apiGroups: ['example.io'], resources: ['gadgets'], verbs: ['get'] }] };
    storage.write('MODIFIED', key, '', 'nbswarm-hub', structuredClone(trimmed), hub);
    const edit = storage.get(key, '', 'system:aggregate-to-edit')!;
    const frozen = { ...edit, metadata: { ...edit.metadata, annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'false' } }, rules: [] };
    storage.write('MODIFIED', key, '', 'system:aggregate-to-edit', structuredClone(frozen), edit);
    await storage.settled();
    reconcileBootstrapPolicy(storage);
    const rules = storage.get(key, '', 'nbswarm-hub')!.rules as PolicyRule[];
    expect(rules[0]).to.deep.equal({ apiGroups: ['example.io'], resources: ['gadgets'], verbs: ['get'] });
    expect(rules.length).to.equal((hub.rules as unknown[]).length + 1);
    expect(storage.get(key, '', 'system:aggregate-to-edit')!.rules).to.deep.equal([]);
    const rv = storage.currentRv;
    reconcileBootstrapPolicy(storage);
    expect(storage.currentRv, 'a reconciled policy is not written again').to.equal(rv);
  });

  it('view, edit and admin are aggregated as in Kubernetes: extended by label, hand-made rules replaced, selectors restored', async () => {
    reconcileBootstrapPolicy(storage);
    const key = 'rbac.authorization.k8s.io/clusterroles';
    const rulesOf = (name: string) => JSON.stringify(storage.get(key, '', name)!.rules);
    expect(rulesOf('view')).to.equal(rulesOf('system:aggregate-to-view'));
    expect(rulesOf('view')).to.not.contain('secrets');
    for (const r of JSON.parse(rulesOf('view'))) expect(JSON.parse(rulesOf('edit'))).to.deep.include(r);
    for (const r of JSON.parse(rulesOf('edit'))) expect(JSON.parse(rulesOf('admin'))).to.deep.include(r);
    expect(rulesOf('edit')).to.contain('secrets');
    expect(rulesOf('admin')).to.contain('rolebindings');
    expect(rulesOf('edit')).to.not.contain('rolebindings');

    const gadgets = { apiGroups: ['example.io'], resources: ['gadgets'], verbs: ['get', 'list', 'watch'] };
    storage.write('ADDED', key, '', 'gadget-viewer', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'gadget-viewer', uid: randomUUID(), labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
      rules: [gadgets],
    });
    const view = storage.get(key, '', 'view')!;
    storage.write(
      'MODIFIED',
      key,
      '',
      'view',
      { ...structuredClone(view), rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }], aggregationRule: null },
      view,
    );
    await storage.settled();
    reconcileBootstrapPolicy(storage);
    for (const name of ['view', 'edit', 'admin']) expect(JSON.parse(rulesOf(name)), name).to.deep.include(gadgets);
    expect(rulesOf('view')).to.not.contain('"*"');
    expect(storage.get(key, '', 'view')!.aggregationRule).to.deep.equal({
      clusterRoleSelectors: [{ matchLabels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } }],
    });
  });

  it('forgets a RoleBinding that left storage without its strategy (a namespace sweep)', async () => {
    reconcileBootstrapPolicy(storage);
    const user: User = { name: 'alice', namespaces: null, groups: ['system:authenticated'] };
    const attrs: Attributes = {
      user,
      verb: 'get',
      resourceRequest: true,
      group: '',
      resource: 'configmaps',
      subresource: '',
      name: '',
      namespace: 'team',
      namespaced: true,
    };
    expect(authorizer.authorize(attrs).allowed).to.equal(false);
    const rb = stored({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'alice', namespace: 'team' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
    });
    const saved = storage.write('ADDED', 'rbac.authorization.k8s.io/rolebindings', 'team', 'alice', rb);
    await storage.settled();
    expect(authorizer.authorize(attrs)).to.deep.equal({
      allowed: true,
      reason: 'RBAC: allowed by RoleBinding "alice/team" of ClusterRole "view" to User "alice"',
    });
    expect(authorizer.authorize({ ...attrs, resource: 'secrets' }).allowed, 'view has no Secrets').to.equal(false);
    storage.write('DELETED', 'rbac.authorization.k8s.io/rolebindings', 'team', 'alice', structuredClone(saved), saved);
    await storage.settled();
    expect(authorizer.authorize(attrs).allowed).to.equal(false);
  });

  it('token-file users: a hub for every namespace gets nbswarm-hub in each but nothing cluster-scoped beyond reads', () => {
    reconcileBootstrapPolicy(storage);
    const hub: User = { name: 'hub', role: 'hub', namespaces: null };
    const a = (verb: string, resource: string, namespace: string, namespaced = true, group = ''): Attributes => ({
      user: hub,
      verb,
      resourceRequest: true,
      group,
      resource,
      subresource: '',
      name: '',
      namespace,
      namespaced,
    });
    expect(authorizer.authorize(a('create', 'secrets', 'anywhere')).allowed).to.equal(true);
    expect(authorizer.authorize(a('list', 'secrets', '')).allowed, 'across all namespaces').to.equal(true);
    expect(authorizer.authorize(a('create', 'leases', 'nbswarm', true, 'coordination.k8s.io')).allowed).to.equal(false);
    expect(authorizer.authorize(a('list', 'namespaces', '', false)).allowed).to.equal(true);
    expect(authorizer.authorize(a('create', 'namespaces', '', false)).allowed).to.equal(false);
    expect(authorizer.authorize(a('create', 'clusterroles', '', false, 'rbac.authorization.k8s.io')).allowed).to.equal(false);
  });

  it('tokens expire, name this server as audience, and die with their ServiceAccount', async () => {
    let now = 1_900_000_000;
    const keyFile = join(temp.dir, 'service-account.key');
    const tokens = new ServiceAccountTokens(loadSigningKey(keyFile), storage, () => now);
    expect(statSync(keyFile).mode & 0o777).to.equal(0o600);
    const sa = storage.write(
      'ADDED',
      '/serviceaccounts',
      'team',
      'bot',
      stored({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'bot', namespace: 'team' } }),
    );
    await storage.settled();
    const issue = (audiences: string[]) => tokens.issue({ namespace: 'team', serviceAccount: sa, audiences, expirationSeconds: 600 }).token;
    const token = issue(['https://kubernetes.default.svc.cluster.local']);
    expect(tokens.authenticate(`Bearer ${token}`)?.name).to.equal('system:serviceaccount:team:bot');
    expect(tokens.authenticate(`Bearer ${issue(['vault'])}`)).to.equal(null);
    const [h, p, sig] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), exp: now + 10 ** 6 })).toString('base64url');
    expect(tokens.authenticate(`Bearer ${h}.${forged}.${sig}`), 'a changed claim breaks the signature').to.equal(null);
    const other = new ServiceAccountTokens(loadSigningKey(join(temp.dir, 'other.key')), storage, () => now);
    expect(other.authenticate(`Bearer ${token}`), 'another key does not verify it').to.equal(null);
    expect(
      new ServiceAccountTokens(loadSigningKey(keyFile), storage, () => now).authenticate(`Bearer ${token}`),
      'the key file survives a restart',
    ).to.not.equal(null);
    now += 601;
    expect(tokens.authenticate(`Bearer ${token}`), 'expired').to.equal(null);
    now -= 601;
    storage.write('DELETED', '/serviceaccounts', 'team', 'bot', structuredClone(sa), sa);
    await storage.settled();
    expect(tokens.authenticate(`Bearer ${token}`)).to.equal(null);
  });
});
