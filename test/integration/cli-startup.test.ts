/**
 * Start-up problems of the bundled CLI, as a user meets them: one line on stderr naming the cause
 * and what to do, exit code 2, no stack trace.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubectl, startTestApiServer } from '../helpers/apiserver.js';
import { requireDocker } from '../helpers/docker.js';

// The file `nbswarm`, `npm start` and the image run (npm run build makes it beside dist/test/).
const CLI = fileURLToPath(new URL('../../nbswarm.mjs', import.meta.url));

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('CLI start-up messages', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'nbswarm-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('nbswarm up on a port in use names the process that holds it', async () => {
    await requireDocker();
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const env = { ...process.env, NBSWARM_LOG_LEVEL: 'error' };
      const r = await runCli(['up', '--data-dir', join(dir, 'data'), '--port', String(port)], env);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stdout).to.equal('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      // This test process holds the port: its PID and its command line (node … mocha …) are named.
      expect(lines[0]).to.match(
        new RegExp(
          `^nbswarm: port ${port} on 127\\.0\\.0\\.1 is in use by PID ${process.pid} \\(\\S*node\\b[^)]*\\) \\(hint: pass another --port, or stop that process\\)$`,
        ),
      );
    } finally {
      holder.close();
    }
  });

  it('nbswarm kubeconfig points at the port the server on --data-dir listens on (no --server)', async () => {
    const data = join(dir, 'data');
    const srv = await startTestApiServer({ dataDir: data });
    try {
      expect(srv.port).to.not.equal(6443);
      appendFileSync(join(data, 'tokens.csv'), 'hubtoken0123456789abcdef,hub,hub,default\n');
      const env = { ...process.env };
      delete env.NBSWARM_PORT;
      delete env.NBSWARM_ADDRESS;
      const r = await runCli(['kubeconfig', '--data-dir', data, '--user', 'hub', '--namespace', 'default'], env);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain(`server: https://127.0.0.1:${srv.port}`);
      const file = join(dir, 'hub.kubeconfig');
      writeFileSync(file, r.stdout);
      // The token file is re-read within 2 s of a change.
      let got = await kubectl(['get', 'configmaps'], { kubeconfig: file });
      for (let i = 0; i < 30 && got.code !== 0; i++) {
        await new Promise((ok) => setTimeout(ok, 200));
        got = await kubectl(['get', 'configmaps'], { kubeconfig: file });
      }
      expect(got.code, got.stderr).to.equal(0);
      // An explicit --server still wins.
      const explicit = await runCli(['kubeconfig', '--data-dir', data, '--server', 'https://127.0.0.1:7443'], env);
      expect(explicit.stdout).to.contain('server: https://127.0.0.1:7443');
    } finally {
      await srv.close();
    }
  });

  for (const flag of ['--metrics-port', '--status-port']) {
    it(`nbswarm up with ${flag} on a port in use names the holder in one line, before starting anything`, async () => {
      const holder = net.createServer();
      await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
      const port = (holder.address() as net.AddressInfo).port;
      try {
        const r = await runCli(['up', '--data-dir', join(dir, 'data'), '--port', '0', flag, String(port)], { ...process.env, NBSWARM_LOG_LEVEL: 'error' });
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stdout).to.equal('');
        expect(r.stderr).to.match(
          new RegExp(
            `^nbswarm: port ${port} on 127\\.0\\.0\\.1 is in use by PID ${process.pid} \\([^)]*\\) \\(hint: pass another ${flag}, or stop that process\\)\n$`,
          ),
        );
      } finally {
        holder.close();
      }
    });
  }

  it('refuses an unknown --log-format or --log-level in one line', async () => {
    const r = await runCli(['up', '--log-format', 'xml'], process.env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal("error: option '--log-format <format>' argument 'xml' is invalid. Allowed choices are json, text.\n");
    const l = await runCli(['operator', '--log-level', 'chatty'], process.env);
    expect(l.stderr).to.equal("error: option '--log-level <level>' argument 'chatty' is invalid. Allowed choices are error, warn, info, debug.\n");
  });

  it('nbswarm operator with no kubeconfig outside a pod says what to pass', async () => {
    const env = { ...process.env };
    delete env.KUBECONFIG;
    delete env.KUBERNETES_SERVICE_HOST;
    const r = await runCli(['operator'], env);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal(
      'nbswarm: no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set and this is not a Kubernetes pod ' +
        '(hint: pass --kubeconfig FILE (the file `nbswarm up` printed, or one for your cluster))\n',
    );
  });
});
