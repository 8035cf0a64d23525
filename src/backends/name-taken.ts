/**
 * A Docker name held by an object that is not the server's own. Names come from templates, which
 * are readable rather than provably unique, and an admin may have made an object by hand; the
 * reconciler answers with another name for the new object (desired.ts fallbackDockerName), never
 * by touching the holder.
 */
import { LABELS } from '../api/names.js';
import { BackendError } from './types.js';

export class NameTaken extends BackendError {
  constructor(
    message: string,
    dockerCall: string,
    readonly dockerName: string,
    cause?: unknown,
  ) {
    super(message, 'Conflict', dockerCall, 'the server gets a name with a suffix instead', cause);
    this.name = 'NameTaken';
  }
}

/** The NameTaken error for `name`, saying whose object holds it when its labels tell. */
export function nameTaken(kind: 'service' | 'container', name: string, holderLabels: Record<string, string> | undefined, cause?: unknown): NameTaken {
  const l = holderLabels ?? {};
  const whose = l[LABELS.uid] ? `another server's (namespace ${l[LABELS.namespace] ?? '?'}, ${l[LABELS.name] ?? '?'})` : 'an object nbswarm does not manage';
  return new NameTaken(`the ${kind} name ${name} is held by ${whose}`, `docker ${kind === 'service' ? 'service create' : 'create'} ${name}`, name, cause);
}
