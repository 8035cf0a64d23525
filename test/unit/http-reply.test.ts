/**
 * replyText on real replies from a loopback HTTP server: the whole body, its first N characters,
 * none (status only), and a reply cut off mid-body, which rejects rather than hang or pass for a
 * short body.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { replyText } from '../../src/util/http-reply.js';

describe('replyText', () => {
  let server: http.Server;
  let base = '';
  const BODY = 'é'.repeat(50_000) + 'end';

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/cut') {
        // Promises 100 bytes, sends one, and hangs up.
        res.writeHead(200, { 'content-length': '100' });
        res.write('x');
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(BODY);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((r) => server.close(r));
  });

  const get = (path: string, maxChars?: number) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      http
        .get(`${base}${path}`, { agent: false }, (res) => replyText(res, maxChars).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject))
        .on('error', reject);
    });

  it('reads the whole body as UTF-8 text, characters split across chunks included', async () => {
    const r = await get('/');
    expect(r.status).to.equal(200);
    expect(r.text).to.equal(BODY);
  });

  it('keeps the first maxChars characters of a longer body, reading it to its end', async () => {
    expect((await get('/', 4096)).text).to.equal(BODY.slice(0, 4096));
    expect((await get('/', 0)).text).to.equal('');
  });

  it('rejects a reply cut off mid-body, whatever it keeps', async () => {
    for (const cap of [Infinity, 10, 0]) {
      const err = await get('/cut', cap).then(
        () => null,
        (e: Error) => e,
      );
      expect(err, `cap ${cap}`).to.be.an('error');
      expect(err!.message).to.equal('aborted');
    }
  });
});
