/**
 * The API server bench's clients: HTTP/2 sessions as client-go connects, and HTTP/1.1 keep-alive
 * connections as kubectl and client-node do, each request with the bench's bearer token. A reply
 * is settled by its status and body; one cut short is an error, never a short body.
 */
import http2 from 'node:http2';
import https from 'node:https';

/** One request; `parse` false leaves the body as text (when only the status is wanted, and the text for an error). */
export type Request = (method: string, path: string, body?: unknown, type?: string, parse?: boolean) => Promise<{ status: number; body: any }>;

interface Client {
  req: Request;
  session: http2.ClientHttp2Session;
}

/**
 * A reply's body as text, or parsed. A reply cut short — its HTTP/2 stream reset, or fewer bytes
 * than its content-length — throws rather than pass for a short body: the caller rejects with it,
 * so the first failure of a run is the one reported, not a JSON error from a reply cut off by the
 * teardown that failure started.
 */
function replyBody(chunks: Buffer[], parse: boolean, contentLength: string | string[] | undefined, resetCode?: number): unknown {
  const bytes = Buffer.concat(chunks);
  if (resetCode) throw new Error(`the reply's stream was reset (HTTP/2 error code ${resetCode}) after ${bytes.length} bytes`);
  if (typeof contentLength === 'string' && bytes.length !== Number(contentLength))
    throw new Error(`the reply ended after ${bytes.length} of its ${contentLength} bytes`);
  const text = bytes.toString();
  return parse ? JSON.parse(text || 'null') : text;
}

/** Settles a request's promise with its reply, or with why the reply is not one. */
function settle(resolve: (r: { status: number; body: any }) => void, reject: (e: Error) => void, status: number, body: () => unknown): void {
  try {
    resolve({ status, body: body() });
  } catch (e) {
    reject(e as Error);
  }
}

export function connect(url: string, ca: string, token: string): Client {
  const session = http2.connect(url, { ca });
  session.on('error', () => {});
  return {
    session,
    req(method, path, body, type = 'application/json', parse = true) {
      return new Promise((resolve, reject) => {
        const s = session.request({
          ':method': method,
          ':path': path,
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': type } : {}),
        });
        const chunks: Buffer[] = [];
        let head: http2.IncomingHttpHeaders = {};
        s.on('response', (h) => (head = h));
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => settle(resolve, reject, Number(head[':status'] ?? 0), () => replyBody(chunks, parse, head['content-length'], s.rstCode)));
        s.on('error', reject);
        s.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
      });
    },
  };
}

/** HTTP/1.1 over TLS with a keep-alive pool of `sockets` connections, as client-node's default agent. */
export function connect1(url: string, ca: string, token: string, sockets: number): { req: Request; agent: https.Agent } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: sockets, ca });
  const u = new URL(url);
  return {
    agent,
    req(method, path, body, type = 'application/json', parse = true) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const r = https.request(
          {
            host: u.hostname,
            port: u.port,
            method,
            path,
            agent,
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(data !== undefined ? { 'content-type': type, 'content-length': Buffer.byteLength(data) } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => settle(resolve, reject, res.statusCode ?? 0, () => replyBody(chunks, parse, res.headers['content-length'])));
            res.on('error', reject);
          },
        );
        r.on('error', reject);
        r.end(data);
      });
    },
  };
}

/** HTTP/2 clients on 4 connections, requests spread over them (several clients would open several). */
export function h2Clients(url: string, ca: string, token: string): { req: Request; close(): void } {
  const clients = Array.from({ length: 4 }, () => connect(url, ca, token));
  let k = 0;
  return {
    req: (method, path, body, type, parse) => clients[k++ % clients.length].req(method, path, body, type, parse),
    close: () => clients.forEach((c) => c.session.close()),
  };
}
