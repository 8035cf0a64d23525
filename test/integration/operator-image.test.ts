/**
 * The packaged image (images/operator/build.sh) on the real dockerd, driven by the real kubectl:
 *  1. as a plain container (host network, Docker socket, bind-mounted data dir), and
 *  2. as the Swarm stack in manifests/swarm/nbswarm-stack.yml (`docker stack deploy`).
 * Each applies a busybox NotebookServer and fetches its status.endpoint.hostUrl.
 * The image is built by images/build-all.sh in CI; when missing, the recipe runs here (~30 s).
 * Docker objects carry this run's label or stack name and a per-run policy prefix, so cleanup
 * (and the operator's orphan GC) never touches anything else on the daemon.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABELS } from '../../src/api/types.js';
import { repoPath } from '../../src/paths.js';
import { kubectl } from '../helpers/apiserver.js';
import { TEST_IMAGE, TEST_RUN_ID, TEST_RUN_LABEL, freePort, requireDocker, waitFor, waitForHttp } from '../helpers/docker.js';

const IMAGE = process.env.NBSWARM_OPERATOR_IMAGE ?? 'local/nbswarm:latest';

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...opts.env }, cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

async function mustKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, { kubeconfig, input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** A policy that grants only what the test server needs, under a prefix no other run uses. */
function writePolicy(dir: string, prefix: string): string {
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, [`prefix: ${prefix}`, 'pullPolicy: never', 'allowedImages: ["local/*"]', `defaultImage: ${TEST_IMAGE}`, 'volumes: []', ''].join('\n'));
  return file;
}

function httpdServer(name: string): string {
  return JSON.stringify({
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name, namespace: 'default' },
    spec: {
      user: 'imgtest',
      servername: name,
      image: TEST_IMAGE,
      mode: 'custom',
      command: ['httpd', '-f', '-p', '{port}', '-h', '/www'],
      resources: { cpu: '250m', memory: '32Mi' },
    },
  });
}

/** Apply a server, wait for Ready, GET its hostUrl, delete it and check its Docker object went away. */
async function serveOnce(docker: Docker, kubeconfig: string, prefix: string): Promise<void> {
  const name = 'web';
  await mustKubectl(kubeconfig, ['apply', '-f', '-'], httpdServer(name));
  const wait = await kubectl(['wait', '--for=condition=Ready', `nbs/${name}`, '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
  if (wait.code !== 0) {
    const desc = await kubectl(['get', 'nbs', name, '-o', 'yaml'], { kubeconfig });
    throw new Error(`not Ready: ${wait.stderr.trim()}\n${desc.stdout}`);
  }
  const hostUrl = (await mustKubectl(kubeconfig, ['get', 'nbs', name, '-o', 'jsonpath={.status.endpoint.hostUrl}'])).trim();
  expect(hostUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+/);
  expect(await waitForHttp(hostUrl, 20_000)).to.contain('nbswarm test image');

  // The operator in the image named the Docker object with this run's policy prefix.
  const filters = JSON.stringify({ label: [`${LABELS.name}=${name}`] });
  const services = (await docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as Array<{ Spec?: { Name?: string } }>;
  const containers = await docker.listContainers({ all: true, filters });
  const names = [...services.map((s) => s.Spec?.Name ?? ''), ...containers.map((c) => (c.Names[0] ?? '').replace(/^\//, ''))].filter((n) =>
    n.startsWith(prefix + '-'),
  );
  expect(names.length, 'Docker objects named with the policy prefix').to.be.greaterThan(0);

  await mustKubectl(kubeconfig, ['delete', 'nbs', name, '--wait=true', '--timeout=60s']);
  await waitFor(
    "the server's Docker objects to be removed",
    async () => {
      const s = (await docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as Array<{ Spec?: { Name?: string } }>;
      return !s.some((x) => (x.Spec?.Name ?? '').startsWith(prefix + '-'));
    },
    30_000,
  );
}

/** Remove anything the operator made under this prefix if a test failed before deleting its server. */
async function removeByPrefix(docker: Docker, prefix: string): Promise<void> {
  const filters = JSON.stringify({ label: [LABELS.uid] });
  const ignore = () => undefined;
  try {
    const services = (await docker.listServices({ filters } as unknown as Docker.ServiceListOptions)) as Array<{ ID: string; Spec?: { Name?: string } }>;
    await Promise.all(services.filter((s) => (s.Spec?.Name ?? '').startsWith(prefix + '-')).map((s) => docker.getService(s.ID).remove().catch(ignore)));
  } catch {
    // not a Swarm manager: no services to remove
  }
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(
    containers.filter((c) => (c.Names[0] ?? '').startsWith('/' + prefix + '-')).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(ignore)),
  );
}

describe('operator image (images/operator/build.sh) on real Docker', function () {
  this.timeout(180_000);
  let docker: Docker;
  let swarm = false;

  before(async function () {
    this.timeout(600_000);
    ({ docker, swarmActive: swarm } = await requireDocker());
    // Idempotent: returns at once when CI (images/build-all.sh) already built it.
    const r = await run('bash', [repoPath('images/operator/build.sh'), IMAGE], { timeoutMs: 590_000 });
    if (r.code !== 0) throw new Error(`images/operator/build.sh failed (${r.code}):\n${r.stderr.slice(-3000)}`);
    await docker.getImage(IMAGE).inspect();
  });

  describe('as a plain container', function () {
    const prefix = `oi${randomBytes(3).toString('hex')}`;
    let dir: string;
    let container: Docker.Container | undefined;

    after(async function () {
      if (container) await container.remove({ force: true }).catch(() => undefined);
      await removeByPrefix(docker, prefix);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('serves the API from a data dir on the host, installs the CRD and runs a server', async function () {
      dir = mkdtempSync(join(tmpdir(), 'nbswarm-opimg-'));
      const policy = writePolicy(dir, prefix);
      const data = join(dir, 'data');
      const port = await freePort();
      // Host networking with --address 127.0.0.1: the kubeconfig the server writes names exactly the
      // address the host's kubectl uses, and the API is never exposed beyond loopback.
      container = await docker.createContainer({
        Image: IMAGE,
        name: `${prefix}-operator`,
        Cmd: ['up', '--address', '127.0.0.1', '--port', String(port), '--data-dir', '/var/lib/nbswarm'],
        Env: ['NBSWARM_POLICY=/etc/nbswarm/policy.yaml'],
        Labels: { [TEST_RUN_LABEL]: TEST_RUN_ID },
        HostConfig: {
          NetworkMode: 'host',
          Binds: ['/var/run/docker.sock:/var/run/docker.sock', `${data}:/var/lib/nbswarm`, `${policy}:/etc/nbswarm/policy.yaml:ro`],
        },
      });
      await container.start();
      const kubeconfig = join(data, 'admin.kubeconfig');
      const c = container;
      await waitFor(
        'admin.kubeconfig in the bind-mounted data dir',
        async () => {
          const state = (await c.inspect()).State;
          if (!state.Running) throw new Error(`container exited ${state.ExitCode}: ${(await c.logs({ stdout: true, stderr: true })).toString().slice(-2000)}`);
          return existsSync(kubeconfig);
        },
        60_000,
      );
      expect(readFileSync(kubeconfig, 'utf8')).to.contain(`server: https://127.0.0.1:${port}`);
      // The CRD is installed right after the kubeconfig is written.
      await waitFor('the NotebookServer CRD', async () => (await kubectl(['get', 'crd', 'notebookservers.nbswarm.io'], { kubeconfig })).code === 0, 30_000);

      await serveOnce(docker, kubeconfig, prefix);

      // SIGTERM reaches node as PID 1 and it shuts down cleanly (no init needed).
      await c.stop({ t: 20 });
      expect((await c.inspect()).State.ExitCode).to.equal(0);
    });
  });

  describe('as the Swarm stack (manifests/swarm/nbswarm-stack.yml)', function () {
    const stack = `nbsit${randomBytes(3).toString('hex')}`;
    const prefix = `os${randomBytes(3).toString('hex')}`;
    let dir: string | undefined;

    after(async function () {
      if (!swarm) return;
      await run('docker', ['stack', 'rm', stack]);
      // The volume stays "in use" until the task container is gone.
      await waitFor(
        "the stack's containers to go",
        async () => (await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }) })).length === 0,
        60_000,
      ).catch(() => undefined);
      await removeByPrefix(docker, prefix);
      await docker
        .getVolume(`${stack}_data`)
        .remove()
        .catch(() => undefined);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('deploys with --resolve-image never, reads its policy config, and runs a server', async function () {
      if (!swarm) throw new Error('this test needs Docker Swarm (manager): docker swarm init --advertise-addr 127.0.0.1');
      dir = mkdtempSync(join(tmpdir(), 'nbswarm-stack-'));
      const policy = writePolicy(dir, prefix);
      const port = await freePort();
      const env = { NBSWARM_IMAGE: IMAGE, NBSWARM_API_PORT: String(port), NBSWARM_POLICY_FILE: policy, NBSWARM_STACK_LABEL: TEST_RUN_ID };
      const dep = await run('docker', ['stack', 'deploy', '--resolve-image', 'never', '-c', repoPath('manifests/swarm/nbswarm-stack.yml'), stack], {
        env,
        cwd: repoPath('manifests/swarm'),
      });
      expect(dep.code, dep.stderr).to.equal(0);

      const filters = JSON.stringify({ label: [`com.docker.swarm.service.name=${stack}_nbswarm`], status: ['running'] });
      const id = await waitFor("the stack's task container", async () => (await docker.listContainers({ filters }))[0]?.Id, 60_000);
      const task = docker.getContainer(id);
      let kc = '';
      await waitFor(
        "admin.kubeconfig in the stack's volume",
        async () => {
          const r = await run('docker', ['exec', id, 'cat', '/var/lib/nbswarm/admin.kubeconfig']);
          kc = r.code === 0 ? r.stdout : '';
          return kc.includes('server:');
        },
        60_000,
      );
      // Host network + --address 127.0.0.1: the kubeconfig works unchanged from the host.
      expect(kc).to.contain(`server: https://127.0.0.1:${port}`);
      const kubeconfig = join(dir, 'admin.kubeconfig');
      writeFileSync(kubeconfig, kc, { mode: 0o600 });
      await waitFor('the NotebookServer CRD', async () => (await kubectl(['get', 'crd', 'notebookservers.nbswarm.io'], { kubeconfig })).code === 0, 30_000);

      // The policy arrived as a Docker config at NBSWARM_POLICY: the operator names servers with its prefix.
      await serveOnce(docker, kubeconfig, prefix);
      const info = await task.inspect();
      expect(info.Config.Labels['nbswarm.io/stack']).to.equal(TEST_RUN_ID);
    });
  });
});
