/**
 * Who may open the status page: anyone on loopback; elsewhere a bearer token from the token file or
 * one the API server accepts (checked once, then cached), or the session cookie the login set. A
 * client whose tokens are refused too often gets no more checks for a while; the checks reach the
 * API server over one keep-alive pool (a real HTTPS server counts its TLS connections here).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTls } from '../../src/apiserver/tls.js';
import { apiServerTokenCheck, cookie, isLoopback, REFUSED_CHECKS_PER_MINUTE, SESSION_COOKIE, StatusAuth } from '../../src/statuspage/auth.js';

const req = (headers: Record<string, string>, remoteAddress = '10.1.2.3') => ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

/** A login-required StatusAuth: 'file-token' from the file, 'kube-token' the one the API server accepts (it records what it is asked). */
function fileAndKubeTokens() {
  const clock = { now: 0 };
  const asked: string[] = [];
  const auth = new StatusAuth(
    true,
    async (t) => (asked.push(t), t === 'kube-token'),
    ['file-token'],
    () => clock.now,
  );
  return { auth, asked, clock };
}

describe('status page access', () => {
  it('knows loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(a), a).to.equal(true);
    for (const a of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2']) expect(isLoopback(a), a).to.equal(false);
  });

  it('lets everyone in when no login is required', async () => {
    expect(await new StatusAuth(false, undefined).allows(req({}))).to.equal(true);
  });

  it('accepts a token from the file or one the API server accepts, and asks the API server once per token', async () => {
    const { auth, asked, clock } = fileAndKubeTokens();
    expect(await auth.allows(req({}))).to.equal(false);
    expect(await auth.allows(req({ authorization: 'Bearer file-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer wrong' }))).to.equal(false);
    expect(await auth.allows(req({ authorization: 'Basic a2V5' }))).to.equal(false);
    expect(asked).to.deep.equal(['kube-token', 'wrong']);
    // A refusal is remembered only briefly (a token may have just been added), an acceptance for a minute.
    clock.now += 6000;
    await auth.allows(req({ authorization: 'Bearer wrong' }));
    await auth.allows(req({ authorization: 'Bearer kube-token' }));
    expect(asked).to.deep.equal(['kube-token', 'wrong', 'wrong']);
  });

  it('opens the page for a live session cookie only', async () => {
    let now = 0;
    const auth = new StatusAuth(
      true,
      async () => false,
      [],
      () => now,
    );
    const id = auth.newSession();
    expect(await auth.allows(req({ cookie: `other=1; ${SESSION_COOKIE}=${id}` }))).to.equal(true);
    expect(await auth.allows(req({ cookie: `${SESSION_COOKIE}=forged` }))).to.equal(false);
    now += 13 * 3600_000;
    expect(await auth.allows(req({ cookie: `${SESSION_COOKIE}=${id}` }))).to.equal(false);
    expect(cookie('a=1; b = 2 ;c=3', 'b')).to.equal('2');
  });

  it('stops checking the tokens of an address the API server refused 20 times this minute; others, file tokens and known tokens still get in', async () => {
    const { auth, asked, clock } = fileAndKubeTokens();
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }, '10.0.0.9'))).to.equal(true);
    for (let i = 0; i < REFUSED_CHECKS_PER_MINUTE; i++) expect(await auth.allows(req({ authorization: `Bearer made-up-${i}` }, '10.0.0.9'))).to.equal(false);
    expect(asked).to.have.length(1 + REFUSED_CHECKS_PER_MINUTE);
    expect(auth.retryAfterSeconds('10.0.0.9')).to.equal(60);
    // Unchecked from now on: no call to the API server, however many tokens it makes up.
    expect(await auth.allows(req({ authorization: 'Bearer made-up-more' }, '10.0.0.9'))).to.equal(false);
    expect(await auth.accepts('made-up-at-login', '10.0.0.9')).to.equal(false);
    expect(asked).to.have.length(1 + REFUSED_CHECKS_PER_MINUTE);
    // What needs no check still works for it; another address is checked as before.
    expect(await auth.allows(req({ authorization: 'Bearer file-token' }, '10.0.0.9'))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }, '10.0.0.9'))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer other-made-up' }, '10.0.0.10'))).to.equal(false);
    expect(asked.at(-1)).to.equal('other-made-up');
    // An IPv4 client of a dual-stack listener is the same address.
    expect(auth.retryAfterSeconds('10.0.0.9')).to.equal(60);
    expect(await auth.allows(req({ authorization: 'Bearer mapped' }, '::ffff:10.0.0.9'))).to.equal(false);
    expect(asked.at(-1)).to.equal('other-made-up');
    // The minute over, its tokens are checked again.
    clock.now += 30_000;
    expect(auth.retryAfterSeconds('10.0.0.9')).to.equal(30);
    clock.now += 30_000;
    expect(auth.retryAfterSeconds('10.0.0.9')).to.equal(undefined);
    expect(await auth.allows(req({ authorization: 'Bearer made-up-later' }, '10.0.0.9'))).to.equal(false);
    expect(asked.at(-1)).to.equal('made-up-later');
  });

  it('counts checks still running: 50 made-up tokens sent at once from one address cause 20 checks', async () => {
    const asked: string[] = [];
    const auth = new StatusAuth(true, (t) => new Promise((ok) => setTimeout(() => ok((asked.push(t), false)), 20)));
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => auth.allows(req({ authorization: `Bearer made-up-${i}` }, '10.0.0.7'))));
    expect(answers.every((a) => a === false)).to.equal(true);
    expect(asked).to.have.length(REFUSED_CHECKS_PER_MINUTE);
  });

  describe('checking a token with the API server', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbswarm-status-auth-'));
    let server: https.Server;
    let connections = 0;
    const seen: string[] = [];
    let kc: KubeConfig;

    before(async () => {
      const tls = ensureTls(dir, ['127.0.0.1']);
      server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (rq, rs) => {
        seen.push(`${rq.url} ${rq.headers.authorization}`);
        rs.writeHead(rq.headers.authorization === 'Bearer good' ? 200 : 401, { 'content-type': 'application/json' });
        rs.end('{}');
      });
      server.on('secureConnection', () => connections++);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caData: Buffer.from(tls.caPem).toString('base64') }],
        // The operator's own credentials: never sent with a visitor's check.
        users: [{ name: 'operator', token: 'operator-token' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'operator' }],
        currentContext: 'x',
      });
    });

    after(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    });

    it("asks with the visitor's token only, over a few kept-alive TLS connections however many tokens come", async () => {
      const check = apiServerTokenCheck(() => kc, 'team-a');
      const made = Array.from({ length: 200 }, (_, i) => `made-up-${i}`);
      const answers = await Promise.all([...made.map((t) => check(t)), check('good')]);
      expect(answers.filter(Boolean)).to.have.length(1);
      expect(answers.at(-1)).to.equal(true);
      expect(seen).to.have.length(201);
      expect(seen.every((l) => l.startsWith('/apis/nbswarm.io/v1alpha1/namespaces/team-a/notebookservers?limit=1 Bearer '))).to.equal(true);
      expect(seen.some((l) => l.includes('operator-token'))).to.equal(false);
      // One pool: its sockets are reused; a fresh client per check made 201 TLS connections.
      expect(connections).to.be.at.most(64);
      const before = connections;
      for (const t of made.slice(0, 50)) expect(await check(t)).to.equal(false);
      expect(connections).to.equal(before);
    });

    it("goes through the proxy a kubeconfig names (client-node's own agent, a connection per check)", async () => {
      const tunnels: string[] = [];
      const piped: net.Socket[] = [];
      const proxy = http.createServer();
      proxy.on('connect', (rq: http.IncomingMessage, client: net.Socket) => {
        tunnels.push(rq.url ?? '');
        piped.push(client);
        const [host, port] = (rq.url ?? '').split(':');
        const upstream = net.connect(Number(port), host, () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          upstream.pipe(client).pipe(upstream);
        });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      try {
        const viaProxy = new KubeConfig();
        const c = kc.getCurrentCluster()!;
        viaProxy.loadFromOptions({
          clusters: [{ ...c, proxyUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` }],
          users: [{ name: 'u' }],
          contexts: [{ name: 'x', cluster: c.name, user: 'u' }],
          currentContext: 'x',
        });
        const check = apiServerTokenCheck(() => viaProxy);
        expect(await check('good')).to.equal(true);
        expect(await check('made-up')).to.equal(false);
        expect(tunnels).to.deep.equal([new URL(c.server).host, new URL(c.server).host]);
      } finally {
        // A tunnel is no HTTP connection of the proxy's: closeAllConnections leaves it open.
        for (const c of piped) c.destroy();
        await new Promise((r) => proxy.close(r));
      }
    });

    it('refuses, unasked, a token that cannot be a bearer token (a login form may send any text)', async () => {
      const check = apiServerTokenCheck(() => kc);
      const asked = seen.length;
      for (const t of ['two\nlines', 'spa ce', 'naïve', '']) expect(await check(t), JSON.stringify(t)).to.equal(false);
      expect(seen.length).to.equal(asked);
    });

    it('counts a server that does not answer as a refusal', async () => {
      const silent = new KubeConfig();
      silent.loadFromOptions({
        clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
        users: [{ name: 'u' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      expect(await apiServerTokenCheck(() => silent)('any')).to.equal(false);
    });
  });
});
