/**
 * Whose a named volume is. The operator labels every volume it creates with the namespace, user
 * (and, for per-server volumes, server name) it was made for; a volume that carries another
 * owner's labels is never mounted, whatever name a template renders to. Name templates are
 * readable, not provably injective ("a" + "b-c" and "a-b" + "c" can meet), so this check is what
 * guarantees that tenants never share files.
 */
import { LABELS } from '../api/names.js';
import { BackendError } from './types.js';

const OWNER_LABELS = [LABELS.namespace, LABELS.user, LABELS.servername] as const;

/**
 * Why an existing volume with labels `existing` must not be mounted for an owner described by
 * `wanted` (the labels the operator would create it with), or undefined when it may. A volume
 * without the operator's owner labels (made by an admin, e.g. pre-provisioned) may be mounted.
 */
export function volumeOwnerConflict(existing: Record<string, string> | undefined, wanted: Record<string, string> | undefined): string | undefined {
  if (!existing || !wanted) return undefined;
  for (const key of OWNER_LABELS) {
    const have = existing[key];
    const want = wanted[key];
    if (want === undefined || have === undefined || have === want) continue;
    const who = (l: Record<string, string>) =>
      `namespace ${l[LABELS.namespace] ?? '?'}, user ${l[LABELS.user] ?? '?'}${l[LABELS.servername] ? `, server ${l[LABELS.servername]}` : ''}`;
    return `belongs to ${who(existing)}, not to ${who(wanted)}`;
  }
  return undefined;
}

/** The error for a volume that belongs to someone else: the server fails instead of sharing files. */
export function volumeOwnerError(volume: string, problem: string): BackendError {
  return new BackendError(
    `volume ${volume} ${problem}; it is not mounted`,
    'Conflict',
    `docker volume inspect ${volume}`,
    "two owners render the same volume name: add {namespace} (and {username}) to the policy's volume template, or rename or remove the volume",
  );
}
