/**
 * The roof over P6's API-server figure: a Node HTTPS server (HTTP/2 and HTTP/1.1, the API server's
 * own TLS key and certificate, no Nagle) that stores nothing — it parses each request's JSON and
 * answers 201 with it re-serialised, the least any JSON API does per create. Its rate, with the same
 * client on the same machine, is what no Node server can beat there.
 *
 *   node dist/bench/apiserver/null-server.js KEY_FILE CERT_FILE   → prints {"url": …}, serves until SIGTERM
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const [keyFile, certFile] = process.argv.slice(2);
if (!keyFile || !certFile) {
  process.stderr.write('usage: null-server KEY_FILE CERT_FILE\n');
  process.exit(2);
}
const server = http2.createSecureServer(
  { key: readFileSync(keyFile), cert: readFileSync(certFile), allowHTTP1: true, settings: { maxConcurrentStreams: 1000 } },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(201, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
      res.end(text);
    });
  },
);
server.on('secureConnection', (s) => s.setNoDelay(true));
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
