/**
 * A browser's side of a JupyterHub login, without a browser: an HTTP client that follows redirects
 * itself and keeps cookies per path, so a test walks the real flow a person's browser walks
 * (hub login form → the user's server → the hub's OAuth authorize → the server's oauth_callback,
 * where the server trades the code for a token with its own hub credentials → the server's page).
 * A server holding a revoked or replaced token fails right there (500 at /oauth_callback,
 * "invalid_client"), which the token API alone never shows.
 */

interface Cookie {
  value: string;
  path: string;
}

/** Cookies by name and path, sent to requests under their path (RFC 6265, enough for one host). */
export class CookieJar {
  private readonly cookies = new Map<string, Cookie>();

  store(setCookie: string[], requestPath: string): void {
    for (const line of setCookie) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      if (eq <= 0) continue;
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      let path = requestPath.replace(/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k!.trim().toLowerCase();
        if (key === 'path') path = v.trim() || '/';
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const key = `${name}\u0000${path}`;
      if (expired || value === '' || value === '""') this.cookies.delete(key);
      else this.cookies.set(key, { value, path });
    }
  }

  header(requestPath: string): string {
    const out: string[] = [];
    for (const [key, c] of this.cookies) {
      const prefix = c.path.endsWith('/') ? c.path : `${c.path}/`;
      if (requestPath === c.path || requestPath.startsWith(prefix)) out.push(`${key.split('\u0000')[0]}=${c.value}`);
    }
    return out.join('; ');
  }
}

export interface Hop {
  method: string;
  url: string;
  status: number;
}

export interface PageResult {
  status: number;
  /** The URL that answered last (after every redirect). */
  url: string;
  body: string;
  /** Every request of the walk, in order. */
  hops: Hop[];
}

/** Request `url` like a browser: cookies from `jar`, redirects followed (at most 20), Set-Cookie kept. */
export async function browse(jar: CookieJar, url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<PageResult> {
  const hops: Hop[] = [];
  let method = init.method ?? 'GET';
  let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined;
  let current = new URL(url);
  for (let i = 0; i < 20; i++) {
    const headers: Record<string, string> = { Accept: 'text/html,application/xhtml+xml' };
    const cookie = jar.header(current.pathname);
    if (cookie) headers.Cookie = cookie;
    if (body !== undefined) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(current, { method, headers, body, redirect: 'manual' });
    jar.store(res.headers.getSetCookie(), current.pathname);
    hops.push({ method, url: current.pathname + current.search, status: res.status });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      current = new URL(location, current);
      // 302/303 after a POST become a GET, as browsers do.
      method = 'GET';
      body = undefined;
      continue;
    }
    return { status: res.status, url: current.pathname + current.search, body: await res.text(), hops };
  }
  throw new Error(`more than 20 redirects: ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`);
}

/**
 * Log `username` in at the hub (DummyAuthenticator: any password) and open `path` (their server)
 * the way a browser does. Returns the last page and every hop, so a test can show where it broke.
 */
export async function loginAndOpen(hubBase: string, username: string, path: string): Promise<PageResult> {
  const jar = new CookieJar();
  const form = await browse(jar, `${hubBase}/hub/login?next=${encodeURIComponent(path)}`);
  const xsrf = /name="_xsrf"\s+value="([^"]*)"/.exec(form.body)?.[1];
  const fields: Record<string, string> = { username, password: 'e2e' };
  if (xsrf) fields._xsrf = xsrf;
  const page = await browse(jar, `${hubBase}/hub/login?next=${encodeURIComponent(path)}`, { method: 'POST', form: fields });
  return { ...page, hops: [...form.hops, ...page.hops] };
}

/** "302 /a → 200 /b" for assertion messages. */
export function describeWalk(p: PageResult): string {
  return p.hops.map((h) => `${h.status} ${h.method} ${h.url}`).join(' → ');
}
