/**
 * A unix-socket HTTP proxy in front of a real dockerd that can stop answering: requests it is told
 * to hang are accepted (the connection stays open, the request is read) and never answered, the
 * way a dockerd stuck on a lock or a storage driver behaves. Everything else is passed through,
 * streams (the event stream) included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HangingDockerProxy {
  /** The proxy's socket (for `new Docker({ socketPath })`). */
  socketPath: string;
  /** Requests (method, URL with query) for which this returns true get no answer from now on; undefined: all pass. */
  hang(predicate: ((method: string, url: string) => boolean) | undefined): void;
  /** Requests held so far, as "METHOD URL". */
  readonly held: string[];
  /** Give up on held requests (their connections close) and stop the proxy. */
  close(): Promise<void>;
}

export async function startHangingDockerProxy(upstreamSocket: string): Promise<HangingDockerProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-hang-'));
  const socketPath = join(dir, 'docker.sock');
  let predicate: ((method: string, url: string) => boolean) | undefined;
  const held: string[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    if (predicate?.(method, url)) {
      held.push(`${method} ${url}`);
      // Read the body (as dockerd would) and never answer.
      req.resume();
      return;
    }
    const up = http.request({ socketPath: upstreamSocket, method, path: url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      // The event stream sends headers and then nothing until an event: flush them now.
      res.flushHeaders();
      upRes.pipe(res);
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `proxy: ${err.message}` }));
    });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    socketPath,
    hang(p) {
      predicate = p;
    },
    held,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
