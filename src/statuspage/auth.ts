/**
 * Who may see the status page. On a loopback address anyone on the machine may (as with the
 * metrics port). Bound elsewhere, a request needs a bearer token (header, or the session cookie the
 * login form sets): one from --status-token-file, or any token the Kubernetes API server accepts for
 * listing NotebookServers — the credentials of a kubeconfig that can `kubectl get nbs` — checked by
 * making that list call with it (kube-rbac-proxy checks a token the same way, with TokenReview and
 * SubjectAccessReview). Answers are cached briefly so a page's reconnects cost no API call.
 */
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { GROUP, PLURAL, VERSION } from '../api/names.js';

const ACCEPT_CACHE_MS = 60_000;
const REFUSE_CACHE_MS = 5_000;
const SESSION_MS = 12 * 3600_000;
const MAX_SESSIONS = 10_000;
export const SESSION_COOKIE = 'nbswarm_status';

export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1';
}

/** Whether the API server at the operator's cluster accepts `token` for listing NotebookServers. */
export type TokenCheck = (token: string) => Promise<boolean>;

/** A check against the API server of `kc` (its cluster and CA, the candidate's token); `kc` may come later. */
export function apiServerTokenCheck(kc: () => KubeConfig | undefined, namespace?: string): TokenCheck {
  return async (token) => {
    const cluster = kc()?.getCurrentCluster();
    if (!cluster) return false;
    const probe = new KubeConfig();
    probe.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'status-page-visitor', token }],
      contexts: [{ name: 'probe', cluster: cluster.name, user: 'status-page-visitor' }],
      currentContext: 'probe',
    });
    const api = probe.makeApiClient(CustomObjectsApi);
    try {
      if (namespace) await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, limit: 1 });
      else await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 });
      return true;
    } catch {
      return false;
    }
  };
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

  constructor(
    /** false: every request is allowed (loopback). */
    readonly required: boolean,
    private readonly check: TokenCheck | undefined,
    staticTokens: string[] = [],
    private readonly now: () => number = Date.now,
  ) {
    this.staticTokens = staticTokens.map(digest);
  }

  /** Whether `token` opens the page. */
  async accepts(token: string): Promise<boolean> {
    if (!token || token.length > 8192) return false;
    const d = digest(token);
    if (this.staticTokens.some((t) => timingSafeEqual(t, d))) return true;
    const key = d.toString('hex');
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.ok;
    const ok = this.check ? await this.check(token) : false;
    if (this.cache.size > MAX_SESSIONS) this.cache.clear();
    this.cache.set(key, { ok, until: this.now() + (ok ? ACCEPT_CACHE_MS : REFUSE_CACHE_MS) });
    return ok;
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
    return m ? this.accepts(m[1]!) : false;
  }
}

export function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
