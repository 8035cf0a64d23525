/**
 * A real git server for tests: git's own smart-HTTP backend (`git http-backend`, run as a CGI per
 * request) behind an HTTPS server on 127.0.0.1 with a certificate from a throw-away CA and HTTP
 * Basic credentials, in the test process. Containers with host networking reach it at
 * https://127.0.0.1:PORT; it never listens anywhere else. close() stops it and removes its files.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureTls } from '../../src/apiserver/tls.js';

export interface GitServer {
  /** https://127.0.0.1:PORT/<repo>.git */
  url(repo: string): string;
  /** The CA that signed the server's certificate (PEM): what a client must trust. */
  caPem: string;
  username: string;
  password: string;
  /** Requests answered, and how many of them carried the right credentials. */
  stats: { requests: number; authenticated: number; refused: number };
  /** Create (or add to) bare repository `repo` on `branch` with these files, as one commit; returns its hash. */
  commit(repo: string, files: Record<string, string>, message: string, branch?: string): string;
  close(): Promise<void>;
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'nbswarm test',
  GIT_AUTHOR_EMAIL: 'test@nbswarm.invalid',
  GIT_COMMITTER_NAME: 'nbswarm test',
  GIT_COMMITTER_EMAIL: 'test@nbswarm.invalid',
};

export async function startGitServer(opts: { username?: string; password?: string } = {}): Promise<GitServer> {
  const root = mkdtempSync(join(tmpdir(), 'nbswarm-git-'));
  const repos = join(root, 'repos');
  mkdirSync(repos);
  const tls = ensureTls(join(root, 'tls'), ['127.0.0.1']);
  const username = opts.username ?? 'dashboards';
  const password = opts.password ?? `pw-${Math.random().toString(36).slice(2)}`;
  const expected = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
  const stats = { requests: 0, authenticated: 0, refused: 0 };
  const sockets = new Set<Socket>();

  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    stats.requests++;
    if (req.headers.authorization !== expected) {
      stats.refused++;
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="nbswarm test git"', 'Content-Type': 'text/plain' });
      res.end('credentials required\n');
      return;
    }
    stats.authenticated++;
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: repos,
        GIT_HTTP_EXPORT_ALL: '1',
        GATEWAY_INTERFACE: 'CGI/1.1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.replace(/^\?/, ''),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_USER: username,
        REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    req.pipe(cgi.stdin);
    // CGI output: header lines, a blank line, the body.
    let head = Buffer.alloc(0);
    let inBody = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (inBody) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const crlf = head.indexOf('\r\n\r\n');
      const lf = head.indexOf('\n\n');
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
      if (end < 0) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const m = /^([^:]+):\s*(.*)$/.exec(line);
        if (!m) continue;
        if (m[1]!.toLowerCase() === 'status') status = Number(m[2]!.split(' ')[0]);
        else headers[m[1]!] = m[2]!;
      }
      res.writeHead(status, headers);
      inBody = true;
      if (head.length > end) res.write(head.subarray(end));
    });
    cgi.stdout.on('end', () => res.end());
    cgi.on('error', () => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, ...GIT_ENV } }).trim();

  return {
    url: (repo) => `https://127.0.0.1:${port}/${repo}.git`,
    caPem: tls.caPem,
    username,
    password,
    stats,
    commit(repo, files, message, branch = 'main') {
      const bare = join(repos, `${repo}.git`);
      const work = join(root, 'work', repo);
      if (!existsSync(bare)) {
        git(root, 'init', '-q', '--bare', '-b', branch, bare);
        mkdirSync(work, { recursive: true });
        git(work, 'init', '-q', '-b', branch);
        git(work, 'remote', 'add', 'origin', bare);
      }
      const branches = git(work, 'branch', '--list', branch);
      if (branches) git(work, 'checkout', '-q', branch);
      else git(work, 'checkout', '-q', '-B', branch);
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(work, path)), { recursive: true });
        writeFileSync(join(work, path), content);
        git(work, 'add', path);
      }
      git(work, 'commit', '-q', '-m', message);
      git(work, 'push', '-q', 'origin', branch);
      return git(work, 'rev-parse', 'HEAD');
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
