/**
 * manifests/kubernetes — what `kubectl apply -k manifests/kubernetes` installs on a real cluster.
 * No Kubernetes control plane can be installed here, so each part is checked with the real thing
 * that can: the real kubectl renders the kustomization; every object round-trips through
 * @kubernetes/client-node's models (generated from Kubernetes' own OpenAPI), so a misspelled or
 * misplaced field is caught; the embedded API server dry-runs the kinds it serves (Namespace, CRD,
 * ConfigMap, ServiceAccount, RBAC) and names the one it does not serve (Deployment) — no
 * Deployment API is faked; and the Deployment's pod is run the way a kubelet on a Docker node would
 * run it (image, args, env, mounts, security context, host network, the service-account files and
 * KUBERNETES_SERVICE_* pointing at the API) and must pass its probes and serve a NotebookServer.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { repoPath } from '../../src/paths.js';
import { kubectl, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';
import { TEST_IMAGE, TEST_RUN_ID, TEST_RUN_LABEL, freePort, httpGet, requireDocker, waitFor, waitForHttp } from '../helpers/docker.js';
import { cleanupPrefix, nbsYaml } from './operator-harness.js';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: any;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const KUSTOMIZATION = repoPath('manifests/kubernetes');
/** The kinds the embedded API server serves; the others exist only on a real cluster. */
const SERVED = ['Namespace', 'CustomResourceDefinition', 'ConfigMap', 'ServiceAccount', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'];
const NOT_SERVED = ['Deployment'];

/** The object as client-node's model of `type` keeps it: fields the model does not know are dropped. */
function typedRoundTrip(o: unknown, type: string): unknown {
  // Through JSON: the models write every field they know, unset ones as undefined.
  return JSON.parse(JSON.stringify(ObjectSerializer.serialize(ObjectSerializer.deserialize(o, type, ''), type, '')));
}

/** Docker's memory limit for a Kubernetes quantity (only the binary suffixes a manifest here uses). */
function quantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unsupported quantity ${q}`);
  const unit: Record<string, number> = { Ki: 1 << 10, Mi: 1 << 20, Gi: 1 << 30 };
  return Number(m[1]) * (m[2] ? unit[m[2]] : 1);
}

describe('manifests/kubernetes (kubectl apply -k)', function () {
  this.timeout(180_000);
  let objects: K8sObject[] = [];
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployment = () => byKind('Deployment')[0] as K8sObject;
  const container = () => deployment().spec.template.spec.containers[0];
  /** The value after `flag` in the operator's args. */
  const arg = (flag: string): string => container().args[container().args.indexOf(flag) + 1];

  before(async () => {
    const r = await run('kubectl', ['kustomize', KUSTOMIZATION]);
    if (r.code !== 0) throw new Error(`kubectl kustomize failed: ${r.stderr}`);
    objects = YAML.parseAllDocuments(r.stdout).map((d) => d.toJSON() as K8sObject);
  });

  it('renders the namespace, the CRD, RBAC, the policy ConfigMap and the operator Deployment, consistently wired', () => {
    expect(objects.map((o) => o.kind).sort()).to.deep.equal(
      [
        'ClusterRole',
        'ClusterRole',
        'ClusterRoleBinding',
        'ConfigMap',
        'CustomResourceDefinition',
        'Deployment',
        'Namespace',
        'Role',
        'RoleBinding',
        'ServiceAccount',
      ].sort(),
    );
    // The CRD is the generated one, unchanged.
    expect(byKind('CustomResourceDefinition')[0]).to.deep.equal(YAML.parse(readFileSync(repoPath('crds/notebookserver.yaml'), 'utf8')));
    const pod = deployment().spec.template.spec;
    const c = container();
    // Runs as the ServiceAccount the RBAC binds, in the namespace whose Role grants the Lease.
    expect(pod.serviceAccountName).to.equal(byKind('ServiceAccount')[0].metadata.name);
    expect(byKind('ClusterRoleBinding').find((b) => b.metadata.name === 'nbswarm-operator')!.subjects).to.deep.equal([
      { kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: 'nbswarm' },
    ]);
    expect(c.args[0]).to.equal('operator');
    expect(c.args).not.to.include('--kubeconfig');
    expect(arg('--lease-namespace')).to.equal(byKind('Role')[0].metadata.namespace);
    // Probes, the declared port and the metrics flag name one port.
    const metricsPort = Number(arg('--metrics-port'));
    expect(c.ports).to.deep.equal([{ name: 'metrics', containerPort: metricsPort }]);
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) expect(probe.httpGet).to.include({ host: '127.0.0.1', port: metricsPort });
    // The policy volume names the generated ConfigMap (hash-suffixed by kustomize).
    const configMap = byKind('ConfigMap')[0];
    expect(pod.volumes.find((v: any) => v.configMap)?.configMap.name)
      .to.equal(configMap.metadata.name)
      .and.match(/^nbswarm-policy-/);
    expect(Object.keys(configMap.data)).to.deep.equal(['policy.yaml']);
    expect(c.env).to.deep.include({ name: 'NBSWARM_POLICY', value: `${c.volumeMounts.find((m: any) => m.name === 'policy').mountPath}/policy.yaml` });
    expect(pod.volumes.find((v: any) => v.hostPath)?.hostPath).to.deep.equal({ path: '/var/run/docker.sock', type: 'Socket' });
    expect(pod.hostNetwork).to.equal(true);
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(c.resources.limits).to.have.key('memory');
  });

  it("has no field Kubernetes' own types do not know (each object round-trips through client-node's models)", () => {
    for (const o of objects) {
      const type = `V1${o.kind}`;
      const roundTrip = typedRoundTrip(o, type);
      expect(roundTrip, `${o.kind}/${o.metadata.name}`).to.deep.equal(o);
    }
    // The check itself catches a typo: a misspelled probe field is dropped by the round trip.
    const typo = structuredClone(deployment());
    typo.spec.template.spec.containers[0].livenessProbe.httpget = { port: 1 };
    expect(typedRoundTrip(typo, 'V1Deployment')).not.to.deep.equal(typo);
  });

  describe('against the embedded API server', function () {
    let api: TestApiServer;
    before(async () => (api = await startTestApiServer()));
    after(async () => api?.cleanup());

    it('kubectl apply -k --dry-run=server accepts the kinds it serves and names exactly the kinds it does not serve', async () => {
      const r = await kubectl(['apply', '-k', KUSTOMIZATION, '--dry-run=server'], { kubeconfig: api.kubeconfigPath });
      for (const o of objects.filter((x) => SERVED.includes(x.kind))) {
        expect(r.stdout, r.stderr).to.match(new RegExp(`/${o.metadata.name} (created|configured|unchanged) \\(server dry run\\)`));
      }
      // Kinds nbswarm does not run are listable (kubectl apply --prune needs them) but refused with a Status that says so.
      const errors = r.stderr.split('\n').filter((l) => /^(resource mapping not found|error|Error from server)/.test(l));
      const unmapped = errors.map(
        (l) => /nbswarm does not run (\w+) objects/.exec(l)?.[1] ?? /no matches for kind "(\w+)"/.exec(l)?.[1] ?? `other error: ${l}`,
      );
      expect([...new Set(unmapped)].sort()).to.deep.equal([...NOT_SERVED].sort());
      expect(r.code).to.equal(1);
    });
  });

  describe("the Deployment's pod, run as a kubelet on a Docker node would run it", function () {
    const prefix = `km${randomBytes(3).toString('hex')}`;
    let docker: Docker;
    let api: TestApiServer;
    let dir: string;
    let pod: Docker.Container | undefined;

    before(async function () {
      this.timeout(600_000);
      ({ docker } = await requireDocker());
      // The image the Deployment names; rebuilt only when its sources changed (idempotent).
      const image = container().image as string;
      const build = await run('bash', [repoPath('images/operator/build.sh'), image], 590_000);
      if (build.code !== 0) throw new Error(`images/operator/build.sh failed:\n${build.stderr.slice(-3000)}`);
      api = await startTestApiServer();
      dir = mkdtempSync(join(tmpdir(), 'nbswarm-k8s-pod-'));
    });

    after(async () => {
      if (pod) await pod.remove({ force: true }).catch(() => undefined);
      if (docker) await cleanupPrefix(docker, prefix);
      await api?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('passes its probes and serves a NotebookServer through its ServiceAccount credentials', async () => {
      const kubeconfig = api.kubeconfigPath;
      const crd = byKind('CustomResourceDefinition')[0];
      const applied = await kubectl(['apply', '-f', '-'], { kubeconfig, input: JSON.stringify(crd) });
      expect(applied.code, applied.stderr).to.equal(0);

      // What the kubelet mounts for the ServiceAccount, here for the embedded server's admin user.
      const kc = YAML.parse(readFileSync(kubeconfig, 'utf8'));
      const sa = join(dir, 'serviceaccount');
      mkdirSync(sa);
      writeFileSync(join(sa, 'token'), kc.users[0].user.token);
      writeFileSync(join(sa, 'ca.crt'), Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64'));
      writeFileSync(join(sa, 'namespace'), deployment().metadata.namespace ?? '');

      const spec = deployment().spec.template.spec;
      const c = container();
      // The ConfigMap's files, with a prefix of this run's own so its orphan GC touches nothing else.
      const configMap = byKind('ConfigMap')[0];
      const policyDir = join(dir, 'policy');
      mkdirSync(policyDir);
      writeFileSync(join(policyDir, 'policy.yaml'), YAML.stringify({ ...YAML.parse(configMap.data['policy.yaml']), prefix }));
      const volumeSource = (name: string): string => {
        const v = spec.volumes.find((x: any) => x.name === name);
        if (v.hostPath) return v.hostPath.path;
        if (v.configMap?.name === configMap.metadata.name) return policyDir;
        throw new Error(`volume ${name} has a source this test cannot provide`);
      };
      // The metrics port: a free one on this shared machine (a kustomize patch would do the same).
      const metricsPort = await freePort();
      const args = [...c.args];
      args[args.indexOf('--metrics-port') + 1] = String(metricsPort);
      const apiPort = new URL(api.url).port;
      const sc = c.securityContext;

      pod = await docker.createContainer({
        Image: c.image,
        name: `${prefix}-operator-pod`,
        Cmd: args,
        Env: [...c.env.map((e: any) => `${e.name}=${e.value}`), 'KUBERNETES_SERVICE_HOST=127.0.0.1', `KUBERNETES_SERVICE_PORT=${apiPort}`],
        User: String(sc.runAsUser),
        Labels: { [TEST_RUN_LABEL]: TEST_RUN_ID },
        HostConfig: {
          NetworkMode: spec.hostNetwork ? 'host' : 'bridge',
          Binds: [
            ...c.volumeMounts.map((m: any) => `${volumeSource(m.name)}:${m.mountPath}${m.readOnly ? ':ro' : ''}`),
            `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
          ],
          ReadonlyRootfs: sc.readOnlyRootFilesystem,
          CapDrop: sc.capabilities.drop,
          SecurityOpt: sc.allowPrivilegeEscalation === false ? ['no-new-privileges'] : [],
          Memory: quantityBytes(c.resources.limits.memory),
        },
      });
      await pod.start();
      const p = pod;
      const probe = async (path: string) => {
        const state = (await p.inspect()).State;
        if (!state.Running)
          throw new Error(`the pod's container exited ${state.ExitCode}: ${(await p.logs({ stdout: true, stderr: true })).toString().slice(-2000)}`);
        return (await httpGet(`http://127.0.0.1:${metricsPort}${path}`).catch(() => ({ status: 0 }))).status === 200;
      };
      await waitFor('the startup probe', () => probe(c.startupProbe.httpGet.path), c.startupProbe.periodSeconds * c.startupProbe.failureThreshold * 1000, 500);
      expect(await probe(c.livenessProbe.httpGet.path)).to.equal(true);
      expect(await probe(c.readinessProbe.httpGet.path)).to.equal(true);

      const server = nbsYaml('k8s-pod', {
        user: 'kay',
        mode: 'custom',
        command: ['httpd', '-f', '-p', '{port}', '-h', '/www'],
        image: TEST_IMAGE,
        resources: { cpu: '250m', memory: '32Mi' },
      });
      const created = await kubectl(['apply', '-f', '-'], { kubeconfig, input: server });
      expect(created.code, created.stderr).to.equal(0);
      const ready = await kubectl(['wait', '--for=condition=Ready', 'nbs/k8s-pod', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
      expect(ready.code, `${ready.stderr}\n${(await p.logs({ stdout: true, stderr: true })).toString().slice(-2000)}`).to.equal(0);
      const hostUrl = (await kubectl(['get', 'nbs', 'k8s-pod', '-o', 'jsonpath={.status.endpoint.hostUrl}'], { kubeconfig })).stdout;
      expect(await waitForHttp(hostUrl, 20_000)).to.contain('nbswarm test image');
      // Leader election used the namespace the Role grants.
      const lease = await kubectl(['get', 'leases', '-n', arg('--lease-namespace'), '-o', 'name'], { kubeconfig });
      expect(lease.stdout, lease.stderr).to.match(/^lease\.coordination\.k8s\.io\//m);

      const deleted = await kubectl(['delete', 'nbs', 'k8s-pod', '--wait=true', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
      expect(deleted.code, deleted.stderr).to.equal(0);
      // SIGTERM, as the kubelet sends it, within terminationGracePeriodSeconds.
      await p.stop({ t: deployment().spec.template.spec.terminationGracePeriodSeconds });
      expect((await p.inspect()).State.ExitCode).to.equal(0);
    });
  });
});
