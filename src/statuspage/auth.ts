/**
 * Who may see the status page. On a loopback address anyone on the machine may (as with the
 * metrics port). Bound elsewhere, a request needs a bearer token (header, or the session cookie the
 * login form sets): one from --status-token-file, or any token the Kubernetes API server accepts for
 * listing NotebookServers — the credentials of a kubeconfig that can `kubectl get nbs` — checked by
 * making that list call with it (kube-rbac-proxy checks a token the same way, with TokenReview and
 * SubjectAccessReview). Answers are cached briefly so a page's reconnects cost no API call.
 *
 * Whoever reaches the page can make it ask the API server about tokens it makes up, each one new.
 * The asking goes over one keep-alive pool (a check is one request, not a TLS handshake on the API
 * server; through a proxy the kubeconfig names, client-node's agent makes a connection per check),
 * and a client address whose tokens were refused REFUSED_CHECKS_PER_MINUTE times in a
 * minute gets no more checks until the minute is over (the page answers 429 with Retry-After).
 */
import { CustomObjectsApi, KubeConfig, type Cluster } from '@kubernetes/client-node';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { GROUP, PLURAL, VERSION } from '../api/names.js';
import { clientAddress } from '../connection-limits.js';
import { sharedAgent } from '../controller/kube.js';
import { replyText } from '../util/http-reply.js';

const ACCEPT_CACHE_MS = 60_000;
const REFUSE_CACHE_MS = 5_000;
const SESSION_MS = 12 * 3600_000;
const MAX_SESSIONS = 10_000;
export const SESSION_COOKIE = 'nbswarm_status';
/** Refused token checks a client address may cause per minute before it gets no more. */
export const REFUSED_CHECKS_PER_MINUTE = 20;
const REFUSAL_WINDOW_MS = 60_000;
/** Client addresses whose refusals are counted at once (a flood of addresses cannot grow the table without bound). */
const MAX_COUNTED_CLIENTS = 10_000;
const BEARER_TOKEN = /^[\x21-\x7e]+$/;
/** How long a token check may take before it counts as refused. */
const CHECK_TIMEOUT_MS = 5_000;

export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1';
}

/** Whether the API server at the operator's cluster accepts `token` for listing NotebookServers. */
export type TokenCheck = (token: string) => Promise<boolean>;

/**
 * A check against the API server of `kc` (its cluster and CA, the candidate's token); `kc` may come
 * later. One keep-alive connection pool per cluster: the visitor's token goes in the request's
 * header, the pool holds no credentials of its own.
 */
export function apiServerTokenCheck(kc: () => KubeConfig | undefined, namespace?: string): TokenCheck {
  const probes = new WeakMap<Cluster, KubeConfig>();
  const path = namespace
    ? `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PLURAL}?limit=1`
    : `/apis/${GROUP}/${VERSION}/${PLURAL}?limit=1`;
  return async (token) => {
    const cluster = kc()?.getCurrentCluster();
    // A bearer token is visible ASCII (RFC 6750); anything else (a login form may send any text) cannot go in a header.
    if (!cluster || !BEARER_TOKEN.test(token)) return false;
    let probe = probes.get(cluster);
    // The cluster alone (server, CA, TLS name), with a user that has no credentials.
    if (!probe) probes.set(cluster, (probe = visitorConfig(cluster)));
    const agent = await sharedAgent(probe).catch(() => undefined);
    // Where client-node's own agent is needed (a proxy in the kubeconfig), the check goes through it, unpooled.
    if (!agent) return clientNodeCheck(cluster, token, namespace);
    const url = cluster.server.replace(/\/+$/, '') + path;
    return new Promise<boolean>((resolve) => {
      const req = (url.startsWith('http:') ? http : https).get(
        url,
        { agent, timeout: CHECK_TIMEOUT_MS, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
        (res) =>
          void replyText(res, 0).then(
            () => resolve(res.statusCode === 200),
            () => resolve(false),
          ),
      );
      req.on('timeout', () => req.destroy(new Error(`token check: no answer within ${CHECK_TIMEOUT_MS} ms`)));
      req.on('error', () => resolve(false));
    });
  };
}

/** A KubeConfig of `cluster` alone, its user a status page visitor with `token` (or no credentials). */
function visitorConfig(cluster: Cluster, token?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'status-page-visitor', ...(token !== undefined ? { token } : {}) }],
    contexts: [{ name: 'probe', cluster: cluster.name, user: 'status-page-visitor' }],
    currentContext: 'probe',
  });
  return kc;
}

/** The check through client-node, which makes a connection per call (its proxy agents included). */
async function clientNodeCheck(cluster: Cluster, token: string, namespace: string | undefined): Promise<boolean> {
  const api = visitorConfig(cluster, token).makeApiClient(CustomObjectsApi);
  try {
    if (namespace) await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, limit: 1 });
    else await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 });
    return true;
  } catch {
    return false;
  }
}

/** Tokens from a file: one per line; blank lines and `#` comments ignored. */
export function readTokenFile(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export class StatusAuth {
  private readonly cache = new Map<string, { ok: boolean; until: number }>();
  private readonly sessions = new Map<string, number>();
  private readonly staticTokens: Buffer[];
  /** Refused token checks per client address in its current window. */
  private readonly refusals = new Map<string, { since: number; count: number }>();

  constructor(
    /** false: every request is allowed (loopback). */
    readonly required: boolean,
    private readonly check: TokenCheck | undefined,
    staticTokens: string[] = [],
    private readonly now: () => number = Date.now,
  ) {
    this.staticTokens = staticTokens.map(digest);
  }

  /**
   * Whether `token` opens the page. `client` (an address) pays for each check the API server
   * refuses; past its allowance the token is refused unchecked (see retryAfterSeconds).
   */
  async accepts(token: string, client = ''): Promise<boolean> {
    if (!token || token.length > 8192) return false;
    const d = digest(token);
    if (this.staticTokens.some((t) => timingSafeEqual(t, d))) return true;
    const key = d.toString('hex');
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.ok;
    if (!this.check || this.retryAfterSeconds(client) !== undefined) return false;
    // Counted as refused while it is checked, so checks started together cannot pass the allowance.
    const window = this.refused(client);
    const ok = await this.check(token);
    if (ok) window.count--;
    if (this.cache.size > MAX_SESSIONS) this.cache.clear();
    this.cache.set(key, { ok, until: this.now() + (ok ? ACCEPT_CACHE_MS : REFUSE_CACHE_MS) });
    return ok;
  }

  /** Seconds until `client` may have tokens checked again, when its refused checks used up its allowance. */
  retryAfterSeconds(client: string): number | undefined {
    const r = this.refusals.get(client);
    if (!r || r.count < REFUSED_CHECKS_PER_MINUTE) return undefined;
    const left = r.since + REFUSAL_WINDOW_MS - this.now();
    if (left <= 0) return void this.refusals.delete(client);
    return Math.ceil(left / 1000);
  }

  /** Counts a refused check against `client`; returns the window it was counted in. */
  private refused(client: string): { since: number; count: number } {
    const now = this.now();
    let r = this.refusals.get(client);
    if (!r || now - r.since >= REFUSAL_WINDOW_MS) {
      if (!r && this.refusals.size >= MAX_COUNTED_CLIENTS) {
        for (const [c, x] of this.refusals) if (now - x.since >= REFUSAL_WINDOW_MS) this.refusals.delete(c);
        // Still full: the oldest entry goes (Map order is insertion order).
        if (this.refusals.size >= MAX_COUNTED_CLIENTS) this.refusals.delete(this.refusals.keys().next().value!);
      }
      this.refusals.delete(client);
      this.refusals.set(client, (r = { since: now, count: 0 }));
    }
    r.count++;
    return r;
  }

  /** A new session id for an accepted token (the cookie's value). */
  newSession(): string {
    if (this.sessions.size >= MAX_SESSIONS) {
      for (const [id, until] of this.sessions) if (until <= this.now()) this.sessions.delete(id);
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    }
    const id = randomBytes(24).toString('base64url');
    this.sessions.set(id, this.now() + SESSION_MS);
    return id;
  }

  /** Whether the request may see the page: no auth needed, a live session cookie, or an accepted bearer token. */
  async allows(req: IncomingMessage): Promise<boolean> {
    if (!this.required) return true;
    const session = cookie(req.headers.cookie, SESSION_COOKIE);
    if (session) {
      const until = this.sessions.get(session);
      if (until && until > this.now()) return true;
    }
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    return m ? this.accepts(m[1]!, clientOf(req)) : false;
  }
}

/** The request's client address, spelled one way (see clientAddress). */
export function clientOf(req: IncomingMessage): string {
  return clientAddress(req.socket?.remoteAddress);
}

export function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
