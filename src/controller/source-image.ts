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
  /** The policy does not let this server be built from that source: Failed until spec or policy change. */
  | { refused: { reason: string; message: string } }
  /** `built`: committed by this call; `previous`: the image built before, now replaced. */
  | { image: string; status: NotebookServerStatus; built: boolean; previous?: string };

/** The image reference a build of `obj` from `src` gets: one tag per (source generation, rebuild token). */
export function sourceImageRef(
  obj: NotebookServer,
  src: NotebookServer,
  status: NotebookServerStatus,
  policy: Pick<Policy, 'sourceImages' | 'registry'>,
): { repo: string; tag: string; generation: number } {
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
  // Namespace and name are path components of their own: "a-b" + "c" and "a" + "b-c" never meet.
  const repo = `${registry ? registry.replace(/\/+$/, '') + '/' : ''}${repository}/${ns}/${src.metadata.name}`.toLowerCase().replace(/[^a-z0-9._/:-]/g, '-');
  return { repo, tag, generation };
}

/**
 * The name builds got before namespace and name were separate path components: a server whose
 * status records such a build keeps it (no rebuild, no restart on upgrade).
 */
function legacySourceImageRef(obj: NotebookServer, src: NotebookServer, repo: string, tag: string): string {
  const ns = obj.metadata.namespace ?? 'default';
  const cut = repo.length - `/${ns}/${src.metadata.name}`.length;
  return `${repo.slice(0, cut)}/${ns}-${src.metadata.name}`.toLowerCase().replace(/[^a-z0-9._/:-]/g, '-') + `:${tag}`;
}

/**
 * Whether `obj` may be built from `src`: the same user's servers only, unless the policy lets
 * every server in the namespace be a source (sourceImages.allowOtherUsers). A dashboard made from
 * another user's container would carry that user's installed files and secrets.
 */
export function sourceRefusal(obj: NotebookServer, src: NotebookServer, policy: Pick<Policy, 'sourceImages'>): string | undefined {
  if (policy.sourceImages.allowOtherUsers || src.spec?.user === obj.spec.user) return undefined;
  return `spec.source.server: source server ${src.metadata.name} belongs to user "${src.spec?.user}", not "${obj.spec.user}"; a server can only be built from its own user's servers (policy sourceImages.allowOtherUsers: false)`;
}

/** Commit the source server's container when this server has no image of the current build yet. */
export async function ensureSourceImage(
  d: {
    backend: Backend;
    policy: Pick<Policy, 'sourceImages' | 'registry'>;
    server: (key: string) => NotebookServer | undefined;
    now: () => string;
    auth?: RegistryAuth;
  },
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
  const refusal = sourceRefusal(obj, src, d.policy);
  if (refusal) return { refused: { reason: 'SourceNotAllowed', message: refusal } };
  const { repo, tag, generation } = sourceImageRef(obj, src, status, d.policy);
  const ref = `${repo}:${tag}`;
  // A build under the name of an earlier version counts as this build.
  const current = status.build?.image === ref || status.build?.image === legacySourceImageRef(obj, src, repo, tag) ? status.build!.image! : undefined;
  const previous = status.build?.image && status.build.image !== ref ? status.build.image : undefined;
  if (current) {
    try {
      await d.backend.resolveImage(current, 'never', undefined, { auth: d.auth });
      return { image: current, status, built: false };
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
  await d.backend.commitImage(
    running,
    repo,
    tag,
    {
      ...blank,
      [LABELS.sourceUid]: src.metadata.uid ?? '',
      [LABELS.builtForUid]: obj.metadata.uid ?? '',
      [LABELS.source]: `${ns}/${srcName}`,
      [LABELS.sourceGeneration]: String(generation),
    },
    { auth: d.auth },
  );
  return { image: ref, status: { ...status, build: { image: ref, builtAt: d.now(), sourceGeneration: generation } }, built: true, previous };
}
