/**
 * Client side of ns-agent: TCP connections, HTTP requests and loopback forwards that originate in
 * the namespace the agent runs in.
 */
import http from 'node:http';
import net from 'node:net';
import { replyText } from '../../src/util/http-reply.js';

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A socket connected to host:port from the agent's namespace; paused until it is piped or resumed. */
export function connectVia(agentSocket: string, host: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(agentSocket);
    const fail = (msg: string) => {
      s.destroy();
      reject(new Error(`connect to ${host}:${port} through the namespace agent (${agentSocket}) failed: ${msg}`));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('end', onEnd);
      const line = head.subarray(0, nl).toString('utf8');
      if (line !== 'OK') return fail(line.replace(/^ERR /, ''));
      s.pause();
      const rest = head.subarray(nl + 1);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    const onError = (err: Error) => {
      clearTimeout(timer);
      fail(err.message);
    };
    const onEnd = () => {
      clearTimeout(timer);
      fail('the agent closed the connection');
    };
    s.on('data', onData);
    s.once('error', onError);
    s.once('end', onEnd);
    s.once('connect', () => s.write(`CONNECT ${host} ${port}\n`));
  });
}

/** An HTTP request made from the agent's namespace. */
export function httpRequestVia(
  agentSocket: string,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  const u = new URL(url);
  if (u.protocol !== 'http:') return Promise.reject(new Error(`only http:// URLs go through the namespace agent, not ${url}`));
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = http.request(
      u,
      {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        createConnection: ((_o: unknown, cb: (err: Error | null, s?: net.Socket) => void) => {
          connectVia(agentSocket, u.hostname, Number(u.port || 80), timeoutMs).then(
            (s) => {
              // HTTP writes the request first, so nothing arrives before its parser listens.
              s.resume();
              cb(null, s);
            },
            (err: Error) => cb(err),
          );
          return undefined;
        }) as unknown as http.RequestOptions['createConnection'],
      },
      (res) => {
        replyText(res).then((body) => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        }, reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(opts.body);
  });
}

export interface LoopbackForward {
  /** Port on 127.0.0.1 in the caller's namespace. */
  port: number;
  close(): Promise<void>;
}

/**
 * A listener on 127.0.0.1 whose every connection is relayed to host:port from the agent's
 * namespace, for clients that need a plain TCP address (kubectl, Python, a browser).
 */
export function forwardVia(agentSocket: string, host: string, port: number): Promise<LoopbackForward> {
  const open = new Set<net.Socket>();
  const server = net.createServer((local) => {
    open.add(local);
    local.on('close', () => open.delete(local));
    local.on('error', () => local.destroy());
    local.pause();
    connectVia(agentSocket, host, port).then(
      (remote) => {
        open.add(remote);
        remote.on('close', () => open.delete(remote));
        remote.on('error', () => local.destroy());
        local.on('close', () => remote.destroy());
        local.pipe(remote);
        remote.pipe(local);
        local.resume();
        remote.resume();
      },
      () => local.destroy(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address() as net.AddressInfo;
      resolve({
        port: addr.port,
        close: () =>
          new Promise<void>((r) => {
            for (const s of open) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}
