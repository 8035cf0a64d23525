/** Authentication: bearer tokens from a CSV file, each mapped to a user with a role. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';

export type Role = 'admin' | 'hub' | 'viewer';

export interface User {
  name: string;
  /** The token file's role; RBAC binds it implicitly (auth/rbac/authorizer.ts). Other users have none. */
  role?: Role;
  /** null = every namespace (the token file's role applies there). */
  namespaces: string[] | null;
  /** Groups the authenticator put the user in; token-file users get theirs from the role. */
  groups?: string[];
  uid?: string;
}

/**
 * Token file format (CSV, one user per line; blank lines and lines starting with `#` are ignored):
 *
 *     token,user,role[,namespaces]
 *
 * - `role` is `admin` (everything), `hub` (read/write namespaced objects in its namespaces, read
 *   cluster-scoped objects such as CRDs and namespaces) or `viewer` (read only).
 * - `namespaces` is a `;`-separated list; empty or `*` means all namespaces. A `hub` user is normally
 *   limited to one namespace, e.g. `s3cr3t,jupyterhub,hub,jupyter`.
 *
 * Tokens are compared exactly; the file is re-read when its mtime changes, so adding a user needs no restart.
 */
export function parseTokenFile(text: string): Map<string, User> {
  const out = new Map<string, User>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [token, name, role, ns] = line.split(',').map((s) => s.trim());
    if (!token || !name || !role) throw new Error(`token file line ${i + 1}: expected token,user,role[,namespaces]`);
    if (role !== 'admin' && role !== 'hub' && role !== 'viewer') {
      throw new Error(`token file line ${i + 1}: role must be admin, hub or viewer, got "${role}"`);
    }
    const namespaces = !ns || ns === '*' ? null : ns.split(';').map((s) => s.trim()).filter(Boolean);
    out.set(token, { name, role, namespaces });
  }
  return out;
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Who sent a request, from its Authorization header (null: not authenticated). */
export interface Authenticator {
  authenticate(header: string | undefined): User | null;
}

/** Asks each authenticator in turn; the first that knows the token wins (kube's union authenticator). */
export class UnionAuthenticator implements Authenticator {
  constructor(private readonly authenticators: readonly Authenticator[]) {}
  authenticate(header: string | undefined): User | null {
    for (const a of this.authenticators) {
      const u = a.authenticate(header);
      if (u) return u;
    }
    return null;
  }
}

/** The bearer token of an Authorization header, if it has one. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  return /^Bearer\s+(.+)$/i.exec(header.trim())?.[1];
}

/** Bearer tokens from the token file (see parseTokenFile), plus `extra` tokens that live only in memory. */
export class TokenAuth implements Authenticator {
  private users = new Map<string, User>();
  private mtime = 0;
  private lastCheck = 0;
  constructor(private readonly file: string, private readonly extra: Map<string, User>) {
    this.reload();
  }
  private reload(): void {
    if (!existsSync(this.file)) {
      this.users = new Map();
      return;
    }
    const st = statSync(this.file);
    if (st.mtimeMs === this.mtime) return;
    this.users = parseTokenFile(readFileSync(this.file, 'utf8'));
    this.mtime = st.mtimeMs;
  }
  authenticate(header: string | undefined): User | null {
    const token = bearerToken(header);
    if (!token) return null;
    const now = Date.now();
    if (now - this.lastCheck > 2000) {
      this.lastCheck = now;
      try {
        this.reload();
      } catch {
        // A half-written token file must not lock everyone out: keep the previous users.
      }
    }
    return this.users.get(token) ?? this.extra.get(token) ?? null;
  }
  userToken(name: string): string | undefined {
    this.reload();
    for (const [t, u] of this.users) if (u.name === name) return t;
    for (const [t, u] of this.extra) if (u.name === name) return t;
    return undefined;
  }
}

/** Creates the token file with a fresh admin line on first start; returns the admin token. */
export function ensureTokenFile(file: string): string | undefined {
  if (!existsSync(file)) {
    const token = newToken();
    writeFileSync(
      file,
      '# nbswarm API tokens: token,user,role[,namespaces]  (role: admin|hub|viewer; namespaces ;-separated, * = all)\n' +
        `${token},admin,admin,*\n`,
      { mode: 0o600 },
    );
    return token;
  }
  for (const [t, u] of parseTokenFile(readFileSync(file, 'utf8'))) if (u.role === 'admin') return t;
  return undefined;
}
