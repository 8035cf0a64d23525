/**
 * `nbswarm up` as a user runs it (the bundled CLI in a child process) with a policy of its own: a
 * per-run name prefix, so its orphan GC never touches another test's objects and cleanup removes
 * only what this run made. Reads the banner for the API server, kubeconfig and status page.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { kubectl, type KubectlResult } from './apiserver.js';
import { sleep } from './docker.js';

/** The file `nbswarm`, `npm start` and the image run (npm run build makes it beside dist/test/). */
export const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

export interface UpProcess {
  child: ChildProcess;
  dir: string;
  prefix: string;
  kubeconfig: string;
  apiUrl: string;
  statusUrl?: string;
  /** stdout + stderr so far. */
  output(): string;
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** Delete every NotebookServer (the operator removes their Docker objects), stop `up`, remove what is left. */
  stop(docker?: Docker): Promise<void>;
}

export interface UpOptions {
  backend?: 'service' | 'container';
  /** Extra policy YAML lines. */
  policy?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export async function startUp(opts: UpOptions = {}): Promise<UpProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-up-'));
  const prefix = `t${randomBytes(3).toString('hex')}`;
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, `prefix: ${prefix}\nallowedImages: ["local/*"]\nresyncSeconds: 30\n${opts.policy ?? ''}`);
  const args = [
    CLI,
    'up',
    '--data-dir',
    join(dir, 'data'),
    '--port',
    '0',
    '--policy',
    policyFile,
    '--status-port',
    '0',
    ...(opts.backend ? ['--backend', opts.backend] : []),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  // The banner is one write; its kubeconfig line means `up` is ready.
  while (!/^kubeconfig:\n\/\S+\n/m.test(out)) {
    if (child.exitCode !== null) throw new Error(`nbswarm up exited ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nbswarm up did not print its banner within 60 s:\n${out}`);
    }
    await sleep(50);
  }
  const kubeconfig = /^kubeconfig:\n(\/\S+)$/m.exec(out)![1]!;
  const apiUrl = /API server (https:\/\/\S+),/.exec(out)![1]!;
  const statusUrl = /^status page:\n(\S+)$/m.exec(out)?.[1];
  const run = (a: string[], input?: string) => kubectl(a, { kubeconfig, input });
  return {
    child,
    dir,
    prefix,
    kubeconfig,
    apiUrl,
    statusUrl,
    output: () => out,
    kubectl: run,
    async stop(docker?: Docker) {
      if (child.exitCode === null) {
        await run(['delete', 'nbs', '--all', '-A', '--wait=true', '--timeout=60s']).catch(() => undefined);
        child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
        if (!done) child.kill('SIGKILL');
      }
      if (docker) await removeByPrefix(docker, prefix);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Services, containers and volumes whose names start with this run's prefix (the policy's name templates). */
async function removeByPrefix(docker: Docker, prefix: string): Promise<void> {
  const mine = (name: string) => name.replace(/^\//, '').startsWith(`${prefix}-`);
  try {
    const services = (await docker.listServices()) as any[];
    await Promise.all(
      services
        .filter((s) => mine(s.Spec?.Name ?? ''))
        .map((s) =>
          docker
            .getService(s.ID)
            .remove()
            .catch(() => undefined),
        ),
    );
  } catch {
    // not a Swarm manager
  }
  for (let i = 0; i < 50; i++) {
    const cs = (await docker.listContainers({ all: true })).filter((c) => c.Names.some(mine) || mine(c.Labels?.['com.docker.swarm.service.name'] ?? ''));
    if (cs.length === 0) break;
    await Promise.all(
      cs.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await sleep(200);
  }
  const vols = ((await docker.listVolumes()) as any).Volumes ?? [];
  await Promise.all(
    vols
      .filter((v: any) => mine(v.Name))
      .map((v: any) =>
        docker
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
  );
}
