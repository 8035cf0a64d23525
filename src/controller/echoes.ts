/**
 * Echo suppression, beside the work queue: which watch events need a reconcile. Every write of
 * the operator (finalizer, cleared stop annotation, status) comes back as a MODIFIED watch event;
 * the reconcile that wrote already acted on that state, so reconciling it again would only cost
 * API and Docker reads (at 1,000 servers, a second reconcile for every status patch).
 *
 * Three rules, in one place:
 *  - needsReconcile: a change to nothing the reconcile reads (status, labels, other tools'
 *    annotations) needs none;
 *  - the resourceVersion a write of ours returned marks its echo, which is skipped (and consumed);
 *  - an event that arrives while its key is being reconciled may be the echo of that very
 *    reconcile's write (the API server can deliver the event before the PATCH response): it is
 *    held until the reconcile ends, when the versions it wrote are known.
 */
import { jsonEqual } from '../util/json.js';
import type { InformerEvent } from './informer.js';
import { KEY_PREFIX } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';

/** Own resourceVersions remembered per key (a reconcile writes at most a few). */
const OWN_RVS_PER_KEY = 8;

/**
 * Only what the reconcile reads calls for one: spec (generation), deletion, finalizers and the
 * operator's own `nbswarm.io/` annotations. Status-only updates (our own patches) and changes to
 * labels or to other tools' annotations (kubectl, Argo CD, a hub's bookkeeping) need none: the
 * reconcile reads neither, so it would only repeat its Docker and API reads (controller-runtime's
 * GenerationChangedPredicate + AnnotationChangedPredicate, narrowed to the annotations it reads).
 */
export function needsReconcile(ev: InformerEvent<NotebookServer>): boolean {
  if (ev.type !== 'modified' || ev.fromList || !ev.old) return true;
  const a = ev.old.metadata;
  const b = ev.obj.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    !sameOwnAnnotations(a.annotations, b.annotations) ||
    !jsonEqual(a.finalizers ?? [], b.finalizers ?? [])
  );
}

/**
 * Whether `a` and `b` hold the same `nbswarm.io/` annotations (the only ones a reconcile reads).
 * Runs for every watch event, so it compares in place instead of building filtered copies.
 */
function sameOwnAnnotations(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  let unmatched = 0;
  for (const k in a) {
    if (!k.startsWith(KEY_PREFIX)) continue;
    if (b[k] !== a[k]) return false;
    unmatched++;
  }
  for (const k in b) if (k.startsWith(KEY_PREFIX)) unmatched--;
  return unmatched === 0;
}

export class EchoSuppressor {
  /** resourceVersions returned by our own writes, per key: their watch events are echoes. */
  private readonly own = new Map<string, string[]>();
  private readonly held = new Map<string, Array<{ rv?: string; reason: string; needed: boolean }>>();
  /** Watch events skipped as echoes of the operator's own writes. */
  skipped = 0;

  /** A write of ours to `key` returned `rv`. */
  remember(key: string, rv: string | undefined): void {
    if (!rv) return;
    const rvs = this.own.get(key) ?? [];
    rvs.push(rv);
    if (rvs.length > OWN_RVS_PER_KEY) rvs.shift();
    this.own.set(key, rvs);
  }

  /** Whether the event of `key` at `rv` is the echo of one of our writes; consumes the entry. */
  private isOwn(key: string, rv: string | undefined): boolean {
    if (!rv) return false;
    const rvs = this.own.get(key);
    const i = rvs?.indexOf(rv) ?? -1;
    if (!rvs || i < 0) return false;
    rvs.splice(i, 1);
    if (rvs.length === 0) this.own.delete(key);
    return true;
  }

  /**
   * Whether a watch event of its key should be queued now. `processing`: the key is being
   * reconciled (the event is then held until settle()).
   */
  admit(ev: InformerEvent<NotebookServer>, reason: string, processing: boolean): boolean {
    const needed = needsReconcile(ev);
    // Every write of ours comes back as a MODIFIED event; matching all of them (not only those
    // needsReconcile passes) also empties the table.
    if (ev.type !== 'modified' || ev.fromList) return needed;
    const rv = ev.obj.metadata.resourceVersion;
    if (this.isOwn(ev.key, rv)) {
      this.skipped++;
      return false;
    }
    if (processing) {
      const held = this.held.get(ev.key) ?? [];
      held.push({ rv, reason, needed });
      this.held.set(ev.key, held);
      return false;
    }
    return needed;
  }

  /** The reconcile of `key` ended: the reasons of held events that were not its echoes and need a reconcile. */
  settle(key: string): string[] {
    const held = this.held.get(key);
    if (!held) return [];
    this.held.delete(key);
    const out: string[] = [];
    for (const h of held) {
      if (this.isOwn(key, h.rv)) this.skipped++;
      else if (h.needed) out.push(h.reason);
    }
    return out;
  }

  /** The object is gone. */
  forget(key: string): void {
    this.own.delete(key);
  }
}
