/**
 * Getting an image built on the machine's daemon into the cluster's registry without changing that
 * daemon's configuration: `docker save` on the machine's daemon streams straight into `docker load`
 * on the manager node, which tags and pushes it (the manager's network reaches the registry, the
 * machine's does not). The result is named by registry digest, the only form a node pulls without
 * ever asking Docker Hub.
 */
import type Docker from 'dockerode';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PushOptions {
  /** Daemon to take the image from; the machine's own (default socket) when absent. */
  source?: Docker;
  /** Repository inside the registry; from the image's name when absent (required for an image ID). */
  repository?: string;
  tag?: string;
  /**
   * Dockerfile instructions that only change the image's configuration, applied on the manager
   * before the push, e.g. ['STOPSIGNAL SIGKILL'] for images whose PID 1 ignores SIGTERM.
   */
  changes?: string[];
}

export interface PushedImage {
  /** What was asked for on the source daemon. */
  source: string;
  sourceId: string;
  /** registry/repository@sha256:… — what a service spec should name. */
  reference: string;
  /** registry/repository:tag — the same image by tag (pulls resolve it through the registry). */
  tagged: string;
  digest: string;
  /** The image ID on the manager (differs from sourceId when `changes` were applied). */
  id: string;
}

const METADATA_INSTRUCTION = /^(STOPSIGNAL|ENV|LABEL|CMD|ENTRYPOINT|USER|WORKDIR|EXPOSE|HEALTHCHECK)\s+[^\n\r]+$/;

/** "reg.example:5000/a/b:1" → {repository: "a/b", tag: "1"}; a leading registry host is dropped. */
export function splitReference(ref: string): { repository: string; tag?: string } {
  if (ref.includes('@')) ref = ref.slice(0, ref.indexOf('@'));
  const parts = ref.split('/');
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) parts.shift();
  const last = parts[parts.length - 1];
  const colon = last.indexOf(':');
  if (colon >= 0) {
    parts[parts.length - 1] = last.slice(0, colon);
    return { repository: parts.join('/'), tag: last.slice(colon + 1) };
  }
  return { repository: parts.join('/') };
}

function follow(docker: Docker, stream: NodeJS.ReadableStream, call: string): Promise<any[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: any[]) => {
      // The daemon reports most failures inside the stream, with HTTP 200.
      const failed = err ?? output?.find((o) => o?.error || o?.errorDetail);
      if (failed) reject(new Error(`${call} failed: ${(failed as any).error ?? (failed as any).errorDetail?.message ?? (failed as Error).message}`));
      else resolve(output ?? []);
    });
  });
}

export async function pushImage(manager: Docker, registry: string, image: string, source: Docker, opts: PushOptions = {}): Promise<PushedImage> {
  const changes = opts.changes ?? [];
  const bad = changes.find((c) => !METADATA_INSTRUCTION.test(c));
  if (bad !== undefined)
    throw new Error(
      `pushImage: ${JSON.stringify(bad)} is not a single-line configuration instruction (STOPSIGNAL, ENV, LABEL, CMD, ENTRYPOINT, USER, WORKDIR, EXPOSE, HEALTHCHECK)`,
    );
  let sourceInfo: { Id: string };
  try {
    sourceInfo = (await source.getImage(image).inspect()) as { Id: string };
  } catch (err) {
    throw new Error(`pushImage: image ${image} is not on the source daemon (${(err as Error).message}); build it first, e.g. images/test/build.sh`);
  }
  const named = image.startsWith('sha256:') ? { repository: undefined, tag: undefined } : splitReference(image);
  const repository = opts.repository ?? named.repository;
  if (!repository || !/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repository)) {
    throw new Error(
      `pushImage: ${JSON.stringify(repository ?? image)} is not a usable repository name; pass opts.repository (lower-case path, e.g. "test/busybox")`,
    );
  }
  const tag = opts.tag ?? named.tag ?? 'latest';
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new Error(`pushImage: ${JSON.stringify(tag)} is not a valid tag`);
  const target = `${registry}/${repository}:${tag}`;

  const saved = (await source.getImage(sourceInfo.Id).get()) as unknown as NodeJS.ReadableStream;
  await follow(manager, (await manager.loadImage(saved, { quiet: true })) as unknown as NodeJS.ReadableStream, `docker load of ${image} on the manager`);
  await manager.getImage(sourceInfo.Id).tag({ repo: `${registry}/${repository}`, tag });

  if (changes.length > 0) {
    const context = mkdtempSync(join(tmpdir(), 'nbsc-build-'));
    try {
      writeFileSync(join(context, 'Dockerfile'), [`FROM ${target}`, ...changes, ''].join('\n'));
      const build = (await manager.buildImage({ context, src: ['Dockerfile'] }, { t: target, rm: true, forcerm: true })) as unknown as NodeJS.ReadableStream;
      await follow(manager, build, `docker build (${changes.join('; ')}) of ${target} on the manager`);
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  }

  const pushed = (await manager.getImage(target).push({ authconfig: {} } as object)) as unknown as NodeJS.ReadableStream;
  const out = await follow(manager, pushed, `docker push ${target}`);
  const digest = out.map((o) => o?.aux?.Digest).find((d): d is string => typeof d === 'string' && d.startsWith('sha256:'));
  if (!digest) throw new Error(`docker push ${target} finished without reporting a digest`);
  const id = ((await manager.getImage(target).inspect()) as { Id: string }).Id;
  return { source: image, sourceId: sourceInfo.Id, reference: `${registry}/${repository}@${digest}`, tagged: target, digest, id };
}
