import { chmodSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { expect } from 'chai';
import { startApiServer } from '../../src/apiserver/index.js';
import { createLogger } from '../../src/log.js';
import { replyText } from '../../src/util/http-reply.js';
import {
  closedByServer,
  HealthProbe,
  installWidgets,
  RssSampler,
  spawnApiServer,
  stalledRequest,
  widget,
  WIDGETS,
  type ServerProcess,
} from '../../bench/lib/attacks.js';
import { apiRequest, apiWatch, startTestApiServer, until, widgetCrd, type TestApiServer } from '../helpers/apiserver.js';

const CM = '/api/v1/namespaces/default/configmaps';
const configMap = (name: string, data: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });
const mode = (f: string) => (statSync(f).mode & 0o777).toString(8);

/** Starts an upload of `total` bytes and sends only `sent` of them; resolves with the reply, if one comes. */
/**
 * `n` HTTP/2 watches of ConfigMaps on one session, answered and then paused: past the 64 KiB
 * flow-control window the server holds what it sends them. `watch` sees each stream first.
 */
async function pausedWatches(
  srv: TestApiServer,
  n: number,
  watch: (s: http2.ClientHttp2Stream, i: number) => void = () => undefined,
): Promise<{ session: http2.ClientHttp2Session; streams: http2.ClientHttp2Stream[] }> {
  const session = http2.connect(srv.url, { ca: srv.caPem });
  session.on('error', () => {});
  const streams = Array.from({ length: n }, (_, i) => {
    const s = session.request({ ':path': `${CM}?watch=1`, authorization: `Bearer ${srv.adminToken}` });
    watch(s, i);
    s.on('error', () => {});
    s.end();
    return s;
  });
  await Promise.all(streams.map((s) => new Promise((ok) => s.once('response', ok))));
  for (const s of streams) s.pause();
  return { session, streams };
}

function partialUpload(
  srv: TestApiServer,
  total: number,
  sent: number,
): { reply: Promise<{ status: number; headers: Record<string, unknown>; body: string }>; abort(): void } {
  const r = https.request(new URL(CM, srv.url), {
    method: 'POST',
    ca: srv.caPem,
    headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/json', 'content-length': String(total) },
  });
  const reply = new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    r.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
  });
  reply.catch(() => {});
  r.write(Buffer.alloc(sent, 0x20));
  return { reply, abort: () => r.destroy() };
}

describe('API server limits', function () {
  this.timeout(120_000);

  it('makes an existing 0755 data dir private and creates state.db, -wal and -shm 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbswarm-perm-'));
    try {
      chmodSync(dir, 0o755);
      // A store left by an older server, readable by all.
      const store = join(dir, 'state.db');
      const srv0 = await startTestApiServer({ dataDir: dir });
      await srv0.close();
      chmodSync(store, 0o644);
      const srv = await startTestApiServer({ dataDir: dir });
      try {
        expect(
          (
            await apiRequest(srv, 'POST', '/api/v1/namespaces/default/secrets', {
              body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { p: 'x' } },
            })
          ).status,
        ).to.equal(201);
        expect(mode(dir)).to.equal('700');
        for (const f of ['state.db', 'state.db-wal', 'state.db-shm', 'tokens.csv', 'admin.kubeconfig']) expect(mode(join(dir, f)), f).to.equal('600');
      } finally {
        await srv.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on a damaged state.db, naming the file, and leaves it as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbswarm-corrupt-'));
    try {
      const srv = await startTestApiServer({ dataDir: dir });
      const big = 'x'.repeat(2000);
      for (let i = 0; i < 200; i++) expect((await apiRequest(srv, 'POST', CM, { body: configMap(`cm-${i}`, { big }) })).status).to.equal(201);
      await srv.close();
      const store = join(dir, 'state.db');
      rmSync(`${store}-wal`, { force: true });
      rmSync(`${store}-shm`, { force: true });
      // Garbage over pages in the middle of the file (not the header).
      const fd = openSync(store, 'r+');
      writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, 16 * 4096);
      closeSync(fd);
      const damaged = readFileSync(store);
      const refusal = () =>
        startApiServer({ dataDir: dir, port: 0 }).then(
          async (s) => {
            await s.close();
            return 'started';
          },
          (e: Error) => e.message,
        );
      const first = await refusal();
      expect(first).to.contain(`cannot use the database ${store}`);
      expect(first).to.contain('does not start on a damaged store');
      expect(readFileSync(store).equals(damaged)).to.equal(true);
      writeFileSync(store, 'not a database at all, just text that is long enough to be a header'.repeat(10));
      expect(await refusal()).to.match(/cannot use the database .*state\.db: file is not a database/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('per user, per request and per connection', () => {
    let srv: TestApiServer;
    before(async () => {
      srv = await startTestApiServer({
        limits: { maxInflightPerUser: 2, maxWatchesPerUser: 2, requestTimeoutSeconds: 2, idleTimeoutSeconds: 1, watchBufferBytes: 1024 * 1024 },
      });
    });
    after(async () => srv?.cleanup());

    it('a user past its requests in flight gets 429 with Retry-After; other users are not held up', async () => {
      const a = partialUpload(srv, 1000, 10);
      const b = partialUpload(srv, 1000, 10);
      try {
        await until(async () => (await apiRequest(srv, 'GET', CM)).status === 429, 5000, 'the third request is refused');
        const r = await apiRequest(srv, 'GET', CM);
        expect(r.status).to.equal(429);
        expect(r.headers['retry-after']).to.equal('1');
        expect(r.body.message).to.match(/user "admin" has 2 requests in progress/);
        expect((await apiRequest(srv, 'GET', '/healthz', { token: null })).status).to.equal(200);
      } finally {
        a.abort();
        b.abort();
      }
      await until(async () => (await apiRequest(srv, 'GET', CM)).status === 200, 5000, 'requests are admitted again');
    });

    it('a body that does not arrive within the request timeout gets 408 and its connection is closed', async () => {
      const t0 = Date.now();
      const r = await partialUpload(srv, 100_000, 100).reply;
      expect(r.status).to.equal(408);
      expect(JSON.parse(r.body).message).to.contain('did not arrive within 2s');
      expect(r.headers.connection).to.equal('close');
      expect(Date.now() - t0).to.be.within(1500, 30_000);
    });

    it('closes an HTTP/2 session that has had no stream for the idle timeout', async () => {
      const session = http2.connect(srv.url, { ca: srv.caPem });
      const closed = new Promise<void>((r) => session.on('close', () => r()));
      session.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        const s = session.request({ ':path': '/healthz' });
        s.on('data', () => {});
        s.on('end', () => resolve());
        s.on('error', reject);
        s.end();
      });
      const t0 = Date.now();
      await closed;
      expect(Date.now() - t0).to.be.below(10_000);
    });

    it('a watch whose client does not read is ended once 1 MiB waits for it; the server stays responsive', async () => {
      const socket = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem, servername: '127.0.0.1', ALPNProtocols: ['http/1.1'] });
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      socket.write(`GET ${CM}?watch=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.adminToken}\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 300));
      socket.pause();
      let ended = false;
      socket.on('close', () => (ended = true));
      socket.on('error', () => {});
      const value = 'y'.repeat(700 * 1024);
      for (let i = 0; i < 24 && !ended; i++) {
        expect((await apiRequest(srv, 'POST', CM, { body: configMap(`w-${i}`, { value }) })).status).to.equal(201);
        expect((await apiRequest(srv, 'GET', '/healthz', { token: null })).status).to.equal(200);
      }
      let received = 0;
      socket.on('data', (c: Buffer) => (received += c.length));
      socket.resume();
      await until(() => ended, 30_000, 'the watch is ended');
      expect(received).to.be.below(24 * value.length);
      const metrics = await apiRequest(srv, 'GET', '/metrics');
      expect(metrics.status).to.equal(200);
    });

    it('a user past its open watches gets 429', async () => {
      const open = [
        https.request(new URL(`${CM}?watch=1`, srv.url), { ca: srv.caPem, headers: { authorization: `Bearer ${srv.adminToken}` } }),
        https.request(new URL(`${CM}?watch=1`, srv.url), { ca: srv.caPem, headers: { authorization: `Bearer ${srv.adminToken}` } }),
      ];
      try {
        await Promise.all(
          open.map(
            (r) =>
              new Promise((resolve) => {
                r.on('response', resolve);
                r.on('error', () => {});
                r.end();
              }),
          ),
        );
        const third = await apiRequest(srv, 'GET', `${CM}?watch=1&timeoutSeconds=1`);
        expect(third.status).to.equal(429);
        expect(third.body.message).to.contain('watches open');
      } finally {
        for (const r of open) r.destroy();
      }
    });
  });

  describe('connections, per client address and in all', () => {
    let srv: TestApiServer;
    before(async () => {
      // Its warnings about refused connections are what the test causes: kept out of the test's output.
      srv = await startTestApiServer({ limits: { maxConnectionsPerClient: 20, maxConnections: 30 }, log: createLogger({ silent: true }) });
    });
    after(async () => srv?.cleanup());

    const settle = () => new Promise((r) => setTimeout(r, 300));
    const isOpen = (s: net.Socket) => !s.destroyed && !s.readableEnded;

    /** `n` TCP connections from `from` that never start TLS, once the server has had time to close the ones it refuses. */
    async function idleConnections(from: string, n: number): Promise<net.Socket[]> {
      const socks = Array.from({ length: n }, () => net.connect({ host: '127.0.0.1', port: srv.port, localAddress: from }).on('error', () => {}));
      await Promise.all(socks.map((s) => new Promise((r) => s.once('connect', r).once('close', r))));
      await settle();
      return socks;
    }

    /** GET /healthz on a connection of its own from `from`: its status, or the error's code. */
    async function healthzFrom(from: string): Promise<number | string> {
      const answer = await new Promise<number | string>((resolve) => {
        const r = https.get(new URL('/healthz', srv.url), { ca: srv.caPem, localAddress: from, agent: false }, (res) => {
          replyText(res, 0).then(
            () => resolve(res.statusCode ?? 0),
            (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message),
          );
        });
        r.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      await settle(); // the server has seen this connection close before the next count
      return answer;
    }

    it("closes connections past an address's cap and past the total before TLS, serves other addresses, and counts what it refused", async () => {
      const flood = await idleConnections('127.0.0.1', 25);
      const more: net.Socket[] = [];
      try {
        expect(flood.filter(isOpen)).to.have.length(20);
        expect(await healthzFrom('127.0.0.1')).to.equal('ECONNRESET');
        expect(await healthzFrom('127.0.0.2')).to.equal(200);
        // 20 held, 10 more fill the total of 30: the rest are closed whatever their address.
        more.push(...(await idleConnections('127.0.0.3', 15)));
        expect(more.filter(isOpen)).to.have.length(10);
        expect(await healthzFrom('127.0.0.2')).to.equal('ECONNRESET');
      } finally {
        for (const s of [...flood, ...more]) s.destroy();
      }
      await settle();
      // Its connections gone, the flooding address is served again.
      expect(await healthzFrom('127.0.0.1')).to.equal(200);
      const metrics = (await apiRequest(srv, 'GET', '/metrics')).text;
      const refused = (reason: string) => Number(new RegExp(`^apiserver_refused_connections_total\\{reason="${reason}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
      expect(refused('per-client'), metrics).to.equal(6);
      expect(refused('total'), metrics).to.equal(6);
    });
  });

  describe('watch buffers, server total', () => {
    let srv: TestApiServer;
    const MiB = 1024 * 1024;
    before(async () => {
      srv = await startTestApiServer({ limits: { maxWatchesPerUser: 20, watchBufferBytes: 8 * MiB, watchBuffersTotalBytes: 3 * MiB } });
    });
    after(async () => srv?.cleanup());

    const metric = async (name: string) => {
      const text = (await apiRequest(srv, 'GET', '/metrics')).text;
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      if (!m) throw new Error(`no ${name} in /metrics`);
      return Number(m[1]);
    };

    it('counts a live event once however many watches hold it, and still ends watches past the total', async () => {
      // Six HTTP/2 watches whose streams are paused: past the 64 KiB flow-control window the server holds what they are sent.
      const received = Array.from({ length: 6 }, () => ({ bytes: 0, lines: '', ended: false }));
      const { session, streams } = await pausedWatches(srv, received.length, (s, i) => {
        const r = received[i]!;
        s.on('data', (c: Buffer) => {
          r.bytes += c.length;
          r.lines += c.toString();
        });
        s.on('close', () => (r.ended = true));
      });
      try {
        const value = 'z'.repeat(300 * 1024);
        for (let i = 0; i < 4; i++) expect((await apiRequest(srv, 'POST', CM, { body: configMap(`shared-${i}`, { value }) })).status).to.equal(201);
        // 4 × 300 KiB wait for each of 6 watches: 7 MiB counted per watch. Counted as held: the 4 events
        // once (1.2 MiB), and what each stream was given of the first and could not send: one 64 KiB
        // slice (a connection never gets more of a line at once, the rest stays shared).
        await until(async () => (await metric('apiserver_watch_buffered_bytes')) > 1.2 * MiB, 10_000, 'the server to hold the events');
        const held = await metric('apiserver_watch_buffered_bytes');
        expect(held).to.be.within(1.2 * MiB + 6 * 1024, 1.2 * MiB + 6 * 80 * 1024);
        expect(await metric('apiserver_terminated_watchers_total')).to.equal(0);
        expect(received.every((r) => !r.ended)).to.equal(true);
        for (const s of streams) s.resume();
        await until(() => received.every((r) => (r.lines.match(/"type":"ADDED"/g) ?? []).length === 4), 20_000, 'every watch to receive the 4 events');
        await until(async () => (await metric('apiserver_watch_buffered_bytes')) === 0, 10_000, 'the buffers to empty');

        // Ten more such events held by paused watches pass the 3 MiB total: once their streams have
        // taken nothing for a second, the watches holding them are ended, longest stalled first.
        for (const s of streams) s.pause();
        for (let i = 4; i < 14; i++) expect((await apiRequest(srv, 'POST', CM, { body: configMap(`shared-${i}`, { value }) })).status).to.equal(201);
        await until(async () => (await metric('apiserver_terminated_watchers_total')) > 0, 10_000, 'watches past the total to be ended');
        await until(async () => (await metric('apiserver_watch_buffered_bytes')) <= 3 * MiB, 10_000, 'the total to be kept');
        expect((await apiRequest(srv, 'GET', '/healthz', { token: null })).status).to.equal(200);
      } finally {
        session.destroy();
      }
    });
  });
});

describe('API server watch buffers: stalled clients make room for a reading one', () => {
  const MiB = 1024 * 1024;
  let srv: TestApiServer;
  before(async () => {
    srv = await startTestApiServer({ limits: { maxWatchesPerUser: 30, watchBufferBytes: 8 * MiB, watchBuffersTotalBytes: MiB } });
  });
  after(async () => srv?.cleanup());

  it('a watch whose slice does not fit in the total waits, and watches stalled for a second are ended to make room', async () => {
    // Twelve HTTP/2 watches whose streams are paused, opened first (so they are sent to first): each
    // holds a 64 KiB slice it cannot send. With the 300 KiB event itself that leaves no room for the
    // last of them, nor for the reading watch behind it.
    const { session } = await pausedWatches(srv, 12);
    try {
      const reader = await apiWatch(srv, `${CM}?watch=1`);
      const value = 'r'.repeat(300 * 1024);
      const t0 = Date.now();
      for (let i = 0; i < 3; i++) expect((await apiRequest(srv, 'POST', CM, { body: configMap(`room-${i}`, { value }) })).status).to.equal(201);
      await until(() => reader.events.length === 3, 15_000, 'the reading watch to receive the 3 events');
      // It waited for the stalled connections to become slow (1 s), not for the 60 s stall limit.
      expect(Date.now() - t0).to.be.within(900, 10_000);
      expect(reader.events.map((e) => [e.type, e.object.metadata.name, e.object.data.value.length])).to.deep.equal(
        [0, 1, 2].map((i) => ['ADDED', `room-${i}`, value.length]),
      );
      const text = (await apiRequest(srv, 'GET', '/metrics')).text;
      const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      expect(metric('apiserver_terminated_watchers_total')).to.be.within(1, 12);
      expect(metric('apiserver_watch_buffered_bytes')).to.be.at.most(MiB);
      reader.stop();
    } finally {
      session.destroy();
    }
  });
});

describe('API server watch fan-out to stalled clients (a server process of its own)', function () {
  this.timeout(60_000);
  const MiB = 2 ** 20;
  const BLOB = Math.floor(1.4 * MiB);
  const STALLED = 150;
  const PATCHES = 20;
  /**
   * What the server's RSS may grow by once the watches are open. The patches' own work (1.4 MiB
   * objects parsed, merged, stored) is ~120 MiB of it with or without watches; connections that each
   * kept a copy of one 1.4 MiB event would add 210 MiB more.
   */
  const RSS_GROWTH_BOUND_MIB = 200;
  let srv: ServerProcess;
  before(async () => {
    srv = await spawnApiServer();
    await installWidgets(srv, await widgetCrd());
  });
  after(async () => srv?.stop());

  it('ends HTTP/1.1 watches whose clients never read, while a reading watch gets every 1.4 MiB event and /healthz answers', async () => {
    const created = await apiRequest(srv, 'POST', WIDGETS, { raw: widget('big', { blob: '0' }) });
    expect(created.status).to.equal(201);
    const reader = await apiWatch(srv, `${WIDGETS}?watch=1&resourceVersion=${created.body.metadata.resourceVersion}`);
    expect(reader.status).to.equal(200);
    const stalled = [];
    for (let i = 0; i < STALLED; i++) stalled.push(await stalledRequest(srv, `${WIDGETS}?watch=1`));
    const rss = new RssSampler(srv.pid);
    const health = new HealthProbe(srv, 100, 30_000);
    let h: Awaited<ReturnType<HealthProbe['stop']>>;
    let mem: ReturnType<RssSampler['stop']>;
    try {
      for (let i = 1; i <= PATCHES; i++) {
        const r = await apiRequest(srv, 'PATCH', `${WIDGETS}/big`, {
          raw: JSON.stringify({ spec: { extra: { blob: String(i % 10).repeat(BLOB) } } }),
          contentType: 'application/merge-patch+json',
        });
        expect(r.status, r.text.slice(0, 300)).to.equal(200);
      }
      await until(() => reader.events.length >= PATCHES, 20_000, `the reading watch to receive the ${PATCHES} events`);
    } finally {
      h = await health.stop();
      mem = rss.stop();
    }
    // Every event, in order, whole.
    expect(reader.events.map((e) => e.type)).to.deep.equal(Array(PATCHES).fill('MODIFIED'));
    reader.events.forEach((e, i) => {
      const blob: string = e.object.spec.extra.blob;
      expect(blob.length, `event ${i + 1}`).to.equal(BLOB);
      expect(blob[0], `event ${i + 1}`).to.equal(String((i + 1) % 10));
    });
    expect(Number(reader.events.at(-1)!.object.metadata.resourceVersion)).to.be.above(Number(reader.events[0].object.metadata.resourceVersion));
    // Stalled clients were dropped by the server (each held more than one watch's 16 MiB), not buffered without bound.
    expect(await closedByServer(stalled, 20_000)).to.equal(STALLED);
    for (const s of stalled) s.destroy();
    const metrics = (await apiRequest(srv, 'GET', '/metrics')).text;
    expect(Number(/^apiserver_terminated_watchers_total (\S+)$/m.exec(metrics)?.[1])).to.equal(STALLED);
    expect(mem.peakMiB - mem.startMiB, `server RSS ${JSON.stringify(mem)}`).to.be.below(RSS_GROWTH_BOUND_MIB);
    expect(h.failures, JSON.stringify(h)).to.equal(0);
    expect(h.maxMs, `/healthz ${JSON.stringify(h)}`).to.be.below(2000);
    // The reading watch is still open and still served.
    const more = await apiRequest(srv, 'PATCH', `${WIDGETS}/big`, {
      raw: JSON.stringify({ spec: { extra: { blob: 'small' } } }),
      contentType: 'application/merge-patch+json',
    });
    expect(more.status).to.equal(200);
    await until(() => reader.events.length === PATCHES + 1, 10_000, 'the reading watch to receive one more event');
    reader.stop();
  });
});
