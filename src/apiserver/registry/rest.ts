/**
 * The generic write path of every stored kind (kube's genericregistry.Store): admission, the
 * server-owned metadata, the kind's strategy, generation, managedFields, optimistic concurrency,
 * finalizers, and storage. Handlers decode requests and call it; it never sees HTTP.
 */
import { randomUUID } from 'node:crypto';
import { jsonEqual } from '../../util/json.js';
import { nowIso } from '../../util/time.js';
import type { AdmissionAttributes, AdmissionChain, Operation } from '../admission/admission.js';
import type { User } from '../auth/tokens.js';
import { alreadyExists, conflict, invalid, requestEntityTooLarge, type GroupResource } from '../errors.js';
import { managersBefore, sameOwnership } from '../fieldmanager/managed.js';
import { FOREGROUND, ORPHAN } from '../gc/owners.js';
import { onlyExisting, recordUpdate } from '../fieldmanager/manager.js';
import { MAX_OBJECT_BYTES } from '../limits.js';
import { AlreadyExistsError, ObjectTooLargeError, type Store } from '../storage/sqlite.js';
import type { Cause, KubeObject, ManagedFieldsEntry, ObjectMeta, StoredObject } from '../types.js';
import { storageApiVersion, type KindVersion, type ResourceKind } from './kinds.js';
import type { WriteContext } from './strategy.js';

/** What a request is about and who sent it: the part of a request the write path and the handlers share. */
export interface RequestTarget {
  kind: ResourceKind;
  version: KindVersion;
  /** The apiVersion the client spoke, the request path's (`v1`, `example.io/v1`); managedFields record it. */
  apiVersion: string;
  namespace: string;
  /** The object's name; a create takes it from the body. */
  name: string;
  /** '' or 'status'. */
  subresource: string;
  user: User;
  /** Warnings for the response's Warning headers. */
  warnings: string[];
}

/** One write as the handler decoded it. */
export interface WriteRequest extends RequestTarget {
  dryRun: boolean;
  /** Strict, Warn or Ignore. */
  fieldValidation: string;
  /** The request's verb (update is a PUT; patch and apply write through update() too). */
  verb?: string;
}

/**
 * Who owns the written fields: an Update by `manager` (managedFields are worked out here, from
 * those the request sets, if any, else the stored ones), or the managedFields server-side apply
 * computed.
 */
export type FieldOwnership = { manager: string } | { applied: ManagedFieldsEntry[] };

/** DeleteOptions.propagationPolicy: what happens to the objects the deleted one owns. */
export type Propagation = 'Foreground' | 'Background' | 'Orphan';

export interface Preconditions {
  uid?: unknown;
  resourceVersion?: unknown;
}

export class RestStore {
  /** `deleted`: told when an object is deleted or starts being deleted (the garbage collector). */
  constructor(
    private readonly storage: Store,
    private readonly admission: AdmissionChain,
    private readonly deleted: () => void = () => undefined,
  ) {}

  /** The stored object, if any. */
  get(kind: ResourceKind, namespace: string, name: string): StoredObject | undefined {
    return this.storage.get(kind.storageKey, kind.namespaced ? namespace : '', name);
  }

  create(req: WriteRequest, obj: KubeObject, fields: FieldOwnership): StoredObject {
    this.admission.admit(this.attributes(req, 'CREATE', obj));
    const next = this.prepare(req, undefined, obj, fields);
    this.admission.validate(this.attributes(req, 'CREATE', next));
    if (req.dryRun) return this.dryRunResult(req.kind, next, undefined);
    const { kind } = req;
    let saved: StoredObject;
    try {
      saved = this.storage.write('ADDED', kind.storageKey, this.namespaceOf(req, next), next.metadata.name!, next);
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw alreadyExists(kind, next.metadata.name!);
      throw storageError(kind, next.metadata.name!, e);
    }
    kind.strategy.afterWrite(saved);
    return saved;
  }

  /** Writes `obj` over `old`; a no-op write keeps `old` (and its resourceVersion), as in kube. */
  update(req: WriteRequest, old: StoredObject, obj: KubeObject, fields: FieldOwnership): StoredObject {
    checkPreconditions(req.kind, old, obj.metadata, req.verb === 'update');
    this.admission.admit(this.attributes(req, 'UPDATE', obj, old));
    const next = this.prepare(req, old, obj, fields);
    this.admission.validate(this.attributes(req, 'UPDATE', next, old));
    if (req.dryRun) return this.dryRunResult(req.kind, next, old);
    const { kind } = req;
    const name = old.metadata.name;
    const ns = this.namespaceOf(req, next);
    if (String(this.storage.resourceVersion(kind.storageKey, ns, name)) !== old.metadata.resourceVersion) throw conflict(kind, name);
    // Nothing changed but when managers last wrote: kube keeps the stored object (and its resourceVersion).
    if (unchanged(old, next)) return old;
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length && !kind.strategy.gracefulDeletion) {
      // The last finalizer is gone: the deletion that was waiting for it completes.
      const gone = this.storage.write('DELETED', kind.storageKey, ns, name, next, old);
      kind.strategy.afterDelete(gone);
      this.deleted();
      return gone;
    }
    let saved: StoredObject;
    try {
      saved = this.storage.write('MODIFIED', kind.storageKey, ns, name, next, old);
    } catch (e) {
      throw storageError(kind, name, e);
    }
    kind.strategy.afterWrite(saved);
    return saved;
  }

  /**
   * Deletes `old`: at once, or by setting deletionTimestamp when finalizers (or the kind) make the
   * deletion wait. Returns the object as the client sees it afterwards.
   */
  delete(req: WriteRequest, old: StoredObject, pre: Preconditions = {}, propagation: Propagation = 'Background'): StoredObject {
    const { kind } = req;
    const name = old.metadata.name;
    if (pre.uid && pre.uid !== old.metadata.uid)
      throw conflict(kind, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(
        kind,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`,
      );
    }
    const attrs = this.attributes({ ...req, name }, 'DELETE', undefined, old);
    this.admission.admit(attrs);
    this.admission.validate(attrs);
    const ns = kind.namespaced ? (old.metadata.namespace ?? '') : '';
    const strategy = kind.strategy;
    // Foreground and orphan deletions wait for the garbage collector, through its finalizers.
    const finalizers = [...(old.metadata.finalizers ?? [])];
    const gcFinalizer = propagation === 'Foreground' ? FOREGROUND : propagation === 'Orphan' ? ORPHAN : undefined;
    if (gcFinalizer && !finalizers.includes(gcFinalizer)) finalizers.push(gcFinalizer);
    if (finalizers.length || strategy.gracefulDeletion) {
      if (old.metadata.deletionTimestamp && finalizers.length === (old.metadata.finalizers?.length ?? 0)) return old;
      const next = structuredClone(old);
      if (finalizers.length) next.metadata.finalizers = finalizers;
      if (!old.metadata.deletionTimestamp) {
        next.metadata.deletionTimestamp = nowIso();
        next.metadata.deletionGracePeriodSeconds = 0;
        // The deletion is a change of the desired state: controllers watching generation see it.
        if ((next.metadata.generation ?? 0) > 0) next.metadata.generation = next.metadata.generation! + 1;
        strategy.prepareForDeletion(next);
      }
      if (req.dryRun) return next;
      const saved = this.storage.write('MODIFIED', kind.storageKey, ns, name, next, old);
      strategy.afterDeletionStarted(saved);
      this.deleted();
      return saved;
    }
    if (req.dryRun) return old;
    const gone = this.storage.write('DELETED', kind.storageKey, ns, name, structuredClone(old), old);
    strategy.afterDelete(gone);
    this.deleted();
    return gone;
  }

  private attributes(req: WriteRequest, operation: Operation, object?: KubeObject, oldObject?: StoredObject): AdmissionAttributes {
    return {
      operation,
      kind: req.kind,
      namespace: req.namespace,
      name: req.name,
      subresource: req.subresource,
      object,
      oldObject,
      user: req.user,
      dryRun: req.dryRun,
    };
  }

  private namespaceOf(req: WriteRequest, obj: KubeObject): string {
    return req.kind.namespaced ? (obj.metadata.namespace ?? '') : '';
  }

  private dryRunResult(kind: ResourceKind, next: KubeObject, old: StoredObject | undefined): StoredObject {
    next.metadata.resourceVersion = old?.metadata.resourceVersion ?? '';
    // A real write is measured by storage as it serialises; a dry run must refuse what that would.
    const bytes = Buffer.byteLength(JSON.stringify(next));
    if (bytes > MAX_OBJECT_BYTES) throw storageError(kind, next.metadata.name ?? '', new ObjectTooLargeError(bytes, MAX_OBJECT_BYTES));
    return next as StoredObject;
  }

  /** The object as it would be stored: normalised, validated, with server-owned fields filled. */
  private prepare(req: WriteRequest, old: StoredObject | undefined, obj: KubeObject, fields: FieldOwnership): KubeObject {
    const { kind, version } = req;
    // The managedFields the request sets, before anything below may replace the object's metadata.
    const requested = obj.metadata.managedFields;
    const metaCauses = old && req.subresource !== 'status' ? metadataUpdateCauses(obj, old) : [];
    let next = kind.toStorage ? kind.toStorage(obj) : obj;
    next.apiVersion = storageApiVersion(kind);
    next.kind = kind.kind;
    // A write to /status changes status and nothing else.
    if (req.subresource === 'status' && old) {
      next = { ...structuredClone(old), status: next.status };
      if (next.status === undefined) delete next.status;
    }
    fillMetadata(next, old, kind);
    const ctx: WriteContext = { kind, version, subresource: req.subresource, fieldValidation: req.fieldValidation, warnings: req.warnings };
    const strategy = kind.strategy;
    if (old) strategy.prepareForUpdate(next, old, ctx);
    else strategy.prepareForCreate(next, ctx);
    const causes = strategy.validate(next, ctx);
    if (old) causes.push(...metaCauses, ...strategy.validateUpdate(next, old, ctx));
    if (causes.length) throw invalid(kind.kind, kind.group, next.metadata.name ?? '', causes);
    strategy.complete(next, old);
    const m = next.metadata;
    if (old && m.generation !== undefined && !jsonEqual(specOf(old, version), specOf(next, version))) m.generation = (old.metadata.generation ?? 0) + 1;
    const managedFields =
      'manager' in fields
        ? recordUpdate(
            old,
            next,
            managersBefore(requested, old?.metadata.managedFields, req.subresource),
            { manager: fields.manager, apiVersion: req.apiVersion, subresource: req.subresource },
            version.schema,
            nowIso(),
          )
        : onlyExisting(fields.applied, next, version.schema);
    if (managedFields.length) next.metadata.managedFields = managedFields;
    else delete next.metadata.managedFields;
    return next;
  }
}

/**
 * kube-apiserver's rules for the metadata of an update (ValidateObjectMetaUpdate and BeforeUpdate):
 * uid is immutable (an update may leave it out), deletionGracePeriodSeconds changes only through a
 * deletion, and no finalizer may be added once the object is being deleted. creationTimestamp,
 * deletionTimestamp and generation are silently kept (fillMetadata).
 */
function metadataUpdateCauses(obj: KubeObject, old: StoredObject): Cause[] {
  const m = obj.metadata;
  const out: Cause[] = [];
  if (m.uid !== undefined && m.uid !== '' && m.uid !== old.metadata.uid) {
    out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(m.uid)}: field is immutable`, field: 'metadata.uid' });
  }
  const grace = old.metadata.deletionGracePeriodSeconds;
  if (grace !== undefined && m.deletionGracePeriodSeconds !== undefined && m.deletionGracePeriodSeconds !== grace) {
    out.push({
      reason: 'FieldValueInvalid',
      message: `Invalid value: ${JSON.stringify(m.deletionGracePeriodSeconds)}: field is immutable; may only be changed via deletion`,
      field: 'metadata.deletionGracePeriodSeconds',
    });
  }
  if (old.metadata.deletionTimestamp) {
    const had = new Set(old.metadata.finalizers ?? []);
    const added = (Array.isArray(m.finalizers) ? m.finalizers : []).filter((f) => !had.has(f));
    if (added.length) {
      out.push({
        reason: 'FieldValueForbidden',
        message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}`,
        field: 'metadata.finalizers',
      });
    }
  }
  return out;
}

/**
 * A resourceVersion the written object carries must be the stored object's, and so must the uid
 * of a PUT body: kube treats them as preconditions, so a client writing over a newer or a
 * recreated object gets 409. (A patch that changes the uid is refused by the metadata rules: 422.)
 */
function checkPreconditions(kind: GroupResource, old: StoredObject, m: ObjectMeta, uidIsPrecondition: boolean): void {
  const name = old.metadata.name;
  if (uidIsPrecondition && m.uid !== undefined && m.uid !== '' && m.uid !== old.metadata.uid) {
    throw conflict(kind, name, `Precondition failed: UID in precondition: ${String(m.uid)}, UID in object meta: ${old.metadata.uid}`);
  }
  if (m.resourceVersion !== undefined && m.resourceVersion !== '' && m.resourceVersion !== old.metadata.resourceVersion) throw conflict(kind, name);
}

/** Storage's refusals as the client sees them. */
function storageError(kind: GroupResource, name: string, e: unknown): unknown {
  if (e instanceof ObjectTooLargeError) {
    return requestEntityTooLarge(
      `${kind.group ? `${kind.resource}.${kind.group}` : kind.resource} "${name}" would be ${e.bytes} bytes as stored; the limit for one object is ${e.limit} bytes`,
    );
  }
  return e;
}

/** Fills the metadata the server owns: kept from `old` on update, new on create. */
function fillMetadata(obj: KubeObject, old: StoredObject | undefined, kind: ResourceKind): void {
  const m = obj.metadata;
  if (old) {
    m.uid = old.metadata.uid;
    m.creationTimestamp = old.metadata.creationTimestamp;
    if (old.metadata.deletionTimestamp) {
      m.deletionTimestamp = old.metadata.deletionTimestamp;
      m.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds ?? 0;
    } else {
      delete m.deletionTimestamp;
      delete m.deletionGracePeriodSeconds;
    }
    if (old.metadata.generation !== undefined) m.generation = old.metadata.generation;
    m.name = old.metadata.name;
    if (kind.namespaced) m.namespace = old.metadata.namespace;
  } else {
    m.uid = randomUUID();
    m.creationTimestamp = nowIso();
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    if (kind.strategy.tracksGeneration) m.generation = 1;
    else delete m.generation;
  }
  delete m.selfLink;
  if (m.labels === null) delete m.labels;
  if (m.annotations === null) delete m.annotations;
}

/** What generation counts: everything but metadata, and but status when status is a subresource. */
function specOf(o: KubeObject, version: KindVersion): Record<string, unknown> {
  const { metadata: _m, status, ...rest } = o;
  return version.statusSubresource ? rest : { ...rest, status };
}

/** Whether a write changes nothing: same content, same owners (kube ignores a change of managedFields timestamps alone). */
function unchanged(old: KubeObject, next: KubeObject): boolean {
  const strip = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, managedFields: undefined, resourceVersion: undefined } });
  return jsonEqual(strip(old), strip(next)) && sameOwnership(old.metadata.managedFields, next.metadata.managedFields);
}
