import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callKind, diffCounts, isList, isWrite, normalisePath, startCountingProxy } from '../../bench/lib/docker-proxy.js';
import { median, percentile, summarize } from '../../bench/lib/stats.js';

describe('bench counting proxy: path kinds', () => {
  const cases: Array<[string, string]> = [
    ['/v1.41/services', '/services'],
    ['/v1.41/services?filters=%7B%22label%22%3A%5B%5D%7D', '/services'],
    ['/v1.41/services/create', '/services/create'],
    ['/v1.41/services/kx7w2/update?version=12', '/services/{id}/update'],
    ['/services/kx7w2', '/services/{id}'],
    ['/v1.41/tasks?filters=x', '/tasks'],
    ['/v1.41/containers/json?all=1', '/containers/json'],
    ['/v1.41/containers/create?name=nbs-alice', '/containers/create'],
    ['/v1.41/containers/4f1e/json', '/containers/{id}/json'],
    ['/v1.41/containers/4f1e/start', '/containers/{id}/start'],
    ['/v1.41/containers/4f1e', '/containers/{id}'],
    ['/v1.41/images/local/busybox:test/json', '/images/{name}/json'],
    ['/v1.41/images/sha256:0d87c402/json', '/images/{name}/json'],
    ['/v1.41/images/json', '/images/json'],
    ['/v1.41/images/create?fromImage=x', '/images/create'],
    ['/v1.41/images/registry.local:5000/a/b:1', '/images/{name}'],
    ['/v1.41/distribution/docker.io/library/busybox:1/json', '/distribution/{name}/json'],
    ['/v1.41/events?filters=x', '/events'],
    ['/_ping', '/_ping'],
    ['/v1.41/info', '/info'],
    ['/v1.41/volumes/create', '/volumes/create'],
    ['/v1.41/volumes/nbswarm-alice-home', '/volumes/{id}'],
    ['/v1.41/exec/abc/start', '/exec/{id}/start'],
    ['/v1.41/nodes/xyz', '/nodes/{id}'],
    ['/', '/'],
  ];
  for (const [raw, want] of cases) {
    it(`${raw} → ${want}`, () => expect(normalisePath(raw)).to.equal(want));
  }

  it('classifies writes and lists', () => {
    expect(callKind('post', '/v1.41/services/abc/update?version=3')).to.equal('POST /services/{id}/update');
    expect(isWrite('POST', '/v1.41/services/create')).to.equal(true);
    expect(isWrite('DELETE', '/v1.41/containers/abc')).to.equal(true);
    expect(isWrite('GET', '/v1.41/events')).to.equal(false);
    expect(isWrite('HEAD', '/_ping')).to.equal(false);
    expect(isWrite('POST', '/v1.41/containers/abc/wait')).to.equal(false);
    expect(isList('GET', '/v1.41/services?filters=x')).to.equal(true);
    expect(isList('GET', '/v1.41/containers/json')).to.equal(true);
    expect(isList('GET', '/v1.41/services/abc')).to.equal(false);
    expect(isList('GET', '/v1.41/events')).to.equal(false);
  });

  it('diffs counts', () => {
    const a = { byKind: { 'GET /services': 2 }, total: 2, writes: 0, lists: 2 };
    const b = { byKind: { 'GET /services': 5, 'POST /services/create': 1 }, total: 6, writes: 1, lists: 5 };
    expect(diffCounts(b, a)).to.deep.equal({ byKind: { 'GET /services': 3, 'POST /services/create': 1 }, total: 4, writes: 1, lists: 3 });
  });
});

describe('bench stats', () => {
  it('median, percentile and summary', () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 2, 3])).to.equal(2.5);
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 0.99)).to.equal(99);
    expect(percentile(xs, 1)).to.equal(100);
    const s = summarize([5, 1, 9]);
    expect([s.min, s.median, s.max, s.n]).to.deep.equal([1, 5, 9, 3]);
  });
});

/**
 * The proxy in front of a stand-in daemon on a Unix socket: plain, streaming and hijacked requests
 * pass through byte for byte and are counted. (The real daemon is exercised by the bench itself.)
 */
describe('bench counting proxy: forwarding', () => {
  let dir: string;
  let upstream: http.Server;
  const upstreamSockets = new Set<net.Socket>();
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-proxy-test-'));
    upstream = http.createServer((req, res) => {
      if (req.url?.startsWith('/v1.41/events')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"Action":"start"}\n');
        // A second event after a pause: only a streaming proxy delivers the first one early.
        setTimeout(() => res.end('{"Action":"die"}\n'), 150);
        return;
      }
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(JSON.stringify({ method: req.method, url: req.url, body }));
      });
    });
    upstream.on('upgrade', (req, sock: net.Socket) => {
      sock.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
      sock.on('data', (d) => sock.write(Buffer.concat([Buffer.from('echo:'), d])));
    });
    upstream.on('connection', (s: net.Socket) => {
      upstreamSockets.add(s);
      s.on('close', () => upstreamSockets.delete(s));
    });
    await new Promise<void>((r) => upstream.listen(join(dir, 'up.sock'), () => r()));
  });
  after(async () => {
    for (const s of upstreamSockets) s.destroy();
    await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('forwards requests with bodies and counts them by kind', async () => {
    const proxy = await startCountingProxy(join(dir, 'p1.sock'), join(dir, 'up.sock'));
    try {
      const r = await call(proxy.socketPath, 'POST', '/v1.41/services/create', '{"Name":"x"}');
      expect(r.status).to.equal(201);
      expect(r.headers['x-upstream']).to.equal('yes');
      expect(JSON.parse(r.body)).to.deep.equal({ method: 'POST', url: '/v1.41/services/create', body: '{"Name":"x"}' });
      await call(proxy.socketPath, 'GET', '/v1.41/services?filters=a');
      await call(proxy.socketPath, 'GET', '/v1.41/services?filters=b');
      const c = proxy.counts();
      expect(c.byKind).to.deep.equal({ 'POST /services/create': 1, 'GET /services': 2 });
      expect([c.total, c.writes, c.lists]).to.deep.equal([3, 1, 2]);
    } finally {
      await proxy.close();
    }
  });

  it('streams chunked responses as they arrive', async () => {
    const proxy = await startCountingProxy(join(dir, 'p2.sock'), join(dir, 'up.sock'));
    try {
      const first = await new Promise<{ chunk: string; done: Promise<string> }>((resolve, reject) => {
        const req = http.request({ socketPath: proxy.socketPath, path: '/v1.41/events' }, (res) => {
          let all = '';
          let firstSeen = false;
          const done = new Promise<string>((r) => res.on('end', () => r(all)));
          res.on('data', (c) => {
            all += c;
            if (!firstSeen) {
              firstSeen = true;
              resolve({ chunk: String(c), done });
            }
          });
        });
        req.on('error', reject);
        req.end();
      });
      expect(first.chunk).to.equal('{"Action":"start"}\n');
      expect(await first.done).to.equal('{"Action":"start"}\n{"Action":"die"}\n');
      expect(proxy.counts().byKind).to.deep.equal({ 'GET /events': 1 });
    } finally {
      await proxy.close();
    }
  });

  it('splices hijacked (Upgrade) connections', async () => {
    const proxy = await startCountingProxy(join(dir, 'p3.sock'), join(dir, 'up.sock'));
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const req = http.request({
          socketPath: proxy.socketPath,
          method: 'POST',
          path: '/v1.41/containers/abc/attach?stream=1',
          headers: { Connection: 'Upgrade', Upgrade: 'tcp' },
        });
        req.on('upgrade', (res, sock) => {
          expect(res.statusCode).to.equal(101);
          sock.once('data', (d) => {
            sock.destroy();
            resolve(String(d));
          });
          sock.write('hello');
        });
        req.on('error', reject);
        req.end();
      });
      expect(got).to.equal('echo:hello');
      expect(proxy.counts().byKind).to.deep.equal({ 'POST /containers/{id}/attach': 1 });
      expect(proxy.counts().writes).to.equal(0);
    } finally {
      await proxy.close();
    }
  });
});
