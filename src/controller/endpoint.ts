/** status.endpoint: where the host and other containers reach an observed server. Pure. */
import type { DesiredServer, ObservedServer } from '../backends/types.js';
import type { Policy } from '../config/types.js';

export interface Endpoint {
  url?: string;
  hostUrl?: string;
  host?: string;
  port?: number;
}

const hostPart = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/**
 * status.endpoint for an observed server. hostUrl is where the host reaches it (published port on
 * publishHostIp, or the port itself with host networking); url is what other containers on the
 * policy's network use (the Docker name resolves there), else the hostUrl.
 */
export function endpointFor(desired: DesiredServer, observed: ObservedServer | undefined, policy: Pick<Policy, 'publishHostIp'>): Endpoint {
  const hostPort = desired.networkMode === 'host' ? desired.port : observed?.hostPort;
  let host = observed?.hostIp && observed.hostIp !== '0.0.0.0' && observed.hostIp !== '::' ? observed.hostIp : policy.publishHostIp;
  if (host === '0.0.0.0') host = '127.0.0.1';
  const out: Endpoint = {};
  if (hostPort) {
    out.hostUrl = `http://${hostPart(host)}:${hostPort}`;
    out.host = host;
    out.port = hostPort;
  }
  if (desired.network) out.url = `http://${desired.dockerName}:${desired.port}`;
  else if (out.hostUrl) out.url = out.hostUrl;
  return out;
}
