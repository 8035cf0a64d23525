/**
 * Name templates ({prefix}, {username}, {servername}) and Docker-safe names.
 *
 * Usernames and server names are escaped the way DockerSpawner does it (the `escapism` package with
 * safe characters [a-z0-9] and escape character "-", then lower-cased): every other character becomes
 * "-" + the hex of each of its UTF-8 bytes. The mapping is injective, so two users never share a
 * Docker name or a volume, and the result only contains DNS-label characters.
 */
import { createHash } from 'node:crypto';

const SAFE = /^[a-z0-9]$/;

/** DockerSpawner-compatible escaping: "Alice.B" → "-41lice-2eb". */
export function escapeName(text: string): string {
  let out = '';
  for (const ch of text) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += '-' + byte.toString(16).padStart(2, '0');
  }
  return out.toLowerCase();
}

export interface TemplateVars {
  prefix?: string;
  /** Raw username; escaped here unless `raw` is set. */
  username?: string;
  servername?: string;
  [key: string]: string | undefined;
}

const PLACEHOLDER = /\{([a-z_]+)\}/g;

/** Placeholders a name/volume template may use ({namespace} is empty for the namespace "default"). */
export const NAME_PLACEHOLDERS = ['prefix', 'namespace', 'username', 'servername'] as const;

/** Placeholders in `template` that are not in `allowed` (for policy validation). */
export function unknownPlaceholders(template: string, allowed: readonly string[]): string[] {
  const out: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) if (!allowed.includes(m[1]!)) out.push(m[0]);
  return out;
}

/**
 * Fill a template. An empty value also removes one separator ("-", "_" or ".") next to it, so
 * "{prefix}-{username}-{servername}" with servername "" gives "nbs-alice", not "nbs-alice-".
 * With `escape` (the default) username and servername are escaped with {@link escapeName}.
 */
export function renderTemplate(template: string, vars: TemplateVars, opts: { escape?: boolean } = {}): string {
  const escape = opts.escape ?? true;
  const value = (key: string): string | undefined => {
    const v = vars[key];
    if (v === undefined) return undefined;
    return escape && (key === 'username' || key === 'servername') ? escapeName(v) : v;
  };
  let t = template;
  // Drop separators around empty values first, then substitute the rest.
  for (const key of Object.keys(vars)) {
    if (value(key) !== '') continue;
    const ph = `\\{${key}\\}`;
    t = t
      .replace(new RegExp(`[-_.]${ph}`, 'g'), '')
      .replace(new RegExp(`^${ph}[-_.]`), '')
      .replace(new RegExp(ph, 'g'), '');
  }
  return t.replace(PLACEHOLDER, (whole, key: string) => value(key) ?? whole);
}

function shortHash(text: string, n = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, n);
}

/**
 * Make `name` a valid Docker object name that is also a valid Swarm service name / DNS label:
 * lower-case [a-z0-9-], starting and ending with an alphanumeric, at most `maxLength` (63) chars.
 * A name that has to be shortened gets "-" + 8 hex chars of sha256(`uniqueBy`) so truncated names
 * of different objects stay distinct. Runs of "-" are kept: escaped names rely on them.
 */
export function dockerName(name: string, opts: { maxLength?: number; uniqueBy?: string } = {}): string {
  const max = opts.maxLength ?? 63;
  let s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+/, '')
    .replace(/-+$/, '');
  if (s === '') s = 'nbs-' + shortHash(opts.uniqueBy ?? name);
  if (s.length <= max) return s;
  const suffix = shortHash(opts.uniqueBy ?? name);
  return s.slice(0, max - suffix.length - 1).replace(/-+$/, '') + '-' + suffix;
}

/**
 * Named-volume names: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*. Volumes outlive resources, so
 * a shortened name is made unique by a hash of the full name (never of a resource UID, which
 * changes when a server is deleted and re-created and would orphan the user's files).
 */
export function volumeName(name: string, maxLength = 255): string {
  let s = name.replace(/[^a-zA-Z0-9_.-]/g, '-').replace(/^[^a-zA-Z0-9]+/, '');
  if (s === '') s = 'nbs-' + shortHash(name);
  if (s.length <= maxLength) return s;
  const suffix = shortHash(name);
  return s.slice(0, maxLength - suffix.length - 1) + '-' + suffix;
}
