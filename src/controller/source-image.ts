/**
 * Dashboards built from another server's container (spec.source.server), as cdsdashboards'
 * DockerBuilder did: the source server's running container is committed once per (source
 * generation, rebuild token) and this server runs the result.
 */
import { createHash } from 'node:crypto';
import { ANNOTATIONS, LABELS } from '../api/names.js';
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import { BackendError, type Backend, type RegistryAuth } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import type { EventSpec } from './status.js';

export interface SourceWait {
  reason: string;
  message: string;
  requeueMs: number;
  event?: EventSpec;
}

export type SourceImageResult =
  | { wait: SourceWait }
  /** `built`: committed by this call; `previous`: the image built before, now replaced. */
  | { image: string; status: NotebookServerStatus; built: boolean; previous?: string };

/** The image reference a build of `obj` from `src` gets: one tag per (source generation, rebuild token). */
export function sourceImageRef(obj: NotebookServer, src: NotebookServer, status: NotebookServerStatus, policy: Pick<Policy, 'sourceImages' | 'registry'>): { repo: string; tag: string; generation: number } {
  const ns = obj.metadata.namespace ?? 'default';
  // The source's generation is snapshotted at the first build: later edits of the source server
  // do not rebuild (that would silently change a published dashboard); an explicit bump of
  // spec.source.generation or a new value of the rebuild annotation does.
  const generation = obj.spec.source?.generation ?? status.build?.sourceGeneration ?? src.metadata.generation ?? 1;
  const token = obj.metadata.annotations?.[ANNOTATIONS.rebuild];
  const tag = `g${generation}${token ? `-r${createHash('sha1').update(token).digest('hex').slice(0, 8)}` : ''}`;
  const { repository } = policy.sourceImages;
  // Pushed to the policy's registry unless sourceImages names another (several nodes must pull it).
  const registry = policy.sourceImages.registry ?? policy.registry?.address;
  const repo = `${registry ? registry.replace(/\/+$/, '') + '/' : ''}${repository}/${ns}-${src.metadata.name}`.toLowerCase().replace(/[^a-z0-9._/:-]/g, '-');
  return { repo, tag, generation };
}

/** Commit the source server's container when this server has no image of the current build yet. */
export async function ensureSourceImage(
  d: { backend: Backend; policy: Pick<Policy, 'sourceImages' | 'registry'>; server: (key: string) => NotebookServer | undefined; now: () => string; auth?: RegistryAuth },
  obj: NotebookServer,
  status: NotebookServerStatus,
): Promise<SourceImageResult> {
  const ns = obj.metadata.namespace ?? 'default';
  const srcName = obj.spec.source?.server ?? '';
  const field = 'spec.source.server';
  if (srcName === obj.metadata.name) {
    return { wait: { reason: 'InvalidSource', message: `${field}: a server cannot be built from itself`, requeueMs: 60_000 } };
  }
  const src = d.server(`${ns}/${srcName}`);
  if (!src) {
    const message = `${field}: source server ${ns}/${srcName} not found`;
    return { wait: { reason: 'SourceNotFound', message, requeueMs: 5000, event: { type: 'Warning', reason: 'SourceNotFound', message } } };
  }
  const { repo, tag, generation } = sourceImageRef(obj, src, status, d.policy);
  const ref = `${repo}:${tag}`;
  const previous = status.build?.image && status.build.image !== ref ? status.build.image : undefined;
  if (status.build?.image === ref) {
    try {
      await d.backend.resolveImage(ref, 'never', undefined, { auth: d.auth });
      return { image: ref, status, built: false };
    } catch (err) {
      if (!(err instanceof BackendError) || err.reason !== 'ImageNotFound') throw err;
      // The image vanished (pruned by hand): build it again.
    }
  }
  const running = (await d.backend.find(src.metadata.uid ?? '')).find((o) => o.state === 'running' && o.containerId);
  if (!running) {
    return { wait: { reason: 'WaitingForSource', message: `waiting for source server ${srcName} to run so its container can be committed`, requeueMs: 3000 } };
  }
  // Every nbswarm.io label inherited from the source container is blanked, so containers made
  // from this image are never mistaken for the source server's (find and GC work by label).
  const blank = Object.fromEntries(Object.values(LABELS).map((l) => [l, '']));
  await d.backend.commitImage(running, repo, tag, {
    ...blank,
    [LABELS.sourceUid]: src.metadata.uid ?? '',
    [LABELS.builtForUid]: obj.metadata.uid ?? '',
    [LABELS.source]: `${ns}/${srcName}`,
    [LABELS.sourceGeneration]: String(generation),
  }, { auth: d.auth });
  return { image: ref, status: { ...status, build: { image: ref, builtAt: d.now(), sourceGeneration: generation } }, built: true, previous };
}
