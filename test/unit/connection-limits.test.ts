/**
 * Connection caps on a real listening server (loopback, clients bound to 127.0.0.1, .2 and .3):
 * a client address past its cap and every client past the total are closed unanswered, others are
 * served, and a flood is logged once per reason per minute. The open-file limit sets the total's
 * ceiling.
 */
import { expect } from 'chai';
import net from 'node:net';
import type { Logger } from '../../src/log.js';
import {
  clientAddress,
  limitConnections,
  openFileLimit,
  REFUSAL_LOG_INTERVAL_MS,
  totalWithinDescriptors,
  type RefusedBecause,
} from '../../src/connection-limits.js';

const LIMITS_TEXT = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95730                95730                processes
Max open files            20000                524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('connection limits', () => {
  it('reads the soft open-file limit from /proc/self/limits text, and nothing from a limit it cannot use', () => {
    expect(openFileLimit(LIMITS_TEXT)).to.equal(20000);
    expect(openFileLimit(LIMITS_TEXT.replace('20000  ', 'unlimited'))).to.equal(undefined);
    expect(openFileLimit('Limit Soft Hard Units\n')).to.equal(undefined);
    // This machine's own (Linux): the number `ulimit -n` shows the process.
    expect(openFileLimit()).to.be.a('number').above(0);
  });

  it('keeps 1,024 of the open-file limit out of the total, never going below one connection', () => {
    expect(totalWithinDescriptors(10_000, 20_000)).to.deep.equal({ total: 10_000, lowered: false });
    expect(totalWithinDescriptors(10_000, 11_024)).to.deep.equal({ total: 10_000, lowered: false });
    expect(totalWithinDescriptors(10_000, 2048)).to.deep.equal({ total: 1024, lowered: true });
    expect(totalWithinDescriptors(10_000, 500)).to.deep.equal({ total: 1, lowered: true });
    expect(totalWithinDescriptors(10_000, undefined)).to.deep.equal({ total: 10_000, lowered: false });
  });

  it('spells a client one way: an IPv4 client of a dual-stack listener is its IPv4 address', () => {
    expect(clientAddress('::ffff:127.0.0.2')).to.equal('127.0.0.2');
    expect(clientAddress('127.0.0.2')).to.equal('127.0.0.2');
    expect(clientAddress('::1')).to.equal('::1');
    // An IPv6 address that only starts like a mapped one stays whole.
    expect(clientAddress('::ffff:7f00:2')).to.equal('::ffff:7f00:2');
    expect(clientAddress(undefined)).to.equal('');
  });

  it('on a dual-stack listener, counts and names an IPv4 client by its IPv4 address, for either cap', async () => {
    const fields: Record<string, unknown>[] = [];
    const log = { warn: (_m: string, f: Record<string, unknown>) => void fields.push(f) } as unknown as Logger;
    const server = net.createServer((s) => s.on('error', () => {}));
    limitConnections(server, { total: 2, perClient: 1 }, { log, what: 'the test server', now: () => 0 });
    await new Promise<void>((r) => server.listen(0, '::', r));
    const port = (server.address() as net.AddressInfo).port;
    const socks: net.Socket[] = [];
    const open = (from: string) =>
      new Promise<void>((r) => {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: from }).on('error', () => {});
        socks.push(s);
        s.once('connect', () => setTimeout(r, 100)).once('close', () => r());
      });
    try {
      await open('127.0.0.2');
      await open('127.0.0.2'); // past its address's cap of 1
      await open('127.0.0.3');
      await open('127.0.0.4'); // past the total of 2 (node:net's own 'drop')
      expect(fields.map((f) => [f.reason, f.client])).to.deep.equal([
        ['per-client', '127.0.0.2'],
        ['total', '127.0.0.4'],
      ]);
    } finally {
      for (const s of socks) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  describe('on a listening server', () => {
    let server: net.Server;
    let port: number;
    let clock: number;
    const lines: { message: string; fields: Record<string, unknown> }[] = [];
    const refusals: RefusedBecause[] = [];
    const sockets: net.Socket[] = [];
    const log = { warn: (message: string, fields: Record<string, unknown>) => void lines.push({ message, fields }) } as unknown as Logger;

    before(async () => {
      server = net.createServer((s) => s.on('error', () => {}));
      limitConnections(server, { total: 5, perClient: 3 }, { log, what: 'the test server', refused: (why) => refusals.push(why), now: () => clock });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as net.AddressInfo).port;
    });

    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    /** `n` connections from `from`; resolves with how many the server closed within 300 ms. */
    async function connectFrom(from: string, n: number): Promise<{ open: net.Socket[]; closed: number }> {
      const mine = Array.from({ length: n }, () => {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
        s.on('error', () => {});
        sockets.push(s);
        return s;
      });
      await Promise.all(mine.map((s) => new Promise((r) => (s.readyState === 'open' ? r(null) : s.once('connect', r).once('close', r)))));
      await new Promise((r) => setTimeout(r, 300));
      const open = mine.filter((s) => !s.destroyed && !s.readableEnded);
      return { open, closed: n - open.length };
    }

    async function serverHolds(n: number): Promise<void> {
      for (let i = 0; i < 50; i++) {
        const held = await new Promise<number>((r) => server.getConnections((_e, c) => r(c)));
        if (held === n) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`the server never came to hold ${n} connections`);
    }

    it('closes a client address past its cap, serves another address, and closes everyone past the total', async () => {
      clock = 0;
      const first = await connectFrom('127.0.0.1', 5);
      expect(first.closed).to.equal(2);
      expect(refusals).to.deep.equal(['per-client', 'per-client']);
      await serverHolds(3);

      const second = await connectFrom('127.0.0.2', 3);
      // 3 + 2 fill the total of 5: the third from .2 is closed by the total, not by its address's cap.
      expect(second.closed).to.equal(1);
      expect(refusals).to.deep.equal(['per-client', 'per-client', 'total']);

      // One line per reason within the interval, naming the client and the cap.
      expect(lines.map((l) => l.fields)).to.deep.equal([
        { reason: 'per-client', client: '127.0.0.1', limit: 3, refusedSinceLastLine: undefined },
        { reason: 'total', client: '127.0.0.2', limit: 5, refusedSinceLastLine: undefined },
      ]);
      expect(lines[0].message).to.equal('the test server refuses connections from a client holding its most');
      expect(lines[1].message).to.equal('the test server refuses connections: it holds its most');

      // A minute on, the next refusal is logged with the ones in between.
      clock += REFUSAL_LOG_INTERVAL_MS;
      for (const s of second.open) s.destroy();
      await serverHolds(3);
      expect((await connectFrom('127.0.0.1', 1)).closed).to.equal(1);
      expect(lines).to.have.length(3);
      expect(lines[2].fields).to.include({ reason: 'per-client', refusedSinceLastLine: 1 });

      // Its connections closed, the address is served again.
      for (const s of first.open) s.destroy();
      await serverHolds(0);
      expect((await connectFrom('127.0.0.1', 3)).closed).to.equal(0);
      await serverHolds(3);
    });
  });
});
