/**
 * Namespace deletion: a terminating namespace is emptied (objects with finalizers get their
 * deletionTimestamp and are waited for), then removed. Survives restarts: the server resumes
 * every sweep whose namespace is still terminating.
 */
import { errorFields, type Logger } from '../../log.js';
import { nowIso } from '../../util/time.js';
import type { ResourceKind } from '../registry/kinds.js';
import type { Store } from '../storage/sqlite.js';

const NAMESPACES = '/namespaces';

export class NamespaceSweeper {
  private readonly sweeping = new Set<string>();
  private closed = false;

  /** `kinds()`: every served kind (namespaced ones are swept). */
  constructor(
    private readonly storage: Store,
    private readonly kinds: () => Iterable<ResourceKind>,
    private readonly log: Logger,
  ) {}

  /** Sweeps every namespace whose deletion a restart interrupted. */
  resume(): void {
    for (const ns of this.storage.iterate(NAMESPACES, '')) if (ns.metadata.deletionTimestamp) this.sweep(ns.metadata.name);
  }

  /** Starts emptying namespace `name` (once; a second call while it runs does nothing). */
  sweep(name: string): void {
    if (this.sweeping.has(name)) return;
    this.sweeping.add(name);
    const run = () => {
      try {
        this.pass(name, run);
      } catch (e) {
        this.log.warn('namespace cleanup failed; retrying', { ...errorFields(e, `namespaces/${name}`) });
        if (!this.closed) setTimeout(run, 1000).unref();
      }
    };
    setImmediate(run);
  }

  close(): void {
    this.closed = true;
  }

  /** Stored kinds that live in namespaces (views over another kind's storage are swept with it). */
  private *namespacedKinds(): Generator<ResourceKind> {
    for (const k of this.kinds()) if (k.namespaced && !k.fromStorage && !k.review) yield k;
  }

  private pass(name: string, again: () => void): void {
    if (this.closed) return;
    const storage = this.storage;
    let left = 0;
    for (const kind of this.namespacedKinds()) {
      for (const o of [...storage.iterate(kind.storageKey, name)]) {
        left++;
        if (o.metadata.finalizers?.length) {
          if (!o.metadata.deletionTimestamp)
            storage.write(
              'MODIFIED',
              kind.storageKey,
              name,
              o.metadata.name,
              { ...o, metadata: { ...o.metadata, deletionTimestamp: nowIso(), deletionGracePeriodSeconds: 0 } },
              o,
            );
        } else storage.write('DELETED', kind.storageKey, name, o.metadata.name, o, o);
      }
    }
    const ns = storage.get(NAMESPACES, '', name);
    if (!ns) {
      this.sweeping.delete(name);
      return;
    }
    const still = [...this.namespacedKinds()].some((k) => storage.hasAny(k.storageKey, name));
    if (!still) {
      storage.write('DELETED', NAMESPACES, '', name, ns, ns);
      this.sweeping.delete(name);
    } else setTimeout(again, left ? 500 : 0).unref();
  }
}
