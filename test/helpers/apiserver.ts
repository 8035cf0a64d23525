import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer, type ApiServerOptions, type RunningApiServer } from '../../src/apiserver/index.js';
import { repoPath } from '../../src/paths.js';
import { replyText } from '../../src/util/http-reply.js';

export type TestApiServer = RunningApiServer & {
  /** Stops the server and removes its temp data dir. */
  cleanup(): Promise<void>;
};

/** Starts the embedded API server on a random loopback port in a fresh temp data dir. */
export async function startTestApiServer(opts: Partial<ApiServerOptions> = {}): Promise<TestApiServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'nbswarm-api-'));
  const srv = await startApiServer({ port: 0, host: '127.0.0.1', ...opts, dataDir });
  return Object.assign(srv, {
    async cleanup() {
      await srv.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real kubectl binary. `bin` may be a name on PATH (`kubectl`, `kubectl.1.27`) or a path;
 * versioned binaries live beside the file `kubectl` links to, so that directory is added to PATH.
 */
export function kubectl(
  args: string[],
  opts: { kubeconfig: string; bin?: string; input?: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      KUBECONFIG: opts.kubeconfig,
      PATH: `${kubectlDir()}:${process.env.PATH ?? ''}`,
      KUBECTL_EXTERNAL_DIFF: '',
      ...opts.env,
    };
    // A private cache dir per kubeconfig keeps discovery caches of different servers apart.
    env.KUBECACHEDIR ??= join(opts.kubeconfig + '.cache');
    const child = spawn(opts.bin ?? 'kubectl', ['--kubeconfig', opts.kubeconfig, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** kubectl `bin` with one kubeconfig (and namespace): `run` resolves with what it did, `ok` fails the test unless it exits 0. */
export interface KubectlAs {
  run(args: string[], input?: string, env?: Record<string, string>): Promise<KubectlResult>;
  /** Resolves with kubectl's stdout. */
  ok(args: string[], input?: string, env?: Record<string, string>): Promise<string>;
}

/**
 * kubectl `bin` with the kubeconfig `kubeconfig()` names when called (a test's server starts in its
 * before hook), in namespace `ns` when given.
 */
export function kubectlAs(kubeconfig: () => string, bin = 'kubectl', ns?: string): KubectlAs {
  const run = (args: string[], input?: string, env?: Record<string, string>) =>
    kubectl([...(ns ? ['-n', ns] : []), ...args], { kubeconfig: kubeconfig(), bin, input, env });
  const ok = async (args: string[], input?: string, env?: Record<string, string>) => {
    const r = await run(args, input, env);
    expect(r.code, `kubectl ${args.join(' ')}\n${r.stderr}`).to.equal(0);
    return r.stdout;
  };
  return { run, ok };
}

/** Installs the NotebookServer CRD from crds/ with kubectl and waits until it is served. */
export async function installNotebookServerCrd(kubeconfig: string): Promise<void> {
  const { ok } = kubectlAs(() => kubeconfig);
  await ok(['apply', '-f', repoPath('crds/notebookserver.yaml')]);
  await ok(['wait', '--for', 'condition=established', 'crd/notebookservers.nbswarm.io', '--timeout=20s']);
}

let dirCache: string | undefined;
/** The directory holding kubectl.1.27 … kubectl.1.33. */
export function kubectlDir(): string {
  if (dirCache !== undefined) return dirCache;
  try {
    const real = execFileSync('sh', ['-c', 'dirname "$(readlink -f "$(command -v kubectl)")"']).toString().trim();
    dirCache = real;
  } catch {
    dirCache = '';
  }
  return dirCache;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  body: any;
}

/** One HTTPS/1.1 request to the server, trusting its CA; `token: null` sends no Authorization. */
export async function apiRequest(
  srv: Pick<RunningApiServer, 'url' | 'caPem' | 'adminToken'>,
  method: string,
  path: string,
  opts: { body?: unknown; raw?: string | Buffer; contentType?: string; accept?: string; token?: string | null } = {},
): Promise<ApiResponse> {
  const https = await import('node:https');
  const u = new URL(path, srv.url);
  const payload = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const token = opts.token === undefined ? srv.adminToken : opts.token;
  return new Promise((resolve, reject) => {
    const req = https.request(
      u,
      {
        method,
        ca: srv.caPem,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}),
          accept: opts.accept ?? 'application/json',
        },
      },
      (res) => {
        replyText(res).then((text) => {
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        }, reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Opens a watch stream; events arrive in `events`; call `stop()` when done. */
export async function apiWatch(
  srv: Pick<RunningApiServer, 'url' | 'caPem' | 'adminToken'>,
  path: string,
  token?: string,
): Promise<{ status: number; events: { type: string; object: any }[]; stop(): void; ended: Promise<void> }> {
  const https = await import('node:https');
  const u = new URL(path, srv.url);
  return new Promise((resolve, reject) => {
    const events: { type: string; object: any }[] = [];
    const req = https.request(
      u,
      { method: 'GET', ca: srv.caPem, headers: { authorization: `Bearer ${token ?? srv.adminToken}`, accept: 'application/json' } },
      (res) => {
        let buf = '';
        const ended = new Promise<void>((done) => {
          res.on('end', () => done());
          res.on('close', () => done());
          res.on('error', () => done());
        });
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8');
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) events.push(JSON.parse(line));
          }
        });
        resolve({ status: res.statusCode ?? 0, events, stop: () => req.destroy(), ended });
      },
    );
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
    req.end();
  });
}

/** Polls `cond` every 20 ms until it holds (or throws after `ms`). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 15000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads the Widget fixture CRD (test/fixtures/widget-crd.yaml) as an object. */
export async function widgetCrd(): Promise<any> {
  const { readFileSync } = await import('node:fs');
  const YAML = (await import('yaml')).default;
  const { repoPath } = await import('../../src/paths.js');
  return YAML.parse(readFileSync(repoPath('test/fixtures/widget-crd.yaml'), 'utf8'));
}
