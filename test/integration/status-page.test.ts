/**
 * The status page of `nbswarm up`, in a real headless browser (Debian's chromium driven by
 * playwright-core; no browser download): three servers listed live, a phase change on the page
 * within 1 s of the API showing it, a stopped server greyed out and a deleted one gone, container
 * memory from Docker stats, and not one console error. A screenshot of each step is kept under
 * test-output/status-page/. And the page's access rule: open on loopback, a token elsewhere.
 */
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { GROUP, PLURAL, VERSION } from '../../src/api/names.js';
import { createLogger } from '../../src/log.js';
import { repoPath } from '../../src/paths.js';
import { apiServerTokenCheck, StatusAuth } from '../../src/statuspage/auth.js';
import { StatusPage } from '../../src/statuspage/server.js';
import { startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';
import { freePort, requireDocker, TEST_IMAGE, TEST_RUN_ID, waitFor } from '../helpers/docker.js';
import { startUp, type UpProcess } from '../helpers/up.js';
import type Docker from 'dockerode';

const CHROMIUM = '/usr/bin/chromium';
/** Without the background-networking flags Chromium's own connections are refused by a closed network. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// Functions passed to page.evaluate/waitForFunction run in the browser (serialised: no closures);
// this file is compiled without DOM types, hence `(globalThis as any).document`.
const SHOTS = repoPath('test-output', 'status-page');

// busybox httpd in the background; the shell exits on SIGTERM, so a stop takes no grace period.
const SERVER_CMD = ['sh', '-c', 'httpd -p {port} -h /www; trap "exit 0" TERM; while :; do sleep 1; done'];

const nbs = (name: string, user: string) =>
  JSON.stringify({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'NotebookServer',
    metadata: { name, namespace: 'default' },
    spec: { user, mode: 'custom', command: SERVER_CMD, image: TEST_IMAGE },
  });

async function launch(): Promise<{ context: BrowserContext; profile: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'nbswarm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1500, height: 800 },
  });
  return { context, profile };
}

describe('status page in a real browser', function () {
  this.timeout(180_000);
  let docker: Docker;
  let up: UpProcess | undefined;
  let browser: { context: BrowserContext; profile: string } | undefined;
  let page: Page;
  const consoleErrors: string[] = [];
  const shot = async (step: string) => page.screenshot({ path: join(SHOTS, `${TEST_RUN_ID}-${step}.png`), fullPage: true });

  before(async () => {
    ({ docker } = await requireDocker());
    mkdirSync(SHOTS, { recursive: true });
    up = await startUp({ backend: 'container', args: ['--status-port', String(await freePort())] });
    expect(up.statusUrl, up.output()).to.match(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    browser = await launch();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
  });

  after(async () => {
    await browser?.context.close().catch(() => undefined);
    if (browser) rmSync(browser.profile, { recursive: true, force: true });
    await up?.stop(docker);
  });

  const row = (name: string) => page.locator(`#servers tbody tr[data-key="default/${name}"]`);

  it('lists three servers live as they start, with their phase, endpoint, Events and the operator health', async () => {
    await page.goto(up!.statusUrl!);
    await page.locator('#conn.live').waitFor({ timeout: 10_000 });
    for (const [name, user] of [
      ['st-a', 'ann'],
      ['st-b', 'ben'],
      ['st-c', 'cat'],
    ]) {
      const r = await up!.kubectl(['apply', '-f', '-'], nbs(name, user));
      expect(r.code, r.stderr).to.equal(0);
    }
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#servers tbody tr[data-phase="Running"]').length === 3, undefined, {
      timeout: 60_000,
    });
    expect(await page.locator('#servers tbody tr').count()).to.equal(3);
    for (const [name, user] of [
      ['st-a', 'ann'],
      ['st-b', 'ben'],
      ['st-c', 'cat'],
    ]) {
      expect(await row(name).locator('td.user').textContent()).to.equal(user);
      expect(await row(name).locator('td.mode').textContent()).to.equal('custom');
      const href = await row(name).locator('td.endpoint a').getAttribute('href');
      expect(href).to.match(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    }
    await page.waitForFunction(
      () => [...(globalThis as any).document.querySelectorAll('#events tbody td')].some((td: any) => td.textContent === 'Ready'),
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.locator('#h-leader').textContent()).to.equal('this replica');
    expect(await page.locator('#h-docker').textContent()).to.equal('reachable (container)');
    expect(await page.locator('#h-servers').textContent()).to.equal('3 (3 Running)');
    // Docker stats arrive every 5 s while the page is open.
    await page.waitForFunction(() => /MiB|KiB/.test((globalThis as any).document.querySelector('#servers tbody tr td.mem')?.textContent ?? ''), undefined, {
      timeout: 15_000,
    });
    await shot('1-three-running');
  });

  it('shows a phase change within 1 s of the API, then greys out the stopped server', async () => {
    // When each phase of st-b became visible in the API (a watch) and on the page (a DOM observer).
    const kc = new KubeConfig();
    kc.loadFromFile(up!.kubeconfig);
    const apiSeen = new Map<string, number>();
    const ac = await new Watch(kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/default/${PLURAL}`,
      { fieldSelector: 'metadata.name=st-b' },
      (_t, o: any) => {
        const phase = o?.status?.phase;
        if (phase && !apiSeen.has(phase)) apiSeen.set(phase, Date.now());
      },
      () => undefined,
    );
    await page.evaluate(() => {
      const w = globalThis as any;
      w.seen = {};
      const record = () => {
        for (const tr of w.document.querySelectorAll('#servers tbody tr')) {
          const k = `${tr.dataset.key}:${tr.dataset.phase}`;
          if (!(k in w.seen)) w.seen[k] = Date.now();
        }
      };
      record();
      new w.MutationObserver(record).observe(w.document.querySelector('#servers tbody'), { subtree: true, childList: true, attributes: true });
    });
    try {
      await waitFor('the watch to see Running', async () => apiSeen.has('Running'), 10_000, 20);
      apiSeen.clear();
      const patched = await up!.kubectl(['patch', 'nbs', 'st-b', '--type', 'merge', '-p', '{"spec":{"stopped":true}}']);
      expect(patched.code, patched.stderr).to.equal(0);
      await waitFor('the API to show st-b Stopped', async () => apiSeen.has('Stopped'), 30_000, 20);
      await page.waitForFunction(() => (globalThis as any).seen['default/st-b:Stopped'] !== undefined, undefined, { timeout: 5000 });
    } finally {
      ac.abort();
    }
    const pageSeen = (await page.evaluate(() => (globalThis as any).seen)) as Record<string, number>;
    // The phases st-b moved to (the spec patch's own watch event still says Running).
    const delays = [...apiSeen]
      .filter(([phase]) => phase !== 'Running')
      .map(([phase, at]) => ({ phase, delayMs: (pageSeen[`default/st-b:${phase}`] ?? Infinity) - at }));
    console.log(`      API → page: ${delays.map((d) => `${d.phase} ${d.delayMs} ms`).join(', ')}`);
    for (const d of delays) expect(d.delayMs, `${d.phase} reached the page ${d.delayMs} ms after the API`).to.be.below(1000);
    await page.waitForFunction(
      () => (globalThis as any).document.querySelector('#servers tbody tr[data-key="default/st-b"]')?.classList.contains('stopped'),
      undefined,
      { timeout: 5000 },
    );
    const opacity = await page.evaluate(() =>
      Number((globalThis as any).getComputedStyle((globalThis as any).document.querySelector('#servers tbody tr[data-key="default/st-b"] td.user')).opacity),
    );
    expect(opacity).to.be.below(1);
    expect(await row('st-b').locator('td.endpoint a').count()).to.equal(0);
    expect(await page.locator('#h-servers').textContent()).to.equal('3 (2 Running, 1 Stopped)');
    // CPU % needs two stats samples (5 s apart).
    await page.waitForFunction(
      () => /%$/.test((globalThis as any).document.querySelector('#servers tbody tr[data-key="default/st-a"] td.cpu')?.textContent ?? ''),
      undefined,
      { timeout: 12_000 },
    );
    await shot('2-one-stopped');
  });

  it('drops a deleted server from the list', async () => {
    const r = await up!.kubectl(['delete', 'nbs', 'st-c', '--wait=true']);
    expect(r.code, r.stderr).to.equal(0);
    await row('st-c').waitFor({ state: 'detached', timeout: 10_000 });
    expect(await page.locator('#servers tbody tr').count()).to.equal(2);
    await shot('3-one-deleted');
  });

  it('logged not one console error (script, CSP or network)', () => {
    expect(consoleErrors).to.deep.equal([]);
  });
});

describe('status page access beyond loopback', function () {
  this.timeout(60_000);
  let api: TestApiServer;
  let page: StatusPage;
  let base = '';
  let tokenDir = '';

  before(async () => {
    api = await startTestApiServer();
    // Users of the API server: a viewer (may list everything) and a hub limited to one namespace.
    tokenDir = mkdtempSync(join(tmpdir(), 'nbswarm-status-tokens-'));
    writeFileSync(join(api.dataDir, 'tokens.csv'), `${api.adminToken},admin,admin\nviewer-token-0123456789,vera,viewer\nhub-token-0123456789,hub,hub,team-a\n`);
    writeFileSync(join(tokenDir, 'tokens'), '# status page tokens\nstatic-token-0123456789\n');
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const { installCrd } = await import('../../src/controller/crd.js');
    await installCrd(kc);
    // Bound to every address: a login is required (the test only connects to 127.0.0.1).
    const auth = new StatusAuth(
      true,
      apiServerTokenCheck(() => kc),
      ['static-token-0123456789'],
    );
    page = new StatusPage({ address: '0.0.0.0', port: 0, auth, log: createLogger({ silent: true }) });
    // The URL of a wildcard listener names 127.0.0.1.
    base = (await page.listen()).replace(/\/$/, '');
    // The token file is re-read by the API server within 2 s.
    await waitFor(
      'the viewer token to work',
      async () => (await fetch(`${base}/api/health`, { headers: { authorization: 'Bearer viewer-token-0123456789' } })).status === 200,
      10_000,
      200,
    );
  });

  after(async () => {
    await page?.close();
    await api?.cleanup();
    if (tokenDir) rmSync(tokenDir, { recursive: true, force: true });
  });

  it('refuses a request without a token and sends a browser to the login form', async () => {
    expect((await fetch(`${base}/api/state`)).status).to.equal(401);
    expect((await fetch(`${base}/events`)).status).to.equal(401);
    const r = await fetch(`${base}/`, { redirect: 'manual' });
    expect(r.status).to.equal(303);
    expect(r.headers.get('location')).to.equal('/login');
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
  });

  it('accepts kubeconfig credentials the API server accepts for listing NotebookServers, and tokens from the token file', async () => {
    const get = (token: string) => fetch(`${base}/api/state`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get(api.adminToken)).status).to.equal(200);
    expect((await get('viewer-token-0123456789')).status).to.equal(200);
    expect((await get('static-token-0123456789')).status).to.equal(200);
    // The hub user may list only in team-a: not the whole fleet.
    expect((await get('hub-token-0123456789')).status).to.equal(401);
    expect((await get('made-up-token')).status).to.equal(401);
  });

  it('logs a browser in with a token: an HttpOnly session cookie opens the page', async () => {
    const bad = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' });
    expect(bad.status).to.equal(401);
    expect(await bad.text()).to.contain('That token was not accepted');
    const ok = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'viewer-token-0123456789' }), redirect: 'manual' });
    expect(ok.status).to.equal(303);
    const cookie = ok.headers.get('set-cookie') ?? '';
    expect(cookie).to.match(/^nbswarm_status=[\w-]+; HttpOnly; SameSite=Strict; Path=\//);
    const r = await fetch(`${base}/`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-security-policy')).to.contain("script-src 'self'");
  });

  it('holds at most 100 connections from one client address, closing more at once, and still serves other addresses', async () => {
    const { port } = new URL(base);
    const socks = Array.from({ length: 103 }, () => connect({ host: '127.0.0.1', port: Number(port), localAddress: '127.0.0.5' }).on('error', () => {}));
    try {
      await Promise.all(socks.map((s) => new Promise((r) => s.once('connect', r).once('close', r))));
      await new Promise((r) => setTimeout(r, 300));
      expect(socks.filter((s) => !s.destroyed && !s.readableEnded)).to.have.length(100);
      expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  // Last in this suite: it uses up 127.0.0.1's allowance of refused tokens for a minute.
  it('answers 429 with Retry-After once the API server refused 20 tokens from an address this minute, at the login form too', async () => {
    const get = (token: string) => fetch(`${base}/api/state`, { headers: { authorization: `Bearer ${token}` } });
    let refused = 0;
    let r = await get('made-up-0');
    for (let i = 1; r.status === 401 && i <= 20; i++) {
      refused++;
      r = await get(`made-up-${i}`);
    }
    // The tests before made a few refused checks of their own from this address.
    expect(refused).to.be.within(15, 20);
    expect(r.status).to.equal(429);
    expect(Number(r.headers.get('retry-after'))).to.be.within(1, 60);
    expect(await r.text()).to.match(/^too many refused tokens from 127\.0\.0\.1: no token is checked for it for \d+ s/);
    const login = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'made-up-login' }), redirect: 'manual' });
    expect(login.status).to.equal(429);
    // A token from the file needs no check, and the viewer's was accepted (and remembered) before.
    expect((await get('static-token-0123456789')).status).to.equal(200);
    expect((await get('viewer-token-0123456789')).status).to.equal(200);
  });
});

describe('status page connections that send nothing', () => {
  it('closes a connection quiet past the idle timeout, and serves the next one', async () => {
    const page = new StatusPage({
      address: '127.0.0.1',
      port: 0,
      auth: new StatusAuth(false, undefined),
      log: createLogger({ silent: true }),
      idleTimeoutMs: 400,
    });
    const base = (await page.listen()).replace(/\/$/, '');
    try {
      const silent = connect({ host: '127.0.0.1', port: Number(new URL(base).port) }).on('error', () => {});
      const t0 = Date.now();
      await new Promise((r) => silent.once('close', r));
      // Closed by the idle timeout, not at once (and not by a request timeout: no request ever started).
      expect(Date.now() - t0).to.be.within(300, 3000);
      expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    } finally {
      await page.close();
    }
  });
});
