/**
 * The admission chain (kube's admission.Interface): plugins see every write after the request is
 * decoded and before it is stored. Mutating plugins (`admit`) run first, before the kind's
 * strategy; validating plugins (`validate`) run last, on the object as it would be stored.
 */
import type { User } from '../auth/tokens.js';
import type { ResourceKind } from '../registry/kinds.js';
import type { KubeObject, StoredObject } from '../types.js';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

export interface AdmissionAttributes {
  operation: Operation;
  kind: ResourceKind;
  namespace: string;
  name: string;
  /** '' or 'status'. */
  subresource: string;
  /** The object being written (CREATE, UPDATE). */
  object?: KubeObject;
  /** The stored object (UPDATE, DELETE). */
  oldObject?: StoredObject;
  user: User;
  dryRun: boolean;
}

export interface AdmissionPlugin {
  readonly name: string;
  /** May change `object`, or reject the write by throwing an ApiError. */
  admit?(a: AdmissionAttributes): void;
  /** May only reject the write (throw an ApiError). */
  validate?(a: AdmissionAttributes): void;
}

export class AdmissionChain {
  constructor(private readonly plugins: readonly AdmissionPlugin[]) {}

  admit(a: AdmissionAttributes): void {
    for (const p of this.plugins) p.admit?.(a);
  }

  validate(a: AdmissionAttributes): void {
    for (const p of this.plugins) p.validate?.(a);
  }
}
