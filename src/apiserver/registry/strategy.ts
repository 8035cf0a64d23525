/**
 * A kind's strategy (kube's RESTCreateStrategy/RESTUpdateStrategy/RESTDeleteStrategy): what is
 * particular to one kind on the write path. The generic path (registry/rest.ts) fills the
 * server-owned metadata, runs admission, bumps generation, records managedFields and stores; it
 * asks the strategy to normalise, validate and react.
 */
import type { Cause, KubeObject, StoredObject } from '../types.js';
import type { KindVersion, ResourceKind } from './kinds.js';
import { validateMetadata } from './metadata.js';

/** The write a strategy is asked about. */
export interface WriteContext {
  kind: ResourceKind;
  version: KindVersion;
  /** '' or 'status'. */
  subresource: string;
  /** The request's fieldValidation: Strict, Warn (default) or Ignore. */
  fieldValidation: string;
  /** Warnings for the response's Warning headers. */
  warnings: string[];
}

export interface Strategy {
  /** metadata.generation starts at 1 and counts changes to anything but metadata (and status, when it is a subresource). */
  readonly tracksGeneration: boolean;
  /** Deleting always goes through deletionTimestamp, finalizers or not (a namespace empties first). */
  readonly gracefulDeletion: boolean;
  /** Normalises a new object (defaults, derived fields); may throw a 400 for input it cannot read. */
  prepareForCreate(obj: KubeObject, ctx: WriteContext): void;
  /** As prepareForCreate, for a change to `old`. */
  prepareForUpdate(obj: KubeObject, old: StoredObject, ctx: WriteContext): void;
  /** Problems with the object as it would be stored. */
  validate(obj: KubeObject, ctx: WriteContext): Cause[];
  /** Problems with the change from `old` (immutable fields). */
  validateUpdate(obj: KubeObject, old: StoredObject, ctx: WriteContext): Cause[];
  /** Fills what the server computes for a valid object (a CRD's conditions). */
  complete(obj: KubeObject, old: StoredObject | undefined): void;
  /** Changes the object gets when its deletion starts (a namespace turns Terminating). */
  prepareForDeletion(obj: KubeObject): void;
  /** After a stored create or update. */
  afterWrite(saved: StoredObject): void;
  /** After the object is gone from storage. */
  afterDelete(gone: StoredObject): void;
  /** After deletionTimestamp is stored: whatever must happen before the object can go. */
  afterDeletionStarted(obj: StoredObject): void;
}

/**
 * What most kinds do: objects with a status subresource keep their status on writes through the
 * main resource, metadata is checked, nothing else.
 */
export class GenericStrategy implements Strategy {
  readonly tracksGeneration: boolean = false;
  readonly gracefulDeletion: boolean = false;
  /** Whether a create through the main resource drops the status it was sent (status is the controller's). */
  protected readonly dropsStatusOnCreate: boolean = false;
  /** metadata.name rule: a DNS subdomain, or a DNS label (namespaces). */
  protected readonly nameRule: 'subdomain' | 'label' = 'subdomain';

  prepareForCreate(obj: KubeObject, ctx: WriteContext): void {
    if (ctx.version.statusSubresource && ctx.subresource !== 'status' && this.dropsStatusOnCreate) delete obj.status;
    this.normalise(obj, ctx);
  }

  prepareForUpdate(obj: KubeObject, old: StoredObject, ctx: WriteContext): void {
    if (ctx.version.statusSubresource && ctx.subresource !== 'status') {
      if (old.status !== undefined) obj.status = structuredClone(old.status);
      else if (this.dropsStatusOnCreate) delete obj.status;
    }
    this.normalise(obj, ctx);
  }

  /** What a kind does to every object written, created or updated (after the status is settled). */
  protected normalise(_obj: KubeObject, _ctx: WriteContext): void {}

  validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    return validateMetadata(obj, ctx.kind.namespaced, this.nameRule);
  }

  validateUpdate(_obj: KubeObject, _old: StoredObject, _ctx: WriteContext): Cause[] {
    return [];
  }

  complete(_obj: KubeObject, _old: StoredObject | undefined): void {}
  prepareForDeletion(_obj: KubeObject): void {}
  afterWrite(_saved: StoredObject): void {}
  afterDelete(_gone: StoredObject): void {}
  afterDeletionStarted(_obj: StoredObject): void {}
}
