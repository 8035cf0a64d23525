/**
 * The API server bench's clients against a real HTTPS server (HTTP/2 and HTTP/1.1 on loopback): a
 * whole reply settles with its status and body; a reply cut short — its stream reset, its
 * connection gone before content-length bytes came — rejects, never passes for a short body.
 */
import { expect } from 'chai';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { connect, connect1, type Request } from '../../bench/apiserver/clients.js';
import { ensureTls } from '../../src/apiserver/tls.js';

describe('bench/apiserver clients', () => {
  let dir: string;
  let server: http2.Http2SecureServer;
  let url: string;
  let ca: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-clients-'));
    const tls = ensureTls(dir, ['127.0.0.1']);
    ca = tls.caPem;
    // The path names what the reply does: whole, or 10 of 100 promised bytes and then a reset
    // stream (cancel) or a dropped connection (drop), as when a server dies mid-reply.
    server = http2.createSecureServer({ key: tls.keyPem, cert: tls.certPem, allowHTTP1: true }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const how = req.url?.slice(1);
        if (how === 'whole') {
          res.writeHead(201, { 'content-type': 'application/json', 'content-length': '11' });
          return void res.end('{"a":"bcd"}');
        }
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"a":"0123');
        setTimeout(() => (how === 'drop' ? req.socket.destroy() : res.stream.close(http2.constants.NGHTTP2_CANCEL)), 50);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const over = {
    'HTTP/2': (use: (req: Request) => Promise<void>) => {
      const c = connect(url, ca, 'token');
      return use(c.req).finally(() => c.session.destroy());
    },
    'HTTP/1.1': (use: (req: Request) => Promise<void>) => {
      const c = connect1(url, ca, 'token', 1);
      return use(c.req).finally(() => c.agent.destroy());
    },
  };

  for (const [protocol, use] of Object.entries(over)) {
    it(`${protocol}: a whole reply settles with its status and body, parsed or as text`, () =>
      use(async (req) => {
        expect(await req('POST', '/whole', '{}')).to.deep.equal({ status: 201, body: { a: 'bcd' } });
        expect(await req('POST', '/whole', '{}', 'application/json', false)).to.deep.equal({ status: 201, body: '{"a":"bcd"}' });
      }));

    it(`${protocol}: a reply whose connection drops after 10 of 100 bytes rejects, parsed or not`, () =>
      use(async (req) => {
        for (const parse of [false, true]) {
          const outcome = await req('POST', '/drop', '{}', 'application/json', parse).then(
            (r) => `settled with ${JSON.stringify(r)}`,
            (e: Error) => e.message,
          );
          expect(outcome).to.match(/after 10 of its 100 bytes|aborted/);
        }
      }));
  }

  it('HTTP/2: a reply whose stream is reset mid-body rejects with the error code', () =>
    over['HTTP/2'](async (req) => {
      const outcome = await req('POST', '/cancel', '{}', 'application/json', false).then(
        (r) => `settled with ${JSON.stringify(r)}`,
        (e: Error) => e.message,
      );
      expect(outcome).to.equal(`the reply's stream was reset (HTTP/2 error code ${http2.constants.NGHTTP2_CANCEL}) after 10 bytes`);
    }));
});
