/**
 * Naming the process that holds a port: the address decoding of /proc/net/tcp{,6} (pure), and the
 * lookup itself against the real /proc for sockets this test opens.
 */
import { expect } from 'chai';
import net from 'node:net';
import { addressesConflict, decodeProcAddress, describePortInUse, findPortHolders } from '../../src/port-holder.js';

function listen(host: string, port = 0): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });
}

const portOf = (srv: net.Server) => (srv.address() as net.AddressInfo).port;

describe('port holder (/proc)', () => {
  it('decodes /proc/net/tcp and tcp6 addresses (words in little-endian order)', () => {
    expect(decodeProcAddress('0100007F')).to.equal('127.0.0.1');
    expect(decodeProcAddress('00000000')).to.equal('0.0.0.0');
    expect(decodeProcAddress('0F02000A')).to.equal('10.0.2.15');
    expect(decodeProcAddress('00000000000000000000000001000000')).to.equal('::1');
    expect(decodeProcAddress('00000000000000000000000000000000')).to.equal('::');
    expect(decodeProcAddress('0000000000000000FFFF00000100007F')).to.equal('127.0.0.1');
    expect(decodeProcAddress('B80D0120000000000000000001000000')).to.equal('2001:db8::1');
  });

  it('knows which listeners keep a new one from binding', () => {
    expect(addressesConflict('127.0.0.1', '127.0.0.1')).to.equal(true);
    expect(addressesConflict('0.0.0.0', '127.0.0.1')).to.equal(true);
    expect(addressesConflict('127.0.0.1', '0.0.0.0')).to.equal(true);
    expect(addressesConflict('::', '127.0.0.1')).to.equal(true);
    expect(addressesConflict('::1', '0:0:0:0:0:0:0:1')).to.equal(true);
    expect(addressesConflict('127.0.0.2', '127.0.0.1')).to.equal(false);
    expect(addressesConflict('10.0.2.15', 'localhost')).to.equal(true);
  });

  it('finds this process as the holder of a port it listens on, on IPv4 and IPv6', async () => {
    const v4 = await listen('127.0.0.1');
    const v6 = await listen('::1').catch(() => undefined); // a kernel without IPv6 still checks v4
    try {
      expect(findPortHolders(portOf(v4), '127.0.0.1').map((h) => h.pid)).to.deep.equal([process.pid]);
      expect(findPortHolders(portOf(v4), '127.0.0.2'), 'another loopback address does not clash').to.deep.equal([]);
      const [holder] = findPortHolders(portOf(v4), '0.0.0.0');
      expect(holder.command).to.contain(process.argv0.split('/').pop());
      if (v6) expect(findPortHolders(portOf(v6), '::1').map((h) => h.pid)).to.deep.equal([process.pid]);
    } finally {
      v4.close();
      v6?.close();
    }
  });

  it('says how to look when nothing visible holds the port', async () => {
    const srv = await listen('127.0.0.1');
    const port = portOf(srv);
    await new Promise((r) => srv.close(r));
    expect(describePortInUse(port, '127.0.0.1')).to.equal(
      `port ${port} on 127.0.0.1 is in use (by a process not visible here; \`ss -ltnp 'sport = :${port}'\` as root names it)`,
    );
  });
});
