/**
 * Image references as Docker reads them, for the policy's image globs (allowedImages, localImages).
 *
 * Docker resolves a reference without a registry host to Docker Hub: `local/x` IS
 * `docker.io/local/x:latest`, and `busybox` is `docker.io/library/busybox:latest`. Globs written by
 * an admin are normalised by the same rules and matched against the normalised reference, so no
 * spelling of a reference (`index.docker.io/…`, `docker.io/library/…`, with or without `:latest`)
 * matches a glob the canonical form would not, and the other way round.
 */
import { parseFamiliarName } from '@swimlane/docker-reference';
import picomatch from 'picomatch';

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPOSITORY = 'library';

/** A reference Docker would refuse, with its reason. */
export class InvalidImageReference extends Error {
  constructor(
    readonly reference: string,
    reason: string,
  ) {
    super(`"${reference}" is not a valid image reference: ${reason}`);
    this.name = 'InvalidImageReference';
  }
}

/**
 * The fully qualified form of `ref`: registry host, full repository path, and `:latest` when it
 * names neither a tag nor a digest ("local/x" → "docker.io/local/x:latest").
 */
export function normaliseReference(ref: string): string {
  let parsed;
  try {
    parsed = parseFamiliarName(ref);
  } catch (err) {
    throw new InvalidImageReference(ref, (err as Error).message);
  }
  const name = `${parsed.domain}/${parsed.repository}`;
  const tag = parsed.tag ?? (parsed.digest ? undefined : 'latest');
  return `${name}${tag ? `:${tag}` : ''}${parsed.digest ? `@${parsed.digest}` : ''}`;
}

/** Whether the first path component of a reference names a registry host (Docker's rule). */
function isDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

const GLOB_CHARS = /[*?[\]{}()!+@]/;

/**
 * A policy glob in the normalised form: "local/*" → "docker.io/local/*", "busybox" →
 * "docker.io/library/busybox:latest", "quay.io/jupyter/*" unchanged. A glob whose first component
 * is itself a wildcard ("**", "*\/x") is taken as written: it is matched against normalised
 * references, so "**" allows every image.
 */
export function normaliseImageGlob(glob: string): string {
  const slash = glob.indexOf('/');
  const first = slash < 0 ? glob : glob.slice(0, slash);
  if (GLOB_CHARS.test(first) && slash >= 0) return glob;
  if (slash < 0 && GLOB_CHARS.test(glob) && /^[*?]/.test(glob)) return glob;
  let domain = DEFAULT_DOMAIN;
  let path = glob;
  if (slash >= 0 && isDomain(first)) {
    domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
    path = glob.slice(slash + 1);
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `${OFFICIAL_REPOSITORY}/${path}`;
  // A last component without tag, digest or wildcard names ":latest", as a reference would.
  const last = path.slice(path.lastIndexOf('/') + 1);
  if (!last.includes(':') && !last.includes('@') && !GLOB_CHARS.test(last)) path += ':latest';
  return `${domain}/${path}`;
}

const compiled = new Map<string, (s: string) => boolean>();

function matcher(glob: string): (s: string) => boolean {
  let m = compiled.get(glob);
  if (!m) {
    m = picomatch(normaliseImageGlob(glob), { dot: true });
    if (compiled.size > 1000) compiled.clear();
    compiled.set(glob, m);
  }
  return m;
}

/** Whether one of `globs` matches `ref`, both normalised. Throws InvalidImageReference. */
export function imageMatchesGlobs(ref: string, globs: readonly string[]): boolean {
  const normal = normaliseReference(ref);
  return globs.some((g) => matcher(g)(normal));
}

/** Whether two references name the same image by Docker's rules (e.g. "busybox" and "docker.io/library/busybox:latest"). */
export function sameReference(a: string, b: string): boolean {
  try {
    return normaliseReference(a) === normaliseReference(b);
  } catch {
    return a === b;
  }
}
