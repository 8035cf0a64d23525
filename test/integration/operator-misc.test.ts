/**
 * Operator plumbing against real parts: the informer's 410 relist and its survival of an API
 * server restart, Lease leader election between two operators, and the `nbswarm up` CLI.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { GROUP, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { ApiEventRecorder } from '../../src/controller/events.js';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { installCrd } from '../../src/controller/crd.js';
import { NotebookServerInformer } from '../../src/controller/informer.js';
import { SecretInformer } from '../../src/controller/secrets.js';
import { createLogger } from '../../src/log.js';
import { startOperator } from '../../src/controller/operator.js';
import { fileURLToPath } from 'node:url';
import { TEST_IMAGE, TEST_RUN_ID, requireDocker, sleep, waitFor, waitForHttp } from '../helpers/docker.js';
import { HTTPD, NS, cleanupPrefix, kubectlRaw, nbsYaml, setupEnv, testPolicy, waitPhase, waitReady, type Env } from './operator-harness.js';
import { kubeconfigFromBanner } from '../../src/up-banner.js';

const log = createLogger({ level: process.env.NBSWARM_TEST_LOG ?? 'error' });

/** A real embedded API server (own temp data dir, random port) for `fn`; closed and removed afterwards. */
async function withApiServer(fn: (api: RunningApiServer, kc: KubeConfig) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-api-'));
  const api = await startApiServer({ dataDir, port: 0 });
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    await fn(api, kc);
  } finally {
    await api.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('operator informer (real embedded API server)', function () {
  this.timeout(60_000);

  it('relists on 410 Gone and survives the API server going away and coming back', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-inf-'));
    let api = await startApiServer({ dataDir, port: 0, watchWindow: 5, bookmarkIntervalMs: 500 });
    const port = api.port;
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    await installCrd(kc);
    const informer = new NotebookServerInformer(kc, log, { namespace: NS });
    const { CustomObjectsApi } = await import('@kubernetes/client-node');
    const custom = kc.makeApiClient(CustomObjectsApi);
    const create = (name: string) =>
      custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: NS,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name }, spec: { user: 'x' } },
      });
    try {
      await informer.start();
      expect(informer.hasSynced()).to.equal(true);
      for (let i = 0; i < 12; i++) await create(`inf-${i}`);
      await waitFor('12 cached', async () => informer.list().length === 12);
      // Force a resume from a version far outside the server's 5-change window.
      const internals = informer as unknown as { resourceVersion: string; abort?: AbortController };
      internals.resourceVersion = '1';
      internals.abort?.abort();
      await waitFor('relist after 410', async () => informer.stats().relistsOn410 >= 1);
      await create('inf-after-410');
      await waitFor('event after relist', async () => !!informer.get(`${NS}/inf-after-410`));

      // The API server goes away: the informer retries (no throw, no exit) and resumes when it is back.
      await api.close();
      await sleep(1500);
      expect(informer.stats().watchErrors).to.be.greaterThan(0);
      api = await startApiServer({ dataDir, port, watchWindow: 5, bookmarkIntervalMs: 500 });
      await waitFor(
        'create after restart',
        async () => {
          await create('inf-after-restart');
          return true;
        },
        20_000,
      );
      await waitFor('seen after restart', async () => !!informer.get(`${NS}/inf-after-restart`), 40_000);
      expect(informer.list().length).to.equal(14);
    } finally {
      await informer.stop();
      await api.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('operator informer cache (real embedded API server)', function () {
  this.timeout(60_000);

  it('lists in pages (every page, not the first) and keeps neither managedFields nor the last-applied copy', () =>
    withApiServer(async (_api, kc) => {
      await installCrd(kc);
      const ns = NS;
      const informer = new NotebookServerInformer(kc, log, { namespace: ns, pageSize: 5 });
      const { CustomObjectsApi } = await import('@kubernetes/client-node');
      const custom = kc.makeApiClient(CustomObjectsApi);
      const annotations = { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}', keep: 'me' };
      try {
        for (let i = 0; i < 12; i++) {
          await custom.createNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
            namespace: ns,
            body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name: `pg-${i}`, annotations }, spec: { user: `u${i}` } },
          });
        }
        const stored = (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace: ns,
          name: 'pg-0',
        })) as NotebookServer & { metadata: { managedFields?: unknown[] } };
        expect(stored.metadata.managedFields, 'the API server keeps them').to.have.length.greaterThan(0);
        await informer.start();
        expect(
          informer
            .list()
            .map((o) => o.metadata.name)
            .sort(),
        ).to.deep.equal(Array.from({ length: 12 }, (_, i) => `pg-${i}`).sort());
        expect(informer.stats()).to.include({ lists: 1, listPages: 3 });
        const check = (o: NotebookServer) => {
          expect(o.metadata).to.not.have.property('managedFields');
          expect(o.metadata.annotations).to.deep.equal({ keep: 'me' });
        };
        informer.list().forEach(check);
        // Watch events are slimmed too.
        await custom.patchNamespacedCustomObject(
          { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name: 'pg-3', body: { metadata: { labels: { touched: 'yes' } } } },
          (await import('@kubernetes/client-node')).setHeaderOptions('Content-Type', (await import('@kubernetes/client-node')).PatchStrategy.MergePatch),
        );
        const touched = await waitFor(
          'the watch event',
          async () => informer.get(`${ns}/pg-3`)?.metadata.labels?.touched === 'yes' && informer.get(`${ns}/pg-3`),
        );
        check(touched as NotebookServer);
      } finally {
        await informer.stop();
      }
    }));
});

describe('operator Secrets informer (real embedded API server)', function () {
  this.timeout(60_000);

  it('decodes Secrets that existed before it started (list) and those created, changed and deleted later (watch)', () =>
    withApiServer(async (api, kc) => {
      const secrets = new SecretInformer(kc, log, { namespace: NS });
      const kubectl = async (args: string[]) => {
        const r = await kubectlRaw(api.kubeconfigPath, args);
        expect(r.code, r.stderr).to.equal(0);
      };
      try {
        await kubectl(['create', 'secret', 'generic', 'before', '-n', NS, '--from-literal=token=ab c=é']);
        await kubectl(['create', 'secret', 'generic', 'elsewhere', '-n', 'kube-system', '--from-literal=k=v']);
        await secrets.start();
        expect(secrets.values(NS, 'before')).to.deep.equal({ token: 'ab c=é' });
        expect(secrets.values('kube-system', 'elsewhere'), 'only its namespace').to.equal(undefined);
        await kubectl(['create', 'secret', 'generic', 'after', '-n', NS, '--from-literal=a=1', '--from-literal=b=2']);
        await waitFor('the created Secret', async () => secrets.values(NS, 'after')?.b === '2');
        await kubectl(['patch', 'secret', 'after', '-n', NS, '--type=merge', '-p', '{"stringData":{"a":"changed"}}']);
        await waitFor('the changed Secret', async () => secrets.values(NS, 'after')?.a === 'changed');
        await kubectl(['delete', 'secret', 'before', '-n', NS]);
        await waitFor('the deleted Secret gone', async () => secrets.values(NS, 'before') === undefined);
        expect(secrets.stats()).to.include({ lists: 1 });
      } finally {
        await secrets.stop();
      }
    }));
});

describe('operator Events (real embedded API server)', function () {
  this.timeout(30_000);
  it('records core/v1 Events on the object and aggregates repeats into count', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nbswarm-ev-'));
    const api = await startApiServer({ dataDir, port: 0 });
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(api.kubeconfigPath);
      await installCrd(kc);
      const { CustomObjectsApi } = await import('@kubernetes/client-node');
      const obj = (await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: NS,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name: 'ev' }, spec: { user: 'x' } },
      })) as NotebookServer;
      const rec = new ApiEventRecorder(kc, log);
      await rec.emit(obj, 'Warning', 'ImageNotFound', 'image x is missing');
      await rec.emit(obj, 'Warning', 'ImageNotFound', 'image x is missing');
      await rec.emit(obj, 'Normal', 'Created', 'created container');
      const out = await kubectlRaw(api.kubeconfigPath, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=ev', '-o', 'json']);
      expect(out.code, out.stderr).to.equal(0);
      const items = (JSON.parse(out.stdout) as { items: Array<{ reason: string; count: number; type: string; involvedObject: { uid: string; kind: string } }> })
        .items;
      expect(items.map((e) => [e.reason, e.count, e.type]).sort()).to.deep.equal([
        ['Created', 1, 'Normal'],
        ['ImageNotFound', 2, 'Warning'],
      ]);
      expect(items[0].involvedObject).to.include({ uid: obj.metadata.uid, kind: 'NotebookServer' });
      const described = await kubectlRaw(api.kubeconfigPath, ['describe', 'nbs', 'ev', '-n', NS]);
      expect(described.stdout).to.match(/ImageNotFound/);
    } finally {
      await api.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('operator leader election (two replicas, one Lease)', function () {
  this.timeout(90_000);
  let env: Env;
  before(async () => {
    env = await setupEnv('container');
  });
  after(async () => {
    await env?.close();
  });

  it('only the lease holder reconciles; the standby takes over when the leader stops, without writes', async () => {
    const standby = await startOperator({
      kubeconfig: env.kc,
      policy: env.policy,
      backend: env.backend,
      log,
      identity: 'standby',
      renewSeconds: 1,
      leaseDurationSeconds: 3,
    });
    try {
      await env.kubectl(['apply', '-f', '-'], nbsYaml('le', { user: 'gina', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
      await waitReady(env, 'le');
      await sleep(2500);
      expect(env.op.stats().leader).to.equal(true);
      expect(standby.stats().leader).to.equal(false);
      expect(standby.stats().queue.reconcilesTotal).to.equal(0);
      const lease = await env.kubectl(['get', 'lease', '-n', 'nbswarm', `nbswarm-operator-${env.prefix}`, '-o', 'json']);
      expect(JSON.parse(lease).spec.holderIdentity).to.not.equal('standby');
      await env.op.stop();
      await standby.whenLeader();
      await waitFor(
        'standby reconciled the server',
        async () => (standby.stats().queue.perKey[`${NS}/le`]?.reconciles ?? 0) >= 1 && standby.stats().queue.inFlight === 0,
      );
      await standby.queue.whenIdle();
      expect(standby.stats().reconciler.dockerWrites).to.equal(0);
      expect(standby.stats().reconciler.statusPatches).to.equal(0);
    } finally {
      await standby.stop();
    }
  });
});

describe('operator with host networking (container backend)', function () {
  this.timeout(90_000);
  let env: Env;
  before(async () => {
    env = await setupEnv('container', { networkMode: 'host', hostPortRange: [39100, 39199] });
  });
  after(async () => {
    await env?.close();
  });

  it('allocates distinct free ports from the policy range and keeps them across an update', async () => {
    await env.kubectl(['apply', '-f', '-'], nbsYaml('h1', { user: 'ivy', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
    await env.kubectl(['apply', '-f', '-'], nbsYaml('h2', { user: 'ivy', servername: 'two', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
    const a = await waitReady(env, 'h1');
    const b = await waitReady(env, 'h2');
    for (const o of [a, b]) {
      expect(o.status!.endpoint!.port).to.be.within(39100, 39199);
      expect(await waitForHttp(o.status!.endpoint!.hostUrl!)).to.contain('nbswarm test image');
    }
    expect(a.status!.endpoint!.port).to.not.equal(b.status!.endpoint!.port);
    await env.kubectl(['patch', 'nbs', 'h1', '-n', NS, '--type=merge', '-p', '{"spec":{"env":[{"name":"X","value":"1"}]}}']);
    const a2 = await waitPhase(env, 'h1', 'Running', 30_000);
    expect(a2.status!.endpoint!.port).to.equal(a.status!.endpoint!.port);
  });
});

describe('nbswarm up (CLI)', function () {
  this.timeout(120_000);
  // The bundled CLI users run (npm run build makes dist/nbswarm.mjs beside dist/test/).
  const cli = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

  function run(args: string[], envVars: Record<string, string> = {}) {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...envVars }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { child, exited, out: () => stdout, err: () => stderr };
  }

  it('starts the API server, CRD and operator; a NotebookServer applied with kubectl answers; SIGTERM stops cleanly', async () => {
    await requireDocker();
    const dir = mkdtempSync(join(tmpdir(), 'nbswarm-up-'));
    const prefix = `u${TEST_RUN_ID.replace(/[^a-z0-9]/g, '').slice(-8)}`;
    const policy = testPolicy('container', prefix);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, YAML.stringify({ ...policy, launchers: undefined }));
    const p = run(['up', '--data-dir', join(dir, 'data'), '--port', '0', '--policy', policyFile], { NBSWARM_LOG_LEVEL: 'warn' });
    try {
      const kubeconfig = await waitFor('kubeconfig printed', async () => kubeconfigFromBanner(p.out()), 60_000);
      expect(p.out()).to.match(/kubectl --kubeconfig \S+ get nbs/);
      const ap = await kubectlRaw(kubeconfig, ['apply', '-f', '-'], nbsYaml('cli', { user: 'hank', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
      expect(ap.code, ap.stderr).to.equal(0);
      const w = await kubectlRaw(kubeconfig, ['wait', '-n', NS, 'nbs/cli', '--for=condition=Ready', '--timeout=60s']);
      expect(w.code, w.stderr).to.equal(0);
      const url = (await kubectlRaw(kubeconfig, ['get', 'nbs', 'cli', '-n', NS, '-o', 'jsonpath={.status.endpoint.hostUrl}'])).stdout;
      expect(await waitForHttp(url)).to.contain('nbswarm test image');
      p.child.kill('SIGTERM');
      expect(await p.exited).to.equal(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      const { docker } = await requireDocker();
      await cleanupPrefix(docker, prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Docker unreachable → one line with a hint, exit code 2, no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbswarm-up-'));
    try {
      // --status-port 0: with the default port held by another `up` of the suite, a warning line would come first.
      const p = run(['up', '--data-dir', join(dir, 'data'), '--port', '0', '--status-port', '0'], { DOCKER_HOST: `unix://${join(dir, 'no-docker.sock')}` });
      expect(await p.exited, p.err()).to.equal(2);
      expect(p.err()).to.match(/nbswarm: .*Docker/);
      expect(p.err()).to.match(/hint: .*dockerd/);
      expect(p.err().trim().split('\n'), p.err()).to.have.length(1);
      expect(p.out()).to.equal('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
