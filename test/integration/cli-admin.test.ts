/**
 * The day-to-day commands against a real `nbswarm up` on the machine's Swarm: `nbswarm status`
 * (the fleet and the operator's health) and `nbswarm logs` (a server's output through Docker, as
 * a user reads the Jupyter token from it), each run as the bundled CLI a person runs; and their
 * errors, one line with a hint and no stack trace.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { GROUP, VERSION } from '../../src/api/names.js';
import { freePort, requireDocker, sleep, TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { CLI, startUp, type UpProcess } from '../helpers/up.js';

const TOKEN = 'token=3f1c0ffee';
// Prints a token line as Jupyter does, serves HTTP, then a numbered tick every second.
const SERVER_CMD = [
  'sh',
  '-c',
  `echo "${TOKEN}"; echo "to stderr" >&2; httpd -p {port} -h /www; trap "exit 0" TERM; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 1; done`,
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function nbswarm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, KUBECONFIG: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function expectOneLineError(r: Run, code: number, text: RegExp): void {
  expect(r.code, r.stderr).to.equal(code);
  expect(r.stdout).to.equal('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^nbswarm: /);
  expect(lines[0]).to.match(text);
  expect(lines[0]).to.contain('(hint: ');
  expect(r.stderr).not.to.match(/\n\s+at /);
}

describe('CLI: nbswarm status and nbswarm logs against nbswarm up', function () {
  this.timeout(180_000);
  let docker: Docker;
  let up: UpProcess | undefined;
  let kc: string[];

  before(async () => {
    ({ docker } = await requireDocker({ swarm: true }));
    up = await startUp({ backend: 'service', args: ['--status-port', String(await freePort())] });
    kc = ['--kubeconfig', up.kubeconfig];
    const nbs = JSON.stringify({
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'NotebookServer',
      metadata: { name: 'cl-a', namespace: 'default' },
      spec: { user: 'ann', mode: 'custom', command: SERVER_CMD, image: TEST_IMAGE },
    });
    const r = await up.kubectl(['apply', '-f', '-'], nbs);
    expect(r.code, r.stderr).to.equal(0);
    const w = await up.kubectl(['wait', '--for=jsonpath={.status.phase}=Running', 'nbs/cl-a', '--timeout=90s']);
    expect(w.code, w.stderr + up.output()).to.equal(0);
  });

  after(async () => {
    await up?.stop(docker);
  });

  it('status: the servers with their phase and endpoint, and the operator leading with a live queue and Docker', async () => {
    const r = await nbswarm(['status', ...kc]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^1 NotebookServer \(1 Running\)\n/);
    expect(r.stdout).to.match(/NAMESPACE\s+NAME\s+USER\s+MODE\s+PHASE\s+NODE\s+ENDPOINT\s+AGE/);
    expect(r.stdout).to.match(/\ndefault\s+cl-a\s+ann\s+custom\s+Running\s+\S+\s+http:\/\/127\.0\.0\.1:\d+\/\s+\d+s/);
    expect(r.stdout, r.stdout).to.match(/Operator: leader \S+ \(Lease nbswarm\/[^,]+, renewed \d+s ago\), status page http:\/\/127\.0\.0\.1:\d+\//);
    expect(r.stdout).to.match(/work queue \d+ waiting, \d+ running, \d+ delayed; [\d.]+ reconciles\/s, 0 errors/);
    expect(r.stdout).to.match(/Docker reachable \(service backend\); 1 servers cached/);

    const ns = await nbswarm(['status', '-n', 'elsewhere', ...kc]);
    expect(ns.code, ns.stderr).to.equal(0);
    expect(ns.stdout).to.match(/^0 NotebookServers in elsewhere\n/);
    expect(ns.stdout).not.to.contain('cl-a');
  });

  it('logs: the server output with its token, stderr apart; --since and --tail select', async () => {
    const r = await waitFor(
      'the token in the logs',
      async () => {
        const run = await nbswarm(['logs', 'cl-a', ...kc]);
        return run.code === 0 && run.stdout.includes(TOKEN) && run.stdout.includes('tick 1') ? run : undefined;
      },
      30_000,
      500,
    );
    expect(r.stdout.split('\n')[0]).to.equal(TOKEN);
    expect(r.stdout).not.to.contain('to stderr');
    expect(r.stderr).to.contain('to stderr');

    const tail = await nbswarm(['logs', 'cl-a', '--tail', '1', ...kc]);
    expect(tail.code, tail.stderr).to.equal(0);
    expect(tail.stdout.trimEnd().split('\n')).to.have.length(1);
    expect(tail.stdout).to.match(/^tick \d+\n$/);

    const future = await nbswarm(['logs', 'cl-a', '--since', '2099-01-01T00:00:00Z', ...kc]);
    expect(future.code, future.stderr).to.equal(0);
    expect(future.stdout).to.equal('');
    const recent = await nbswarm(['logs', 'cl-a', '--since', '1h', '-t', ...kc]);
    expect(recent.stdout).to.match(/^\d{4}-\d{2}-\d{2}T\S+ token=3f1c0ffee\n/);
  });

  it('logs -f: keeps printing new output until interrupted', async () => {
    const child = spawn(process.execPath, [CLI, 'logs', 'cl-a', '-f', '--tail', '1', ...kc], { env: { ...process.env, KUBECONFIG: '' } });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const first = await waitFor('the first line', async () => /tick (\d+)\n/.exec(out), 15_000, 100);
      const n = Number(first[1]);
      await waitFor(`tick ${n + 2} while following`, async () => out.includes(`tick ${n + 2}\n`), 15_000, 100);
    } finally {
      child.kill('SIGINT');
    }
    expect(await Promise.race([exited, sleep(10_000).then(() => 'still running')])).to.equal(0);
  });

  it('errors are one line with a hint: unknown server, bad --since, no kubeconfig, API server down', async () => {
    expectOneLineError(await nbswarm(['logs', 'nope', ...kc]), 1, /NotebookServer default\/nope not found/);
    expectOneLineError(await nbswarm(['logs', 'cl-a', '--since', 'yesterday', ...kc]), 2, /--since "yesterday" is neither a duration nor a time/);
    expectOneLineError(await nbswarm(['status', '--kubeconfig', '/nonexistent/kubeconfig']), 2, /cannot read kubeconfig \/nonexistent\/kubeconfig/);
    // The same credentials for an API server that is not running.
    const down = join(up!.dir, 'down.kubeconfig');
    writeFileSync(down, readFileSync(up!.kubeconfig, 'utf8').replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${await freePort()}`));
    expectOneLineError(await nbswarm(['status', '--kubeconfig', down]), 2, /cannot reach the API server at https:\/\/127\.0\.0\.1:\d+/);
    expectOneLineError(await nbswarm(['logs', 'cl-a', '--kubeconfig', down]), 2, /cannot reach the API server/);
  });

  it('doctor: every check ok against the running nbswarm up; a taken port, a bad policy and a missing image fail with their fix', async () => {
    const apiPort = new URL(up!.apiUrl).port;
    const statusPort = new URL(up!.output().match(/^status page:\n(\S+)$/m)![1]!).port;
    const good = await nbswarm(['doctor', ...kc, '--port', apiPort, '--status-port', statusPort, '--policy', join(up!.dir, 'policy.yaml')]);
    expect(good.code, good.stdout + good.stderr).to.equal(0);
    expect(good.stdout).to.match(/^ok\s+policy\s+\S+policy\.yaml: valid/m);
    expect(good.stdout).to.match(/^ok\s+Docker\s+Docker \S+/m);
    expect(good.stdout).to.match(/^ok\s+Swarm\s+active, this node is a manager/m);
    expect(good.stdout).to.match(/^ok\s+Swarm nodes\s+\d+ ready and active/m);
    expect(good.stdout).to.match(new RegExp(`^ok\\s+port ${apiPort} \\(--port\\)\\s+in use by a running nbswarm`, 'm'));
    expect(good.stdout).to.match(new RegExp(`^ok\\s+port ${statusPort} \\(--status-port\\)\\s+in use by a running nbswarm`, 'm'));
    expect(good.stdout).to.match(/^ok\s+API server\s+https:\/\/127\.0\.0\.1:\d+ answers/m);
    expect(good.stdout).to.match(/^ok\s+clock \(API server\)/m);
    expect(good.stdout).to.match(/all checks passed\n$/);

    // Ports held by something else (this test process): one that never answers, one whose HTTP
    // reply breaks off mid-body (doctor must not wait for the rest forever); a policy with an
    // unknown key, then one whose image is missing.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const held = String((holder.address() as AddressInfo).port);
    const breaksOff = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('o');
      setTimeout(() => req.socket.destroy(), 50);
    });
    await new Promise<void>((r) => breaksOff.listen(0, '127.0.0.1', () => r()));
    const heldHttp = String((breaksOff.address() as AddressInfo).port);
    try {
      const badPolicy = join(up!.dir, 'bad-policy.yaml');
      writeFileSync(badPolicy, 'defaultImag: local/notebook:latest\n');
      const bad = await nbswarm(['doctor', ...kc, '--port', held, '--status-port', heldHttp, '--policy', badPolicy]);
      expect(bad.code, bad.stdout + bad.stderr).to.equal(1);
      expect(bad.stdout).to.match(/^FAIL\s+policy\s+.*defaultImag/m);
      expect(bad.stdout).to.match(new RegExp(`^FAIL\\s+port ${held} \\(--port\\)\\s+port ${held} on 127\\.0\\.0\\.1 is in use by PID ${process.pid}`, 'm'));
      expect(bad.stdout).to.match(/fix: stop that process, or start nbswarm up with --port OTHER_PORT/);
      expect(bad.stdout).to.match(
        new RegExp(`^FAIL\\s+port ${heldHttp} \\(--status-port\\)\\s+port ${heldHttp} on 127\\.0\\.0\\.1 is in use by PID ${process.pid}`, 'm'),
      );
      expect(bad.stdout).to.match(/3 checks failed\n$/);
      expect(bad.stderr).to.equal('');

      const noImage = join(up!.dir, 'no-image.yaml');
      writeFileSync(noImage, 'defaultImage: local/nbswarm-absent:1\npullPolicy: never\nallowedImages: ["local/*"]\n');
      const missing = await nbswarm(['doctor', ...kc, '--port', '0', '--status-port', '0', '--policy', noImage]);
      expect(missing.code).to.equal(1);
      expect(missing.stdout).to.match(/^FAIL\s+image local\/nbswarm-absent:1\s+not on this Docker, and the policy never pulls\n\s+fix: build or load it/m);
    } finally {
      holder.close();
      breaksOff.close();
    }
  });
});
