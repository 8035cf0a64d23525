/**
 * Garbage collection by ownerReferences, as kube-controller-manager's garbage collector does it,
 * for every stored kind including custom resources:
 * - background (the default): once none of an object's owners exists any more, it is deleted
 *   (with its own finalizers honoured); references to owners that are gone, beside owners that
 *   remain, are removed;
 * - foreground: the owner waits (finalizer `foregroundDeletion`) while its dependents are
 *   deleted, until none with `blockOwnerDeletion: true` is left;
 * - orphan: the owner waits (finalizer `orphan`) while its references are removed from its
 *   dependents, which stay.
 * A pass runs after each deletion (coalesced) and every RESYNC_MS, so work a restart interrupted
 * is picked up.
 */
import { errorFields, type Logger } from '../../log.js';
import { CoalescedPass } from '../../util/coalesced-pass.js';
import { nowIso } from '../../util/time.js';
import type { ResourceKind } from '../registry/kinds.js';
import type { Store } from '../storage/sqlite.js';
import type { StoredObject } from '../types.js';

export const FOREGROUND = 'foregroundDeletion';
export const ORPHAN = 'orphan';

const RESYNC_MS = 30_000;

interface Entry {
  kind: ResourceKind;
  obj: StoredObject;
}

export class GarbageCollector {
  private closed = false;
  private readonly passes: CoalescedPass;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly storage: Store,
    private readonly kinds: () => Iterable<ResourceKind>,
    private readonly log: Logger,
  ) {
    this.passes = new CoalescedPass(
      () => {
        // A pass that changed something may have freed more (a chain of owners): go again.
        for (let i = 0; i < 20 && this.pass(); i++);
      },
      (e) => this.log.warn('garbage collection failed; retrying', errorFields(e, 'garbage collector')),
    );
    this.timer = setInterval(() => this.kick(), RESYNC_MS);
    this.timer.unref();
  }

  /** Schedules a pass (one, however many deletions ask for it meanwhile). */
  kick(): void {
    this.passes.kick();
  }

  close(): void {
    this.closed = true;
    this.passes.close();
    clearInterval(this.timer);
  }

  /** Stored kinds: views over another kind's storage, reviews and Events are not owners nor owned here. */
  private *storedKinds(): Generator<ResourceKind> {
    for (const k of this.kinds()) if (!k.fromStorage && !k.review && !k.unserved && k.storageKey !== '/events') yield k;
  }

  /** One pass over every object; whether it wrote anything. */
  pass(): boolean {
    if (this.closed) return false;
    const { byUid, owned } = this.participants();
    let wrote = false;
    // Owners still waiting for a dependent that blocks them (foreground).
    const blocked = new Set<string>();
    for (const d of owned) {
      const refs = d.obj.metadata.ownerReferences ?? [];
      const live = refs.filter((r) => byUid.has(r.uid));
      const orphaning = live.filter((r) => isWaiting(byUid.get(r.uid)!.obj, ORPHAN));
      const kept = live.filter((r) => !orphaning.includes(r));
      if (kept.length === 0) {
        // No owner left (or only owners that orphan it): background or foreground cascade.
        if (orphaning.length === refs.length) {
          wrote = this.setOwners(d, []) || wrote;
          continue;
        }
        const foreground = live.some((r) => isWaiting(byUid.get(r.uid)!.obj, FOREGROUND));
        if (!d.obj.metadata.deletionTimestamp || (foreground && !d.obj.metadata.finalizers?.includes(FOREGROUND))) {
          wrote = this.delete(d, foreground) || wrote;
        }
        for (const r of refs) if (r.blockOwnerDeletion) blocked.add(r.uid);
        continue;
      }
      const foregroundOwners = kept.filter((r) => isWaiting(byUid.get(r.uid)!.obj, FOREGROUND));
      if (foregroundOwners.length === kept.length) {
        // Every remaining owner is being deleted in the foreground: so is this dependent.
        if (!d.obj.metadata.deletionTimestamp) wrote = this.delete(d, true) || wrote;
        for (const r of refs) if (r.blockOwnerDeletion) blocked.add(r.uid);
        continue;
      }
      // Some owner stays: references to owners that are gone, orphan it or are deleted in the foreground go.
      const solid = kept.filter((r) => !foregroundOwners.includes(r));
      if (solid.length !== refs.length) wrote = this.setOwners(d, solid) || wrote;
    }
    // Owners whose wait is over: orphaning done, or no blocking dependent left.
    for (const e of byUid.values()) {
      const m = e.obj.metadata;
      if (!m.deletionTimestamp || !m.finalizers?.length) continue;
      const done = m.finalizers.filter((f) => f === ORPHAN || (f === FOREGROUND && !blocked.has(m.uid ?? '')));
      // The dependents' references to an orphaning owner were removed above, in this pass.
      if (!done.length) continue;
      wrote = this.removeFinalizers(e, done) || wrote;
    }
    return wrote;
  }

  /**
   * The objects a pass looks at: those with owner references or finalizers (storage keeps their
   * keys), and the owners they refer to, by uid. Most objects are neither, so a pass reads only
   * those (reading every object every resync held the event loop ~1.5 s per 15,000 objects, ~0.1-0.5
   * s once not parsed). An owner outside them is found by the uid after a `"uid":` in the stored
   * texts, read only when some owner is missing; where a text leaves any doubt it is parsed.
   */
  private participants(): { byUid: Map<string, Entry>; owned: Entry[] } {
    const byUid = new Map<string, Entry>();
    const owned: Entry[] = [];
    const add = (kind: ResourceKind, obj: StoredObject) => {
      if (obj.metadata.uid) byUid.set(obj.metadata.uid, { kind, obj });
      if (obj.metadata.ownerReferences?.length) owned.push({ kind, obj });
    };
    for (const kind of this.storedKinds()) for (const obj of this.storage.withOwnersOrFinalizers(kind.storageKey)) add(kind, obj);
    const missing = new Set<string>();
    for (const d of owned) for (const r of d.obj.metadata.ownerReferences ?? []) if (!byUid.has(r.uid)) missing.add(r.uid);
    if (!missing.size) return { byUid, owned };
    for (const kind of this.storedKinds()) {
      for (const row of this.storage.iterateRows(kind.storageKey, null)) {
        if (!mayHaveUid(row.data, missing)) continue;
        const obj = JSON.parse(row.data) as StoredObject;
        // Parsed already as a participant: its entry stays the one in `owned`.
        if (obj.metadata.uid && missing.has(obj.metadata.uid) && !byUid.has(obj.metadata.uid)) byUid.set(obj.metadata.uid, { kind, obj });
      }
    }
    return { byUid, owned };
  }

  /** The stored object now (a pass may have written it). */
  private current(e: Entry): StoredObject | undefined {
    return this.storage.get(e.kind.storageKey, ns(e), e.obj.metadata.name);
  }

  private setOwners(e: Entry, refs: NonNullable<StoredObject['metadata']['ownerReferences']>): boolean {
    const cur = this.current(e);
    if (!cur) return false;
    const next = structuredClone(cur);
    if (refs.length) next.metadata.ownerReferences = refs;
    else delete next.metadata.ownerReferences;
    this.storage.write('MODIFIED', e.kind.storageKey, ns(e), cur.metadata.name, next, cur);
    return true;
  }

  /** Deletes a dependent as a DELETE request would: at once, or by deletionTimestamp when something waits. */
  private delete(e: Entry, foreground: boolean): boolean {
    const cur = this.current(e);
    if (!cur) return false;
    const finalizers = [...(cur.metadata.finalizers ?? [])];
    if (foreground && !finalizers.includes(FOREGROUND)) finalizers.push(FOREGROUND);
    if (!finalizers.length && !e.kind.strategy.gracefulDeletion) {
      const gone = this.storage.write('DELETED', e.kind.storageKey, ns(e), cur.metadata.name, cur, cur);
      e.kind.strategy.afterDelete(gone);
      return true;
    }
    if (cur.metadata.deletionTimestamp && finalizers.length === (cur.metadata.finalizers?.length ?? 0)) return false;
    const next = structuredClone(cur);
    next.metadata.finalizers = finalizers;
    if (!next.metadata.deletionTimestamp) {
      next.metadata.deletionTimestamp = nowIso();
      next.metadata.deletionGracePeriodSeconds = 0;
      if ((next.metadata.generation ?? 0) > 0) next.metadata.generation! += 1;
    }
    const saved = this.storage.write('MODIFIED', e.kind.storageKey, ns(e), cur.metadata.name, next, cur);
    e.kind.strategy.afterDeletionStarted(saved);
    return true;
  }

  private removeFinalizers(e: Entry, done: string[]): boolean {
    const cur = this.current(e);
    if (!cur) return false;
    const finalizers = (cur.metadata.finalizers ?? []).filter((f) => !done.includes(f));
    const next = structuredClone(cur);
    if (finalizers.length) next.metadata.finalizers = finalizers;
    else delete next.metadata.finalizers;
    if (!finalizers.length && !e.kind.strategy.gracefulDeletion) {
      const gone = this.storage.write('DELETED', e.kind.storageKey, ns(e), cur.metadata.name, next, cur);
      e.kind.strategy.afterDelete(gone);
    } else this.storage.write('MODIFIED', e.kind.storageKey, ns(e), cur.metadata.name, next, cur);
    return true;
  }
}

function ns(e: Entry): string {
  return e.kind.namespaced ? (e.obj.metadata.namespace ?? '') : '';
}

/**
 * Whether stored JSON text may be the object with one of `uids`: some `"uid":"…"` in it holds one,
 * or holds an escape (read as a maybe). Stored text is JSON.stringify's: no space after the colon.
 */
function mayHaveUid(text: string, uids: ReadonlySet<string>): boolean {
  const member = '"uid":"';
  for (let i = text.indexOf(member); i >= 0; i = text.indexOf(member, i + 1)) {
    const start = i + member.length;
    const end = text.indexOf('"', start);
    if (end < 0) return true;
    const value = text.slice(start, end);
    if (value.includes('\\') || uids.has(value)) return true;
  }
  return false;
}

/** Whether `o` is being deleted and waits for the garbage collector's `finalizer`. */
function isWaiting(o: StoredObject, finalizer: string): boolean {
  return !!o.metadata.deletionTimestamp && !!o.metadata.finalizers?.includes(finalizer);
}
