/**
 * Images on a Swarm of several nodes: every node must be able to pull what a service names, so a
 * server's image resolves to a registry digest (`registry/repo@sha256:…`), never to a tag (Swarm
 * would resolve it again on every task start) nor to a local image ID (only the manager has it).
 *
 * A tag is looked up in the registry without pulling (the daemon's distribution endpoint, what
 * `docker service create` does for its own resolution). An image that exists only on the manager
 * is refused with the fix in the message, or pushed to the policy's registry when the policy
 * allows it. On a single-node Swarm a policy registry is tried first and the local image is used
 * when the registry does not have it.
 */
import type Docker from 'dockerode';
import { BackendError, type RegistryAuth, type ResolvedImage } from './types.js';
import { daemonMessage, statusOf, wrapDockerError } from './docker.js';
import { pinnedFrom, type PullProgress } from './images.js';

export interface ImageRef {
  /** Registry host[:port] when the reference names one (first component with "." or ":", or localhost). */
  registry?: string;
  /** Repository path without registry, e.g. "local/busybox" or "jupyter/base-notebook". */
  path: string;
  tag?: string;
  digest?: string;
}

/** Split a reference the way Docker does. */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) registry = parts.shift();
  return { registry, path: parts.join('/'), tag, digest };
}

/** An image ID (sha256:… or 64 hex digits) rather than a name. */
export function isImageId(ref: string): boolean {
  return /^(sha256:)?[0-9a-f]{64}$/.test(ref);
}

/**
 * Where a tag is looked up: as written when it names a registry; in the policy's registry when it
 * names none (so `local/notebook:latest` means `REGISTRY/local/notebook:latest`); else Docker's default.
 */
export function registryReference(ref: string, registry?: string): string {
  const r = parseImageRef(ref);
  if (r.registry || !registry) return ref;
  return `${registry.replace(/\/+$/, '')}/${r.path}:${r.tag ?? 'latest'}`;
}

/** `repo:tag` → `repo` (the part a digest reference keeps). */
export function withoutTag(ref: string): string {
  const r = parseImageRef(ref);
  return `${r.registry ? r.registry + '/' : ''}${r.path}`;
}

/** Whether the daemon's answer means "the registry has no such manifest" (as opposed to "cannot ask it"). */
export function isNotFound(err: unknown): boolean {
  const s = statusOf(err);
  if (s === 404) return true;
  return /manifest unknown|not found|no such|name unknown|does not exist|repository name not known/i.test(daemonMessage(err));
}

/** The registry's digest of `ref` (no pull), or undefined when the registry does not have it. */
export async function registryDigest(docker: Docker, ref: string, auth?: RegistryAuth): Promise<string | undefined> {
  try {
    const d: any = await docker.getImage(ref).distribution({ authconfig: auth } as any);
    const digest = String(d?.Descriptor?.digest ?? '');
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`unexpected answer ${JSON.stringify(d).slice(0, 200)}`);
    return digest;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw wrapDockerError(
      `docker manifest inspect ${ref}`,
      err,
      'the registry did not answer: check that every node and the manager reach it, and its credentials (registry.credentialsSecret)',
      'ImagePullFailed',
    );
  }
}

function follow(docker: Docker, stream: NodeJS.ReadableStream, call: string, onProgress?: (p: PullProgress) => void, reference = ''): Promise<any[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: any[]) => {
        // The daemon reports most failures inside the stream, with HTTP 200.
        const failed = err ?? output?.find((o) => o?.error || o?.errorDetail);
        if (failed) {
          const msg = (failed as any).error ?? (failed as any).errorDetail?.message ?? (failed as Error).message;
          reject(
            new BackendError(
              `${call} failed: ${msg}`,
              'ImagePullFailed',
              call,
              'check that the registry is reachable from the manager and the credentials (registry.credentialsSecret)',
              failed,
            ),
          );
        } else resolve(output ?? []);
      },
      (ev: any) => {
        if (onProgress && ev?.status)
          onProgress({ reference, status: ev.status, id: ev.id, current: ev.progressDetail?.current, total: ev.progressDetail?.total });
      },
    );
  });
}

/** Tag the local image `local` as `target` (repo:tag) and push it; returns the registry digest. */
export async function pushLocal(docker: Docker, local: string, target: string, auth?: RegistryAuth, onProgress?: (p: PullProgress) => void): Promise<string> {
  const r = parseImageRef(target);
  const call = `docker push ${target}`;
  try {
    await docker.getImage(local).tag({ repo: withoutTag(target), tag: r.tag ?? 'latest' });
  } catch (err) {
    throw wrapDockerError(`docker tag ${local} ${target}`, err);
  }
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.getImage(target).push({ authconfig: auth ?? {} } as any)) as unknown as NodeJS.ReadableStream;
  } catch (err) {
    throw wrapDockerError(call, err, 'check that the registry is reachable from the manager and the credentials', 'ImagePullFailed');
  }
  const out = await follow(docker, stream, call, onProgress, target);
  const digest = out.map((o) => o?.aux?.Digest).find((d): d is string => typeof d === 'string' && d.startsWith('sha256:'));
  if (!digest) throw new BackendError(`${call} finished without reporting a digest`, 'ImagePullFailed', call);
  return digest;
}

export interface SharedResolveOptions {
  /** The policy's registry (host[:port]). */
  registry?: string;
  /** Push images that exist only on the manager to `registry` instead of refusing them. */
  pushLocalImages: boolean;
  /** Several nodes: an image the others cannot pull is refused. One node: the local image will do. */
  multiNode: boolean;
  auth?: RegistryAuth;
  onProgress?: (p: PullProgress) => void;
}

async function inspectLocal(docker: Docker, ref: string): Promise<{ Id: string; RepoDigests?: string[] } | undefined> {
  try {
    return (await docker.getImage(ref).inspect()) as { Id: string; RepoDigests?: string[] };
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw wrapDockerError(`docker image inspect ${ref}`, err);
  }
}

function notShared(reference: string, id: string, o: SharedResolveOptions): BackendError {
  const target = o.registry
    ? registryReference(reference, o.registry)
    : `REGISTRY/${parseImageRef(reference).path}:${parseImageRef(reference).tag ?? 'latest'}`;
  return new BackendError(
    `image ${reference} exists only on the Swarm manager (${id.slice(0, 19)}); the other nodes cannot pull it`,
    'ImageNotShared',
    `docker manifest inspect ${o.registry ? target : reference}`,
    `push it to a registry every node reaches (docker tag ${reference} ${target} && docker push ${target}) and name it so, ` +
      (o.registry ? 'or set registry.pushLocalImages: true in the policy to let the operator push it' : 'and set registry.address in the policy'),
  );
}

/** Resolve `reference` to a form every node can pull (see the module comment). */
export async function resolveShared(docker: Docker, reference: string, o: SharedResolveOptions): Promise<ResolvedImage> {
  if (isImageId(reference)) {
    const local = await inspectLocal(docker, reference);
    if (!o.multiNode && local) return pinnedFrom(reference, local);
    if (local) throw notShared(reference, local.Id, o);
    throw new BackendError(
      `image ${reference} is not on the manager`,
      'ImageNotFound',
      `docker image inspect ${reference}`,
      'name the image by registry reference instead of by ID',
    );
  }
  const parsed = parseImageRef(reference);
  if (parsed.digest) {
    // A digest names one manifest in a registry: every node pulls exactly that.
    return { reference, id: parsed.digest, digestReference: reference, pinned: reference };
  }
  const candidate = registryReference(reference, o.registry);
  const digest = await registryDigest(docker, candidate, o.auth);
  if (digest) {
    const pinned = `${withoutTag(candidate)}@${digest}`;
    return { reference, id: digest, digestReference: pinned, pinned };
  }
  const local = (await inspectLocal(docker, reference)) ?? (candidate !== reference ? await inspectLocal(docker, candidate) : undefined);
  if (!local) {
    throw new BackendError(
      `image ${reference} is neither in the registry (${candidate}) nor on the manager`,
      'ImageNotFound',
      `docker manifest inspect ${candidate}`,
      'push the image to the registry, or check its name and tag',
    );
  }
  if (!o.multiNode) return pinnedFrom(reference, local);
  if (!o.pushLocalImages || !o.registry) throw notShared(reference, local.Id, o);
  const target = registryReference(reference, o.registry);
  const pushed = await pushLocal(docker, local.Id, target, o.auth, o.onProgress);
  const pinned = `${withoutTag(target)}@${pushed}`;
  return { reference, id: pushed, digestReference: pinned, pinned };
}

/** X-Registry-Auth credentials from a Secret's decoded data (kubernetes.io/dockerconfigjson, or username/password keys). */
export function registryAuthFromSecret(data: Record<string, string>, registry: string): RegistryAuth | undefined {
  const cfgText = data['.dockerconfigjson'] ?? data['.dockercfg'];
  if (cfgText !== undefined) {
    let cfg: any;
    try {
      cfg = JSON.parse(cfgText);
    } catch {
      return undefined;
    }
    const auths = cfg?.auths ?? cfg ?? {};
    const entry = auths[registry] ?? auths[`http://${registry}`] ?? auths[`https://${registry}`];
    if (!entry || typeof entry !== 'object') return undefined;
    let { username, password } = entry as { username?: string; password?: string };
    if ((!username || password === undefined) && typeof entry.auth === 'string') {
      const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) [username, password] = [plain.slice(0, i), plain.slice(i + 1)];
    }
    if (entry.identitytoken) return { identitytoken: String(entry.identitytoken), serveraddress: registry };
    return username ? { username, password: password ?? '', serveraddress: registry } : undefined;
  }
  if (data.username !== undefined) return { username: data.username, password: data.password ?? '', serveraddress: registry };
  return undefined;
}
