/**
 * Runs inside a network namespace (`ip netns exec NS node ns-agent.js SOCKET`) and opens TCP
 * connections from there on behalf of processes outside it. The unix socket is a file, so the
 * test process reaches it from the host's namespace while every connection it asks for starts in
 * the namespace — "a request from the hub's namespace" without giving the host a route into the
 * cluster network.
 *
 * Protocol, per connection: the client sends `CONNECT <host> <port>\n`; the agent answers `OK\n`
 * and then relays bytes both ways, or `ERR <reason>\n` and closes.
 */
import net from 'node:net';
import { rmSync } from 'node:fs';

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write('usage: ns-agent.js SOCKET_PATH\n');
  process.exit(2);
}

const REQUEST = /^CONNECT ([A-Za-z0-9.:-]{1,253}) (\d{1,5})$/;

function serve(client: net.Socket): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 300) client.end('ERR request line too long\n');
      return;
    }
    client.off('data', onData);
    client.pause();
    const m = REQUEST.exec(head.subarray(0, nl).toString('latin1'));
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      client.end('ERR expected "CONNECT <host> <port>"\n');
      return;
    }
    const rest = head.subarray(nl + 1);
    const upstream = net.connect({ host: m[1], port });
    upstream.once('connect', () => {
      upstream.off('error', refuse);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.write('OK\n');
      if (rest.length) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    const refuse = (err: Error) => client.end(`ERR ${err.message.replace(/\n/g, ' ')}\n`);
    upstream.once('error', refuse);
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
}

rmSync(socketPath, { force: true });
const server = net.createServer(serve);
server.listen(socketPath);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    rmSync(socketPath, { force: true });
    process.exit(0);
  });
}
