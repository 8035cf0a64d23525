/** Authentication: bearer tokens from a CSV file, each mapped to a user with a role. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync, type Stats } from 'node:fs';
import type { Logger } from '../../log.js';

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
 * Tokens are compared exactly; the file is re-read when it changes, so adding a user needs no restart.
 */
export function parseTokenFile(text: string): Map<string, User> {
  const { users, problems } = parseTokenLines(text);
  if (problems.length) throw new Error(problems[0]);
  return users;
}

/** The token file's users, with the lines that could not be read (each skipped, never fatal to the others). */
export function parseTokenLines(text: string): { users: Map<string, User>; problems: string[] } {
  const users = new Map<string, User>();
  const problems: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [token, name, role, ns] = line.split(',').map((s) => s.trim());
    if (!token || !name || !role) {
      problems.push(`token file line ${i + 1}: expected token,user,role[,namespaces]`);
      continue;
    }
    if (role !== 'admin' && role !== 'hub' && role !== 'viewer') {
      problems.push(`token file line ${i + 1}: role must be admin, hub or viewer, got "${role.slice(0, 40)}"`);
      continue;
    }
    if (users.has(token)) problems.push(`token file line ${i + 1}: the token of an earlier line again (this line wins)`);
    const namespaces =
      !ns || ns === '*'
        ? null
        : ns
            .split(';')
            .map((s) => s.trim())
            .filter(Boolean);
    users.set(token, { name, role, namespaces });
  }
  return { users, problems };
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

/**
 * Bearer tokens from the token file (see parseTokenFile), plus `extra` tokens that live only in
 * memory. The file is looked at every 2 s at most and re-read when it changed (its inode, size,
 * mtime or ctime: a file moved away and back counts). A line that cannot be read is skipped and
 * logged, so revoking a token never waits for the rest of the file to be right; a missing file
 * leaves only the `extra` tokens.
 */
export class TokenAuth implements Authenticator {
  private users = new Map<string, User>();
  private seen = '';
  private lastCheck = 0;

  constructor(
    private readonly file: string,
    private readonly extra: Map<string, User>,
    private readonly log?: Logger,
  ) {
    this.reload();
  }

  private reload(): void {
    let st: Stats;
    try {
      st = statSync(this.file);
    } catch {
      if (this.seen !== 'missing') this.log?.warn("the token file is gone: only the server's own admin token works until it is back", { file: this.file });
      this.users = new Map();
      this.seen = 'missing';
      return;
    }
    const signature = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    if (signature === this.seen) return;
    const { users, problems } = parseTokenLines(readFileSync(this.file, 'utf8'));
    for (const p of problems)
      this.log?.warn('token file line skipped', { file: this.file, problem: p, hint: 'lines are token,user,role[,namespaces]; role admin, hub or viewer' });
    if (this.seen) this.log?.info('token file re-read', { file: this.file, users: users.size, skipped: problems.length });
    this.users = users;
    this.seen = signature;
  }

  authenticate(header: string | undefined): User | null {
    const token = bearerToken(header);
    if (!token) return null;
    const now = Date.now();
    if (now - this.lastCheck > 2000) {
      this.lastCheck = now;
      try {
        this.reload();
      } catch (e) {
        // Unreadable now (permissions, a race with an editor): keep the users read last, try again in 2 s.
        this.log?.warn('cannot read the token file; keeping the users read before', { file: this.file, error: (e as Error).message });
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
      '# nbswarm API tokens: token,user,role[,namespaces]  (role: admin|hub|viewer; namespaces ;-separated, * = all)\n' + `${token},admin,admin,*\n`,
      { mode: 0o600 },
    );
    return token;
  }
  // Lines that cannot be read are skipped here too (TokenAuth logs them).
  for (const [t, u] of parseTokenLines(readFileSync(file, 'utf8')).users) if (u.role === 'admin' && u.namespaces === null) return t;
  return undefined;
}
