/**
 * The operator's metrics port (`--metrics-port`) on a real loopback listener: it answers /metrics,
 * /healthz and /stats, holds at most its cap of connections, and closes one that sends nothing.
 */
import { expect } from 'chai';
import type http from 'node:http';
import net from 'node:net';
import { Counter, Registry } from 'prom-client';
import { freeLoopbackPort } from '../../src/controller/netutil.js';
import { serveMetrics } from '../../src/controller/side-servers.js';
import type { Logger } from '../../src/log.js';

describe('metrics port', () => {
  let srv: http.Server;
  let base = '';
  const warnings: string[] = [];
  const log = { info: () => {}, warn: (m: string) => void warnings.push(m) } as unknown as Logger;

  before(async () => {
    const registry = new Registry();
    new Counter({ name: 'nbswarm_test_total', help: 'a counter the test reads back', registers: [registry] }).inc(3);
    const port = await freeLoopbackPort();
    srv = await serveMetrics(registry, () => undefined, port, log, { maxConnections: 20, idleTimeoutMs: 400 });
    base = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await new Promise((r) => srv.close(r));
  });

  it('answers /metrics from its registry, /healthz, and /stats with 503 until the operator runs', async () => {
    const m = await fetch(`${base}/metrics`);
    expect(m.status).to.equal(200);
    expect(await m.text()).to.contain('nbswarm_test_total 3');
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    expect((await fetch(`${base}/stats`)).status).to.equal(503);
  });

  it('holds at most its cap of connections, closing more at once, and serves again once they go', async () => {
    // fetch's keep-alive connections from the test before count too.
    const held = await new Promise<number>((r) => srv.getConnections((_e, n) => r(n)));
    const socks = Array.from({ length: 23 }, () => net.connect({ host: '127.0.0.1', port: Number(new URL(base).port) }).on('error', () => {}));
    try {
      await Promise.all(socks.map((s) => new Promise((r) => s.once('connect', r).once('close', r))));
      await new Promise((r) => setTimeout(r, 150));
      expect(socks.filter((s) => !s.destroyed && !s.readableEnded)).to.have.length(20 - held);
      expect(warnings[0]).to.equal('the metrics port refuses connections: it holds its most');
    } finally {
      for (const s of socks) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
  });

  it('closes a connection that sends nothing once it has been idle', async () => {
    const silent = net.connect({ host: '127.0.0.1', port: Number(new URL(base).port) }).on('error', () => {});
    const t0 = Date.now();
    await new Promise((r) => silent.once('close', r));
    expect(Date.now() - t0).to.be.within(300, 3000);
  });
});
