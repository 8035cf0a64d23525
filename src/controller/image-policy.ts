/** The policy's rules for a server's image: which may run, how it is pulled, when a newer one of its tag is taken. Pure. */
import { ANNOTATIONS } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import { imageMatchesGlobs, sameReference } from '../config/image-refs.js';
import type { Policy } from '../config/types.js';

/**
 * Whether the policy lets servers run `image`: defaultImage always, else a glob of allowedImages,
 * both sides normalised the way Docker reads them (see image-refs.ts). Throws InvalidImageReference.
 */
export function imageAllowed(image: string, policy: Pick<Policy, 'allowedImages' | 'defaultImage'>): boolean {
  if (sameReference(image, policy.defaultImage)) return true;
  return imageMatchesGlobs(image, policy.allowedImages);
}

/**
 * The pull policy for `image`: never for images the policy says are built on this host
 * (localImages), whatever pullPolicy says, so a missing `local/…` image is reported instead of
 * being pulled from Docker Hub, where that name resolves.
 */
export function pullPolicyFor(image: string, policy: Pick<Policy, 'pullPolicy' | 'localImages'>): Policy['pullPolicy'] {
  return imageMatchesGlobs(image, policy.localImages ?? []) ? 'never' : policy.pullPolicy;
}

/** When a running server takes a newer image of its tag: the annotation, else the policy. */
export function imageUpdatesFor(nbs: NotebookServer, policy: Pick<Policy, 'imageUpdates'>): 'onStart' | 'immediate' {
  const a = nbs.metadata.annotations?.[ANNOTATIONS.imageUpdates];
  return a === 'immediate' || a === 'onStart' ? a : (policy.imageUpdates ?? 'onStart');
}
