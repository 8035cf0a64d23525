/**
 * The npm package as a user gets it: `npm pack` of this checkout, installed with `npm install
 * ./nbswarm-*.tgz` into an empty directory (dependencies from the npm registry), then its
 * `nbswarm` binary run from there — `version`, and `up` against the machine's real dockerd with the
 * real kubectl reading the kubeconfig it prints, a NotebookServer served, SIGTERM by PID.
 *
 * better-sqlite3 has no prebuilt binary download here (no GitHub), and compiling it takes minutes;
 * prebuild-install's documented offline mechanism (npm_config_better_sqlite3_local_prebuilds)
 * is given the module `npm ci` compiled for this very node, as an offline site would give it one.
 * If the registry resolves another better-sqlite3 than the checkout's, it compiles instead (slow,
 * still correct).
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from '../../src/paths.js';
import { kubeconfigFromBanner } from '../../src/up-banner.js';
import { kubectl } from '../helpers/apiserver.js';
import { TEST_IMAGE, freePort, requireDocker, waitFor, waitForHttp } from '../helpers/docker.js';
import { cleanupPrefix, nbsYaml } from './operator-harness.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { name: string; version: string };

describe('npm package (npm pack → npm install in an empty directory → nbswarm)', function () {
  this.timeout(180_000);
  const prefix = `pk${randomBytes(3).toString('hex')}`;
  let dir: string;
  let app: string;
  let packed: string[] = [];
  let up: ChildProcess | undefined;

  before(async function () {
    // Installing compiles ssh2's optional binding (~20 s of CPU); a better-sqlite3 compile, if the
    // registry moved on, takes minutes more.
    this.timeout(900_000);
    dir = mkdtempSync('/var/tmp/nbswarm-pack-');
    // --ignore-scripts: prepack would rebuild dist/, which `npm test` built moments ago.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repoPath(), timeoutMs: 120_000 });
    if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    packed = info.files.map((f) => f.path);

    const sqliteVersion = (JSON.parse(readFileSync(repoPath('node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
    const prebuilds = join(dir, 'prebuilds');
    const staging = join(dir, 'prebuild-staging');
    mkdirSync(join(staging, 'build/Release'), { recursive: true });
    mkdirSync(prebuilds);
    const tarName = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
    const tar = await run(
      'sh',
      [
        '-c',
        `cp '${repoPath('node_modules/better-sqlite3/build/Release/better_sqlite3.node')}' build/Release/ && tar -czf '${join(prebuilds, tarName)}' build`,
      ],
      { cwd: staging, timeoutMs: 30_000 },
    );
    if (tar.code !== 0) throw new Error(`cannot stage the better-sqlite3 prebuild: ${tar.stderr}`);

    app = join(dir, 'app');
    mkdirSync(app);
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, info.filename)], {
      cwd: app,
      env: { npm_config_better_sqlite3_local_prebuilds: prebuilds },
      timeoutMs: 880_000,
    });
    if (install.code !== 0) throw new Error(`npm install ${info.filename} failed:\n${install.stderr.slice(-3000)}`);
  });

  after(async function () {
    if (up && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    const { docker } = await requireDocker();
    await cleanupPrefix(docker, prefix);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds the bundle and its chunks, the CRD, manifests, image recipes, set-up scripts, hub and README — and no tests, sources or bench results', () => {
    const chunks = readdirSync(repoPath('dist/nbswarm-chunks'))
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => `dist/nbswarm-chunks/${f}`);
    expect(chunks.length).to.be.greaterThan(0);
    expect(packed).to.include.members([
      'package.json',
      'README.md',
      'dist/nbswarm.mjs',
      ...chunks,
      'crds/notebookserver.yaml',
      'manifests/kubernetes/kustomization.yaml',
      'manifests/kubernetes/operator.yaml',
      'manifests/swarm/nbswarm-stack.yml',
      'manifests/examples/custom-busybox.yaml',
      'images/build-all.sh',
      'images/lib/debian-base.sh',
      'images/notebook/build.sh',
      'images/test/build.sh',
      'scripts/setup.sh',
      'scripts/install-packages.sh',
      'scripts/apt-packages.txt',
      'scripts/lib/progress.sh',
      'hub/pyproject.toml',
      'hub/nbswarm_spawner/spawner.py',
      'hub/nbswarm_spawner/kube.py',
      'hub/nbswarm_spawner/names.py',
      'hub/nbswarm_spawner/objects.py',
    ]);
    const unwanted = packed.filter((p) => /^(src|test|bench|dist\/(src|test|bench))\/|^hub\/tests\/|\.map$|__pycache__|\.tgz$/.test(p));
    expect(unwanted).to.deep.equal([]);
  });

  it('`nbswarm version` runs from the installed package', async () => {
    const r = await run(join(app, 'node_modules/.bin/nbswarm'), ['version'], { cwd: app, timeoutMs: 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal(`nbswarm ${pkg.version} (node ${process.version})\n`);
  });

  it('`nbswarm up` from the installed package serves the API on real Docker; kubectl runs a server with the printed kubeconfig', async () => {
    await requireDocker();
    const port = await freePort();
    writeFileSync(
      join(app, 'policy.yaml'),
      [`prefix: ${prefix}`, 'pullPolicy: never', 'allowedImages: ["local/*"]', `defaultImage: ${TEST_IMAGE}`, 'volumes: []', ''].join('\n'),
    );
    let stdout = '';
    let stderr = '';
    const child = spawn(join(app, 'node_modules/.bin/nbswarm'), ['up', '--data-dir', 'data', '--port', String(port), '--policy', 'policy.yaml'], {
      cwd: app,
      env: { ...process.env, NBSWARM_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up = child;
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

    const kubeconfig = await waitFor(
      'the kubeconfig line',
      async () => {
        if (child.exitCode !== null) throw new Error(`nbswarm up exited ${child.exitCode}: ${stderr}`);
        return kubeconfigFromBanner(stdout);
      },
      60_000,
    );
    expect(kubeconfig).to.equal(join(app, 'data', 'admin.kubeconfig'));
    expect(stdout).to.contain(`nbswarm is up: API server https://127.0.0.1:${port}`);

    const get = await kubectl(['get', 'nbs', '-A'], { kubeconfig });
    expect(get.code, get.stderr).to.equal(0);
    const applied = await kubectl(['apply', '-f', '-'], {
      kubeconfig,
      input: nbsYaml('pkg', {
        user: 'pat',
        mode: 'custom',
        command: ['httpd', '-f', '-p', '{port}', '-h', '/www'],
        image: TEST_IMAGE,
        resources: { cpu: '250m', memory: '32Mi' },
      }),
    });
    expect(applied.code, applied.stderr).to.equal(0);
    const ready = await kubectl(['wait', '--for=condition=Ready', 'nbs/pkg', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
    expect(ready.code, `${ready.stderr}\n${stderr}`).to.equal(0);
    const hostUrl = (await kubectl(['get', 'nbs', 'pkg', '-o', 'jsonpath={.status.endpoint.hostUrl}'], { kubeconfig })).stdout;
    expect(await waitForHttp(hostUrl, 20_000)).to.contain('nbswarm test image');
    const deleted = await kubectl(['delete', 'nbs', 'pkg', '--wait=true', '--timeout=60s'], { kubeconfig, timeoutMs: 70_000 });
    expect(deleted.code, deleted.stderr).to.equal(0);

    process.kill(child.pid!, 'SIGTERM');
    expect(await exited).to.equal(0);
  });
});
