import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiRequest, kubectl, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

/**
 * `kubectl apply --prune -l` without an allowlist walks kubectl's default prune set: every kind
 * in it must be listable, and the kinds nbswarm does not run must refuse to be created.
 */
const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  labels: {app: x}\ndata: {k: v}\n`;

describe('kubectl apply --prune with the default prune set', function () {
  let srv: TestApiServer;
  let dir: string;
  before(async () => {
    srv = await startTestApiServer();
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-prune-'));
  });
  after(async () => {
    await srv?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) {
    it(`prunes what left the directory, and only that (${bin})`, async () => {
      const ns = `pr-${bin.replace(/\W/g, '-')}`;
      const k = (args: string[], input?: string) => kubectl(['-n', ns, ...args], { kubeconfig: srv.kubeconfigPath, bin, input });
      expect((await k(['create', 'namespace', ns])).code).to.equal(0);
      expect((await k(['create', 'configmap', 'unlabelled', '--from-literal=k=v'])).code).to.equal(0);
      writeFileSync(join(dir, 'all.yaml'), [cm('a'), cm('b')].join('---\n'));
      let r = await k(['apply', '--prune', '-l', 'app=x', '-f', dir]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout)
        .to.match(/configmap\/a created/)
        .and.to.match(/configmap\/b created/);
      writeFileSync(join(dir, 'all.yaml'), cm('a'));
      r = await k(['apply', '--prune', '-l', 'app=x', '-f', dir]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout)
        .to.match(/configmap\/a unchanged/)
        .and.to.match(/configmap\/b pruned/);
      expect((await k(['get', 'configmaps', '-o', 'name'])).stdout.split('\n').filter(Boolean).sort()).to.deep.equal(['configmap/a', 'configmap/unlabelled']);
    });
  }

  it('the kinds nbswarm does not run list empty and refuse a create with a Status that says so', async () => {
    for (const kind of ['pods', 'deploy', 'svc', 'jobs', 'cronjobs', 'ingresses', 'sts', 'ds', 'rs', 'rc', 'pvc', 'pv', 'endpoints']) {
      const r = await kubectl(['get', kind, '-A', '-o', 'name'], { kubeconfig: srv.kubeconfigPath });
      expect(r.code, `${kind}: ${r.stderr}`).to.equal(0);
      expect(r.stdout, kind).to.equal('');
    }
    const r = await kubectl(['create', 'deployment', 'web', '--image=local/busybox:test'], { kubeconfig: srv.kubeconfigPath });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('nbswarm does not run Deployment objects (apps/v1)');
    const res = await apiRequest(srv, 'POST', '/api/v1/namespaces/default/pods', {
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
    });
    expect(res.status).to.equal(405);
    expect(res.body).to.deep.include({ kind: 'Status', reason: 'MethodNotAllowed', details: { kind: 'pods' } });
    expect(res.body.message).to.contain('nbswarm does not run Pod objects (v1)');
    const disc = await apiRequest(srv, 'GET', '/api/v1');
    const pods = disc.body.resources.find((x: { name: string }) => x.name === 'pods');
    expect(pods.verbs).to.deep.equal(['delete', 'deletecollection', 'get', 'list', 'watch']);
  });
});
