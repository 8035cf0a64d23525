/**
 * Orphan GC: labelled Docker objects whose NotebookServer no longer exists (deleted while the
 * operator was down, finalizer removed by hand, or a half-done create) are removed — never their
 * volumes. This closes kubespawner #95/#697 and dockerspawner #384/#512-style leftovers.
 *
 * Scope: only objects this operator could have made — Docker name starting with the policy prefix
 * (and, for a namespace-scoped operator, in its namespace) — so two operators (or test runs) with
 * different prefixes on one daemon never collect each other's servers. It runs only after the
 * informer's first full list: an empty cache before that would make everything look orphaned.
 */
import { LABELS } from '../api/names.js';
import type { Backend, BackendEvent, ObservedServer } from '../backends/types.js';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';

/** What GC needs to know of the NotebookServers: whether the cache is complete, and which UIDs exist. */
export interface KnownServers {
  hasSynced(): boolean;
  keyForUid(uid: string): string | undefined;
}

export interface GcStats {
  runs: number;
  removed: number;
  errors: number;
  imagesRemoved: number;
  volumesRemoved: number;
  pending: number;
}

export class OrphanCollector {
  readonly s: GcStats = { runs: 0, removed: 0, errors: 0, imagesRemoved: 0, volumesRemoved: 0, pending: 0 };
  private running?: Promise<number>;
  /**
   * Built images and deleteWithServer volumes whose removal Docker refused for now (a Swarm task
   * container or a stopped container still uses them); retried on every pass until they are gone.
   */
  private readonly pendingImages = new Set<string>();
  private readonly pendingVolumes = new Set<string>();

  constructor(
    private readonly backend: Backend,
    private readonly informer: KnownServers,
    private readonly log: Logger,
    private readonly scope: { prefix: string; namespace?: string },
  ) {}

  /** Remove a source-server image now if Docker lets us, else on a later pass. Returns true when gone. */
  async removeImageSoon(ref: string): Promise<boolean> {
    try {
      await this.backend.removeImage(ref);
    } catch (err) {
      this.log.debug('image removal deferred', errorFields(err, ref));
    }
    const gone = await this.backend.resolveImage(ref, 'never').then(
      () => false,
      () => true,
    );
    if (gone) {
      this.s.imagesRemoved++;
      this.pendingImages.delete(ref);
    } else this.pendingImages.add(ref);
    this.s.pending = this.pendingImages.size + this.pendingVolumes.size;
    return gone;
  }

  /** Remove a named volume (only ever one the policy marked deleteWithServer). Returns true when gone. */
  async removeVolumeSoon(name: string): Promise<boolean> {
    try {
      if ((await this.backend.removeVolume(name)) === 'removed') this.s.volumesRemoved++;
      this.pendingVolumes.delete(name);
      return true;
    } catch (err) {
      this.log.debug('volume removal deferred', errorFields(err, name));
      this.pendingVolumes.add(name);
      return false;
    } finally {
      this.s.pending = this.pendingImages.size + this.pendingVolumes.size;
    }
  }

  /**
   * Whether a Docker event about a uid we do not know is worth a GC pass: only objects named with
   * our prefix can be ours to collect. On a shared daemon every other operator's object is such a
   * uid, and a pass per event would be a storm. Events without a name cannot be judged: they count.
   */
  isOrphanHint(ev: BackendEvent): boolean {
    return ev.name === undefined || ev.name.startsWith(`${this.scope.prefix}-`);
  }

  inScope(o: ObservedServer): boolean {
    if (!o.name.startsWith(`${this.scope.prefix}-`)) return false;
    if (this.scope.namespace && o.labels[LABELS.namespace] !== this.scope.namespace) return false;
    return true;
  }

  /** One pass; concurrent callers share the pass in progress. Returns how many objects were removed. */
  runOnce(): Promise<number> {
    if (!this.running) {
      this.running = this.pass().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async pass(): Promise<number> {
    if (!this.informer.hasSynced()) return 0;
    this.s.runs++;
    let removed = 0;
    let managed: ObservedServer[];
    try {
      // The backend's snapshot is kept current by Docker events, and a pass is itself started by
      // one (or by the resync), so it costs no Docker call unless something in scope changed.
      managed = await this.backend.listManaged({ prefix: `${this.scope.prefix}-`, fromCache: true });
    } catch (err) {
      this.s.errors++;
      this.log.warn('orphan GC: could not list managed objects', errorFields(err));
      return 0;
    }
    for (const ref of [...this.pendingImages]) await this.removeImageSoon(ref);
    for (const name of [...this.pendingVolumes]) await this.removeVolumeSoon(name);
    for (const o of managed) {
      if (!this.inScope(o)) continue;
      const uid = o.labels[LABELS.uid];
      if (uid && this.informer.keyForUid(uid)) continue;
      try {
        await this.backend.remove(o);
        removed++;
        this.s.removed++;
        this.log.info('removed orphaned Docker object (its NotebookServer is gone); volumes kept', {
          resource: `${o.labels[LABELS.namespace] ?? '?'}/${o.labels[LABELS.name] ?? '?'}`,
          dockerCall: `remove ${o.kind} ${o.name}`,
          uid,
        });
      } catch (err) {
        this.s.errors++;
        this.log.warn('orphan GC: remove failed', errorFields(err, o.name));
      }
    }
    return removed;
  }
}
