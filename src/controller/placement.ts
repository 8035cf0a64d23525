/** Where a server may run (the policy's constraints and placement rules) and, on a multi-node Swarm, the node it is pinned to. Pure. */
import { imageMatchesGlobs } from '../config/image-refs.js';
import type { Policy } from '../config/types.js';

/** Whether one of `globs` matches `image`, both normalised the way Docker reads them. */
function imageMatches(image: string, globs: readonly string[]): boolean {
  return imageMatchesGlobs(image, globs);
}

/** The policy's constraints, then those of every placement rule matching the image and mode (each once). */
export function placementConstraints(image: string, mode: string, policy: Pick<Policy, 'constraints' | 'placementRules'>): string[] {
  const out = [...policy.constraints];
  for (const r of policy.placementRules ?? []) {
    if (r.images && !imageMatches(image, r.images)) continue;
    if (r.modes && !r.modes.includes(mode)) continue;
    for (const c of r.constraints) if (!out.includes(c)) out.push(c);
  }
  return out;
}

export interface PinInput {
  /** More than one Swarm node (pinning means nothing on one). */
  multiNode: boolean;
  /** The server's node-local volumes; none → no pin. */
  volumes: string[];
  /** ANNOTATIONS.node: an admin says where the volumes are. */
  annotation?: string;
  /** The pin its service carries now. */
  current?: string;
  /** status.node: where it ran or was pinned last. */
  recorded?: string;
  /** Where other servers that mount one of the same volumes are pinned (e.g. the user's other named servers). */
  siblings?: string[];
  /** Where Swarm placed its task, when it has no pin yet (a first start). */
  running?: string;
}

/**
 * Which node a server with node-local volumes is pinned to: where its volumes were last seen, or,
 * for volumes that exist nowhere yet, where Swarm placed its first task (a placement-only update:
 * the task keeps running). Undefined: no pin (one node, shared storage, or not placed yet).
 */
export function pinFor(i: PinInput): string | undefined {
  if (!i.multiNode || i.volumes.length === 0) return undefined;
  return i.annotation || i.current || i.recorded || i.siblings?.find(Boolean) || i.running || undefined;
}
