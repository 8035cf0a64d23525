/**
 * RBAC and identities against the real server with the real kubectl (oldest, default and newest
 * on the machine) and @kubernetes/client-node: the token file's roles as built-in ClusterRoles,
 * the operator's Lease namespace closed to tenants, ServiceAccounts with bound and legacy tokens,
 * `kubectl auth can-i` (and --list), and the escalation check.
 */
import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../../src/paths.js';
import { apiRequest, kubectl, startTestApiServer, until, type TestApiServer } from '../helpers/apiserver.js';

const TOKENS = 'admintok,admin,admin,*\nviewtok,vera,viewer\nhubtok,jupyterhub,hub,team\n';

const lease = (ns: string) => `apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: nbswarm-operator-nbs, namespace: ${ns}}
spec: {holderIdentity: tenant, leaseDurationSeconds: 2147483647}
`;

async function startWithTokens(): Promise<{ srv: TestApiServer; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-rbac-'));
  writeFileSync(join(dir, 'tokens.csv'), TOKENS, { mode: 0o600 });
  const srv = await startTestApiServer({ dataDir: dir });
  return { srv, dir };
}

for (const bin of ['kubectl.1.27', 'kubectl', 'kubectl.1.33']) {
  describe(`RBAC and ServiceAccounts (${bin})`, function () {
    let srv: TestApiServer;
    let dir: string;
    const k = (args: string[], token?: string, input?: string) =>
      kubectl([...(token ? ['--token', token] : []), ...args], { kubeconfig: srv.kubeconfigPath, bin, input });
    const ok = async (args: string[], token?: string, input?: string) => {
      const r = await k(args, token, input);
      expect(r.code, `kubectl ${args.join(' ')}\n${r.stderr}`).to.equal(0);
      return r.stdout;
    };
    const denied = async (args: string[], token: string | undefined, pattern: RegExp, input?: string) => {
      const r = await k(args, token, input);
      expect(r.code, `kubectl ${args.join(' ')} should fail\n${r.stdout}`).to.not.equal(0);
      expect(r.stderr).to.match(pattern);
    };
    const canI = async (args: string[], token?: string) => (await k(['auth', 'can-i', ...args], token)).stdout.trim();

    before(async () => {
      ({ srv, dir } = await startWithTokens());
      await ok(['apply', '-f', repoPath('crds/notebookserver.yaml')]);
      await ok(['create', 'namespace', 'team']);
      await ok(['create', 'secret', 'generic', 'db', '-n', 'team', '--from-literal=password=s3cr3t']);
      await ok(['create', 'configmap', 'settings', '-n', 'team', '--from-literal=a=1']);
    });
    after(async () => {
      await srv?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('serves the built-in ClusterRoles and their bindings', async () => {
      const roles = await ok(['get', 'clusterroles', '-o', 'name']);
      for (const r of ['cluster-admin', 'admin', 'edit', 'view', 'nbswarm-hub', 'system:discovery'])
        expect(roles).to.contain(`clusterrole.rbac.authorization.k8s.io/${r}\n`);
      const view = JSON.parse(await ok(['get', 'clusterrole', 'view', '-o', 'json']));
      expect(JSON.stringify(view.rules)).to.not.contain('secrets');
      expect(await ok(['get', 'clusterrolebinding', 'system:discovery'])).to.match(/ClusterRole\/system:discovery/);
    });

    it("the token file's viewer reads ConfigMaps but no Secrets, in any namespace", async () => {
      expect(await ok(['get', 'configmap', 'settings', '-n', 'team', '-o', 'name'], 'viewtok')).to.equal('configmap/settings\n');
      await denied(
        ['get', 'secrets', '-n', 'team'],
        'viewtok',
        /secrets is forbidden: User "vera" cannot list resource "secrets" in API group "" in the namespace "team"/,
      );
      await denied(['get', 'secret', 'db', '-n', 'team'], 'viewtok', /forbidden/);
      await denied(['get', 'secrets', '-A'], 'viewtok', /forbidden/);
      expect(await canI(['get', 'secrets', '-n', 'team'], 'viewtok')).to.equal('no');
      expect(await canI(['list', 'configmaps', '-n', 'default'], 'viewtok')).to.equal('yes');
      expect(await canI(['create', 'configmaps', '-n', 'team'], 'viewtok')).to.equal('no');
    });

    it("a hub token cannot write the operator's Lease in nbswarm, nor Leases in its own namespace", async () => {
      await denied(['apply', '-f', '-'], 'hubtok', /leases.coordination.k8s.io "nbswarm-operator-nbs" is forbidden|forbidden/, lease('nbswarm'));
      await denied(['apply', '-f', '-'], 'hubtok', /forbidden/, lease('team'));
      expect(await canI(['create', 'leases.coordination.k8s.io', '-n', 'nbswarm'], 'hubtok')).to.equal('no');
      expect(await canI(['update', 'leases.coordination.k8s.io', '-n', 'team'], 'hubtok')).to.equal('no');
      // What it is for still works: Secrets and ConfigMaps in its namespace, nothing outside it.
      expect(await ok(['get', 'secret', 'db', '-n', 'team', '-o', 'jsonpath={.data.password}'], 'hubtok')).to.equal(Buffer.from('s3cr3t').toString('base64'));
      await ok(['create', 'configmap', 'hubcm', '-n', 'team', '--from-literal=x=1'], 'hubtok');
      await denied(['create', 'configmap', 'hubcm', '-n', 'default', '--from-literal=x=1'], 'hubtok', /forbidden/);
      expect(await canI(['create', 'notebookservers.nbswarm.io', '-n', 'team'], 'hubtok')).to.equal('yes');
      expect(await canI(['create', 'notebookservers.nbswarm.io', '-n', 'default'], 'hubtok')).to.equal('no');
      const list = await ok(['auth', 'can-i', '--list', '-n', 'team'], 'hubtok');
      expect(list).to.match(/notebookservers\.nbswarm\.io\s+\[\]\s+\[\]\s+\[get list watch create delete deletecollection patch update\]/);
      expect(list).to.not.match(/leases/);
      // The admin still writes Leases in nbswarm (the operator's identity).
      await ok(['apply', '-f', '-'], undefined, lease('nbswarm'));
    });

    it('a GitOps agent gets its own ServiceAccount, a namespaced Role and a token that ends with the ServiceAccount', async () => {
      await ok(['create', 'serviceaccount', 'agent', '-n', 'team']);
      await ok(['create', 'role', 'agent', '-n', 'team', '--verb=get,list,watch,create,update,patch,delete', '--resource=configmaps']);
      await ok(['create', 'rolebinding', 'agent', '-n', 'team', '--role=agent', '--serviceaccount=team:agent']);
      expect(await ok(['get', 'rolebinding', 'agent', '-n', 'team'])).to.match(/agent\s+Role\/agent/);
      const token = (await ok(['create', 'token', 'agent', '-n', 'team', '--duration=1h'])).trim();
      expect(token.split('.')).to.have.length(3);
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
      expect(claims.sub).to.equal('system:serviceaccount:team:agent');
      expect(claims['kubernetes.io'].namespace).to.equal('team');
      expect(claims.exp - claims.iat).to.equal(3600);
      expect(await ok(['create', 'configmap', 'deployed', '-n', 'team', '--from-literal=v=1'], token)).to.match(/configmap\/deployed created/);
      await denied(['get', 'secrets', '-n', 'team'], token, /User "system:serviceaccount:team:agent" cannot list resource "secrets"/);
      await denied(['get', 'configmaps', '-n', 'default'], token, /forbidden/);
      expect(await canI(['create', 'configmaps', '-n', 'team'], token)).to.equal('yes');
      expect(await canI(['create', 'configmaps', '-n', 'default'], token)).to.equal('no');
      const list = await ok(['auth', 'can-i', '--list', '-n', 'team'], token);
      expect(list).to.match(/configmaps\s+\[\]\s+\[\]\s+\[get list watch create update patch delete\]/);
      expect(list).to.match(/selfsubjectaccessreviews\.authorization\.k8s\.io/);
      if (bin !== 'kubectl.1.27') {
        expect(await ok(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}'], token)).to.equal(
          'system:serviceaccount:team:agent ["system:serviceaccounts","system:serviceaccounts:team","system:authenticated"]',
        );
      }
      // A token for another audience is not for this server.
      const vault = (await ok(['create', 'token', 'agent', '-n', 'team', '--audience=vault'])).trim();
      await denied(['get', 'configmaps', '-n', 'team'], vault, /Unauthorized|must be logged in/);
      // Deleting the ServiceAccount (even re-creating one of the same name) ends its tokens.
      await ok(['delete', 'serviceaccount', 'agent', '-n', 'team']);
      await ok(['create', 'serviceaccount', 'agent', '-n', 'team']);
      await denied(['get', 'configmaps', '-n', 'team'], token, /Unauthorized|must be logged in/);
      await denied(['create', 'token', 'agent', '-n', 'team', '--duration=5m'], undefined, /may not specify a duration less than 10 minutes/);
    });

    it('fills legacy service-account-token Secrets; deleting the Secret revokes its token', async () => {
      await ok(
        ['apply', '-f', '-'],
        undefined,
        `apiVersion: v1
kind: ServiceAccount
metadata: {name: argocd-manager, namespace: team}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: argocd-manager-token
  namespace: team
  annotations: {kubernetes.io/service-account.name: argocd-manager}
`,
      );
      await ok(['create', 'rolebinding', 'argocd-manager', '-n', 'team', '--clusterrole=view', '--serviceaccount=team:argocd-manager']);
      const secret = JSON.parse(await ok(['get', 'secret', 'argocd-manager-token', '-n', 'team', '-o', 'json']));
      expect(Object.keys(secret.data).sort()).to.deep.equal(['ca.crt', 'namespace', 'token']);
      expect(Buffer.from(secret.data['ca.crt'], 'base64').toString()).to.equal(srv.caPem);
      expect(secret.metadata.annotations['kubernetes.io/service-account.uid']).to.be.a('string');
      const token = Buffer.from(secret.data.token, 'base64').toString();
      expect(await ok(['get', 'configmap', 'settings', '-n', 'team', '-o', 'name'], token)).to.equal('configmap/settings\n');
      await denied(['get', 'secrets', '-n', 'team'], token, /forbidden/);
      // Re-applying the Secret keeps its token.
      await ok(['annotate', 'secret', 'argocd-manager-token', '-n', 'team', 'touched=yes']);
      expect(await ok(['get', 'secret', 'argocd-manager-token', '-n', 'team', '-o', 'jsonpath={.data.token}'])).to.equal(secret.data.token);
      await ok(['delete', 'secret', 'argocd-manager-token', '-n', 'team']);
      await denied(['get', 'configmaps', '-n', 'team'], token, /Unauthorized|must be logged in/);
      await denied(
        ['apply', '-f', '-'],
        undefined,
        /argocd-manager-token-2[\s\S]*create the ServiceAccount first/,
        `apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: argocd-manager-token-2
  namespace: team
  annotations: {kubernetes.io/service-account.name: nobody}
`,
      );
    });

    it('nobody grants what they do not hold, unless they may escalate or bind', async () => {
      await ok(['create', 'serviceaccount', 'deployer', '-n', 'team']);
      await ok([
        'create',
        'role',
        'deployer',
        '-n',
        'team',
        '--verb=create,get,list',
        '--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,configmaps',
      ]);
      await ok(['create', 'rolebinding', 'deployer', '-n', 'team', '--role=deployer', '--serviceaccount=team:deployer']);
      const token = (await ok(['create', 'token', 'deployer', '-n', 'team'])).trim();
      await ok(['create', 'role', 'cm-reader', '-n', 'team', '--verb=get', '--resource=configmaps'], token);
      await denied(
        ['create', 'role', 'secret-reader', '-n', 'team', '--verb=get', '--resource=secrets'],
        token,
        /is attempting to grant RBAC permissions not currently held:[\s\S]*Resources:\["secrets"\]/,
      );
      await denied(['create', 'role', 'cm-writer', '-n', 'team', '--verb=*', '--resource=configmaps'], token, /not currently held/);
      await ok(['create', 'rolebinding', 'cm-reader', '-n', 'team', '--role=cm-reader', '--user=alice'], token);
      await denied(['create', 'rolebinding', 'admins', '-n', 'team', '--clusterrole=admin', '--user=alice'], token, /not currently held/);
      await denied(['create', 'clusterrolebinding', 'mine', '--clusterrole=cluster-admin', '--serviceaccount=team:deployer'], token, /forbidden/);
      // With `bind` on the admin ClusterRole, binding it is allowed without holding it.
      await ok(['create', 'role', 'binder', '-n', 'team', '--verb=bind', '--resource=clusterroles.rbac.authorization.k8s.io', '--resource-name=admin']);
      await ok(['create', 'rolebinding', 'binder', '-n', 'team', '--role=binder', '--serviceaccount=team:deployer']);
      await ok(['create', 'rolebinding', 'admins', '-n', 'team', '--clusterrole=admin', '--user=alice'], token);
      await denied(['create', 'rolebinding', 'editors', '-n', 'team', '--clusterrole=edit', '--user=alice'], token, /not currently held/);
    });

    it('aggregates ClusterRoles by label as kube does, and follows label, rule and hand-made changes', async () => {
      const LABEL = 'example.com/aggregate-to-monitoring';
      await ok(
        ['apply', '-f', '-'],
        undefined,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {${LABEL}: "true"}
rules: []
`,
      );
      await ok(['create', 'clusterrole', 'mon-cm', '--verb=get,list', '--resource=configmaps']);
      await ok(['label', 'clusterrole', 'mon-cm', `${LABEL}=true`]);
      await ok(['create', 'clusterrole', 'mon-ev', '--verb=get', '--resource=events']);
      await ok(['label', 'clusterrole', 'mon-ev', `${LABEL}=true`]);
      await ok(['create', 'serviceaccount', 'prom', '-n', 'team']);
      await ok(['create', 'rolebinding', 'prom', '-n', 'team', '--clusterrole=monitoring', '--serviceaccount=team:prom']);
      const token = (await ok(['create', 'token', 'prom', '-n', 'team'])).trim();
      const rules = async () => JSON.parse((await ok(['get', 'clusterrole', 'monitoring', '-o', 'json'])).trim()).rules ?? [];
      const eventually = (what: string, cond: () => Promise<boolean>) => until(cond, 10_000, what);
      // The matched roles' rules, by role name, each once.
      expect(await rules()).to.deep.equal([
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] },
        { apiGroups: [''], resources: ['events'], verbs: ['get'] },
      ]);
      expect(await canI(['list', 'configmaps', '-n', 'team'], token)).to.equal('yes');
      expect(await canI(['get', 'secrets', '-n', 'team'], token)).to.equal('no');
      // A new labelled role adds its rules; a role losing the label takes them away.
      await ok(['create', 'clusterrole', 'mon-secrets', '--verb=get', '--resource=secrets']);
      await ok(['label', 'clusterrole', 'mon-secrets', `${LABEL}=true`]);
      await eventually('secrets aggregated', async () => (await canI(['get', 'secrets', '-n', 'team'], token)) === 'yes');
      await ok(['label', 'clusterrole', 'mon-cm', `${LABEL}-`]);
      await eventually('configmaps gone', async () => (await canI(['list', 'configmaps', '-n', 'team'], token)) === 'no');
      // A matched role's new rule follows; rules written by hand into the aggregated role are replaced.
      await ok(['patch', 'clusterrole', 'mon-ev', '--type=json', '-p', '[{"op":"add","path":"/rules/0/verbs/-","value":"watch"}]']);
      await eventually('watch events aggregated', async () => (await canI(['watch', 'events', '-n', 'team'], token)) === 'yes');
      await ok(['patch', 'clusterrole', 'monitoring', '--type=merge', '-p', '{"rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]}']);
      await eventually('hand-made rules replaced', async () => !JSON.stringify(await rules()).includes('"*"'));
      expect(await rules()).to.deep.equal([
        { apiGroups: [''], resources: ['events'], verbs: ['get', 'watch'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
      ]);
      // Selectors are validated as LabelSelectors, and only who may escalate sets an aggregationRule.
      await denied(
        [
          'patch',
          'clusterrole',
          'monitoring',
          '--type=merge',
          '-p',
          '{"aggregationRule":{"clusterRoleSelectors":[{"matchExpressions":[{"key":"a","operator":"Near"}]}]}}',
        ],
        undefined,
        /aggregationRule\.clusterRoleSelectors\[0\].*Near/,
      );
      await denied(
        ['patch', 'clusterrole', 'monitoring', '--type=merge', '-p', '{"aggregationRule":{"clusterRoleSelectors":[]}}'],
        undefined,
        /at least one clusterRoleSelector/,
      );
      await ok(['create', 'clusterrole', 'role-writer', '--verb=create,get,list,update,patch', '--resource=clusterroles.rbac.authorization.k8s.io']);
      await ok(['create', 'clusterrolebinding', 'role-writer', '--clusterrole=role-writer', '--serviceaccount=team:prom']);
      await denied(
        ['create', '-f', '-'],
        token,
        /must have cluster-admin privileges to use an aggregationRule/,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: grab-all}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {kubernetes.io/bootstrapping: rbac-defaults}
`,
      );
    });

    it('explains the RBAC kinds and lists serviceaccounts/token (TokenRequest) in discovery', async () => {
      expect(await ok(['explain', 'role']))
        .to.match(/KIND:\s+Role/)
        .and.to.match(/namespaced, logical grouping of PolicyRules/);
      const subjects = await ok(['explain', 'rolebinding.subjects']);
      expect(subjects)
        .to.match(/Subject contains a reference/)
        .and.to.match(/apiGroup\s/)
        .and.to.match(/namespace\s/);
      expect(await ok(['explain', 'clusterrole.aggregationRule.clusterRoleSelectors'])).to.match(/matchLabels/);
      expect(await ok(['explain', 'role.rules.verbs'])).to.match(/Verbs is a list of Verbs/);
      expect(await ok(['explain', 'serviceaccount.secrets'])).to.match(/secrets in the same namespace/);
      const core = JSON.parse(await ok(['get', '--raw', '/api/v1']));
      expect(core.resources.find((r: { name: string }) => r.name === 'serviceaccounts/token')).to.deep.equal({
        name: 'serviceaccounts/token',
        singularName: '',
        namespaced: true,
        group: 'authentication.k8s.io',
        version: 'v1',
        kind: 'TokenRequest',
        verbs: ['create'],
      });
    });
  });
}

describe('RBAC and ServiceAccounts with @kubernetes/client-node', function () {
  let srv: TestApiServer;
  let dir: string;
  let admin: k8s.KubeConfig;

  const asToken = (token: string) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: srv.url, caData: Buffer.from(srv.caPem).toString('base64') }],
      users: [{ name: 'u', token }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  };
  const status = async (p: Promise<unknown>) => {
    try {
      await p;
      return 200;
    } catch (e) {
      return (e as { code?: number }).code;
    }
  };

  before(async () => {
    ({ srv, dir } = await startWithTokens());
    admin = new k8s.KubeConfig();
    admin.loadFromFile(srv.kubeconfigPath);
    await admin.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'apps' } } });
  });
  after(async () => {
    await srv?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a ServiceAccount, Role and RoleBinding, requests a token and reviews what it may do', async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: 'apps', body: { metadata: { name: 'sync' } } });
    await rbac.createNamespacedRole({
      namespace: 'apps',
      body: { metadata: { name: 'sync' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: 'apps',
      body: {
        metadata: { name: 'sync' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sync' },
        subjects: [{ kind: 'ServiceAccount', name: 'sync', namespace: 'apps' }],
      },
    });
    const binding = await rbac.readNamespacedRoleBinding({ namespace: 'apps', name: 'sync' });
    expect(binding.subjects?.[0].apiGroup).to.equal('');
    expect(
      await status(
        rbac.replaceNamespacedRoleBinding({ namespace: 'apps', name: 'sync', body: { ...binding, roleRef: { ...binding.roleRef, name: 'other' } } }),
      ),
    ).to.equal(422);

    const tr = await core.createNamespacedServiceAccountToken({ namespace: 'apps', name: 'sync', body: { spec: { audiences: [], expirationSeconds: 7200 } } });
    const token = tr.status!.token;
    expect(new Date(tr.status!.expirationTimestamp).getTime() - Date.now()).to.be.within(7100_000, 7200_000);

    const kc = asToken(token);
    const mine = kc.makeApiClient(k8s.CoreV1Api);
    await mine.createNamespacedConfigMap({ namespace: 'apps', body: { metadata: { name: 'from-sync' }, data: { a: '1' } } });
    expect((await mine.listNamespacedConfigMap({ namespace: 'apps' })).items.map((c) => c.metadata?.name)).to.include('from-sync');
    expect(await status(mine.listNamespacedSecret({ namespace: 'apps' }))).to.equal(403);
    expect(await status(mine.listNamespacedConfigMap({ namespace: 'default' }))).to.equal(403);

    const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
    const ssar = await authz.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { namespace: 'apps', verb: 'create', resource: 'configmaps' } } },
    });
    expect(ssar.status?.allowed).to.equal(true);
    expect(ssar.status?.reason).to.equal('RBAC: allowed by RoleBinding "sync/apps" of Role "sync" to ServiceAccount "sync"');
    const no = await authz.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { namespace: 'apps', verb: 'delete', resource: 'configmaps' } } },
    });
    expect(no.status?.allowed).to.equal(false);
    const path = await authz.createSelfSubjectAccessReview({ body: { spec: { nonResourceAttributes: { path: '/metrics', verb: 'get' } } } });
    expect(path.status?.allowed).to.equal(false);
    expect(await status(mine.getAPIResources())).to.equal(200);
    const rules = await authz.createSelfSubjectRulesReview({ body: { spec: { namespace: 'apps' } } });
    expect(rules.status?.incomplete).to.equal(false);
    expect(rules.status?.resourceRules).to.deep.include({ verbs: ['get', 'list', 'create'], apiGroups: [''], resources: ['configmaps'] });
    expect(rules.status?.nonResourceRules?.some((r) => r.nonResourceURLs?.includes('/apis/*'))).to.equal(true);

    // /metrics is for those granted it: not this ServiceAccount, yes the token file's viewer.
    expect((await apiRequest(srv, 'GET', '/metrics', { token })).status).to.equal(403);
    expect((await apiRequest(srv, 'GET', '/metrics', { token: 'viewtok' })).status).to.equal(200);

    await core.deleteNamespacedServiceAccount({ namespace: 'apps', name: 'sync' });
    expect(await status(mine.listNamespacedConfigMap({ namespace: 'apps' }))).to.equal(401);
  });
});
