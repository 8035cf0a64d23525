/**
 * Image resolution: moby pulls a tag before every Swarm task
 * start, so Docker is only ever handed a digest reference or a local image ID.
 */
import type Docker from 'dockerode';
import { BackendError, type PullPolicy, type ResolvedImage } from './types.js';
import { statusOf, wrapDockerError } from './docker.js';

export interface PullProgress {
  reference: string;
  status: string;
  id?: string;
  current?: number;
  total?: number;
}

/** Repository part of a reference ("reg:5000/a/b:tag" → "reg:5000/a/b"), for matching RepoDigests. */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

export function pinnedFrom(reference: string, inspect: { Id: string; RepoDigests?: string[] }): ResolvedImage {
  const digests = inspect.RepoDigests ?? [];
  const repo = repositoryOf(reference);
  // Prefer the digest of the repository asked for; a retagged image carries several.
  const digestReference =
    (reference.includes('@sha256:') && digests.includes(reference) ? reference : undefined) ??
    digests.find((d) => repositoryOf(d) === repo || repositoryOf(d) === `docker.io/library/${repo}` || repositoryOf(d) === `docker.io/${repo}`) ??
    digests[0];
  return { reference, id: inspect.Id, digestReference, pinned: digestReference ?? inspect.Id };
}

async function inspectLocal(docker: Docker, reference: string): Promise<{ Id: string; RepoDigests?: string[] } | undefined> {
  try {
    return (await docker.getImage(reference).inspect()) as { Id: string; RepoDigests?: string[] };
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw wrapDockerError(`docker image inspect ${reference}`, err);
  }
}

async function pull(docker: Docker, reference: string, onProgress?: (p: PullProgress) => void): Promise<void> {
  const call = `docker pull ${reference}`;
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(reference)) as NodeJS.ReadableStream;
  } catch (err) {
    throw wrapDockerError(call, err, 'check the image name and that the registry is reachable and you are logged in', 'ImagePullFailed');
  }
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: any[]) => {
        // The daemon reports most pull failures in the stream, not as an HTTP error.
        const failed = err ?? output?.find((o) => o?.error);
        if (failed) {
          reject(
            new BackendError(
              `${call} failed: ${(failed as any).error ?? (failed as Error).message}`,
              'ImagePullFailed',
              call,
              'check the image name and that the registry is reachable and you are logged in',
              failed,
            ),
          );
        } else resolve();
      },
      (ev: any) => {
        if (onProgress && ev?.status) {
          onProgress({ reference, status: ev.status, id: ev.id, current: ev.progressDetail?.current, total: ev.progressDetail?.total });
        }
      },
    );
  });
}

/** The error for an image that is not on the host when pulls are not allowed. */
export function imageNotPresent(reference: string): BackendError {
  return new BackendError(
    `image ${reference} is not present on this Docker host and the pull policy is "never"`,
    'ImageNotFound',
    `docker image inspect ${reference}`,
    'the image is not on this host and pullPolicy is never: build it or `docker load` it on this host, or set pullPolicy to ifNotPresent',
  );
}

/**
 * Find `reference` on the daemon (pulling only as the policy allows) and return the form that is
 * safe to hand Docker: name@sha256:… when the image has a repo digest, else its local ID.
 */
export async function resolveImage(docker: Docker, reference: string, pullPolicy: PullPolicy, onProgress?: (p: PullProgress) => void): Promise<ResolvedImage> {
  let local = pullPolicy === 'always' ? undefined : await inspectLocal(docker, reference);
  if (!local) {
    if (pullPolicy === 'never') throw imageNotPresent(reference);
    await pull(docker, reference, onProgress);
    local = await inspectLocal(docker, reference);
    if (!local) {
      throw new BackendError(`image ${reference} is still missing after a successful pull`, 'ImageNotFound', `docker image inspect ${reference}`);
    }
  }
  return pinnedFrom(reference, local);
}

/**
 * Image resolutions remembered for `ttlMs`, so a resync of 1,000 servers on one image inspects it
 * once. Dropped whenever Docker reports an image event (a tag may now name another image) or the
 * operator commits one; a resolution that was in flight across such a drop is not kept.
 */
export class ImageCache {
  private readonly entries = new Map<string, { p: Promise<ResolvedImage>; at: number }>();
  private generation = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached resolution of `reference`, or `resolve()`'s, shared by concurrent callers. */
  get(reference: string, resolve: () => Promise<ResolvedImage>): Promise<ResolvedImage> {
    const hit = this.entries.get(reference);
    if (hit && this.now() - hit.at <= this.ttlMs) return hit.p;
    const gen = this.generation;
    const p = resolve();
    const entry = { p, at: this.now() };
    this.entries.set(reference, entry);
    p.then(
      () => {
        if (gen !== this.generation && this.entries.get(reference) === entry) this.entries.delete(reference);
      },
      () => {
        if (this.entries.get(reference) === entry) this.entries.delete(reference);
      },
    );
    return p;
  }

  invalidate(): void {
    this.generation++;
    this.entries.clear();
  }
}
