/**
 * Network helpers: readiness probes and host-port checks. The operator probes only addresses the
 * policy lists (probeNetworks: loopback by default; on several nodes, the nodes' network).
 */
import http from 'node:http';
import net from 'node:net';
import { addressMatcher } from '../util/cidr.js';
import { replyText } from '../util/http-reply.js';

/**
 * The URL to probe for `hostUrl`: an unspecified or loopback name becomes 127.0.0.1; an address
 * outside `networks` gives undefined (not probed).
 */
export function probeUrl(hostUrl: string | undefined, networks: readonly string[]): string | undefined {
  if (!hostUrl) return undefined;
  let u: URL;
  try {
    u = new URL(hostUrl);
  } catch {
    return undefined;
  }
  const h = u.hostname.replace(/^\[|\]$/g, '');
  if (h === '0.0.0.0' || h === '::' || h === 'localhost') u.hostname = '127.0.0.1';
  const addr = u.hostname.replace(/^\[|\]$/g, '');
  return matcherFor(networks)(addr) ? u.toString() : undefined;
}

const matchers = new Map<string, (a: string) => boolean>();
function matcherFor(networks: readonly string[]): (a: string) => boolean {
  const key = networks.join(',');
  let m = matchers.get(key);
  if (!m) {
    m = addressMatcher(networks);
    if (matchers.size > 16) matchers.clear();
    matchers.set(key, m);
  }
  return m;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One GET with a short timeout; rejects on connection errors. */
export function httpGet(url: string, timeoutMs = 1500, maxBody = 64 * 1024): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      replyText(res, maxBody).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Whether an HTTP server answers at `url`. Any status counts (a Jupyter base_url redirect is fine);
 * a bare TCP connect would not do, because Docker's userland proxy accepts connections on a
 * published port before the server inside listens.
 */
export async function answersHttp(url: string, timeoutMs = 1500): Promise<boolean> {
  try {
    await httpGet(url, timeoutMs, 1);
    return true;
  } catch {
    return false;
  }
}

export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it; another process may take it after). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
