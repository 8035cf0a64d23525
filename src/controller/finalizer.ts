/**
 * The operator's finalizer on a NotebookServer: put on before anything is written to Docker, so a
 * deleted server's Docker object, built image and deleteWithServer volumes are removed before the
 * object goes from the API; taken off once they are (or once the GC pass has them).
 */
import { FINALIZER, LABELS } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { Backend } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import type { OrphanCollector } from './gc.js';
import type { ObjectWriter } from './object-writer.js';
import type { ServerWrites } from './server-writes.js';
import { terminatingStatus } from './status-phases.js';

/** Attempts (250 ms apart) to remove a deleted server's built image and volumes before the finalizer goes. */
const FINALIZE_ATTEMPTS = 8;

export interface FinalizerDeps {
  policy: Policy;
  backend: Backend;
  writer: ObjectWriter;
  /** Removal of built images / deleteWithServer volumes that may have to wait (see gc.ts). */
  gc: Pick<OrphanCollector, 'removeImageSoon' | 'removeVolumeSoon'>;
}

export class Finalizer {
  constructor(
    private readonly d: FinalizerDeps,
    private readonly writes: ServerWrites,
    private readonly now: () => string,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {}

  /** The object with the finalizer on. */
  async ensure(obj: NotebookServer): Promise<NotebookServer> {
    if (obj.metadata.finalizers?.includes(FINALIZER)) return obj;
    return this.d.writer.patchMetadata(obj, { finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] });
  }

  async finalize(obj: NotebookServer): Promise<void> {
    if (!obj.metadata.finalizers?.includes(FINALIZER)) return;
    const old = obj.status ?? {};
    const terminating = terminatingStatus(old, this.now());
    if (terminating) await this.writes.writeStatus(obj, old, terminating);
    const { backend, policy } = this.d;
    const found = await backend.find(obj.metadata.uid ?? '');
    for (const o of found) {
      await backend.remove(o);
      this.writes.countWrite('remove');
    }
    if (found.length) await this.writes.event(obj, 'Normal', 'Deleted', `removed ${found.map((o) => `${o.kind} ${o.name}`).join(', ')}; volumes kept`);
    // The removed object's containers may linger a moment (Swarm tasks): try briefly, then leave
    // the rest to the GC pass, so the finalizer never blocks on it.
    const built = obj.status?.build?.image;
    const volumes = policy.volumes.some((v) => v.deleteWithServer)
      ? await backend.listVolumes({ [LABELS.deleteWithServer]: 'true', [LABELS.uid]: obj.metadata.uid ?? '' })
      : [];
    for (let i = 0; i < FINALIZE_ATTEMPTS; i++) {
      let done = true;
      if (built) done = (await this.d.gc.removeImageSoon(built)) && done;
      for (const v of volumes) done = (await this.d.gc.removeVolumeSoon(v)) && done;
      if (done) break;
      await this.sleep(250);
    }
    await this.d.writer.patchMetadata(obj, { finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) });
  }
}
