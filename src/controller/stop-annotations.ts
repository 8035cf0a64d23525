/**
 * The annotations that stop and start a server without touching its spec, as the reconciler keeps
 * them: a spec changed after a stop clears the stop (the object says "run again"), a start the
 * client stopped waiting for is stopped when its deadline passes, and the deadline goes once the
 * server runs. The culler writes the same stop annotations (culling.ts); the hub writes the deadline.
 */
import { ANNOTATIONS, START_DEADLINE_EXCEEDED } from '../api/names.js';
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import { isStopped } from './desired.js';
import type { ObjectWriter } from './object-writer.js';
import type { ReconcileResult } from './progress.js';
import type { ServerWrites } from './server-writes.js';

export class StopAnnotations {
  constructor(
    private readonly d: { writer: ObjectWriter },
    private readonly writes: ServerWrites,
    private readonly now: () => string,
  ) {}

  /**
   * A start the client stopped waiting for (annotation start-deadline passed, not Ready for this
   * generation) must not run unattended: stop it by annotation, as the culler does, saying why.
   */
  async enforceStartDeadline(obj: NotebookServer): Promise<NotebookServer> {
    const deadline = startDeadline(obj);
    if (deadline === undefined || isStopped(obj) || readyForGeneration(obj) || Date.parse(this.now()) < deadline) return obj;
    const at = obj.metadata.annotations?.[ANNOTATIONS.startDeadline];
    // With the resourceVersion read, so a start written meanwhile (a new deadline) is never stopped.
    const patched = await this.d.writer.patchMetadata(obj, {
      resourceVersion: obj.metadata.resourceVersion,
      annotations: {
        [ANNOTATIONS.stopped]: this.now(),
        [ANNOTATIONS.stoppedGeneration]: String(obj.metadata.generation ?? 0),
        [ANNOTATIONS.stoppedReason]: START_DEADLINE_EXCEEDED,
        [ANNOTATIONS.startDeadline]: null,
      },
    });
    await this.writes.event(
      patched,
      'Warning',
      START_DEADLINE_EXCEEDED,
      `not Ready by its start deadline ${at}, when the client that started it stopped waiting; stopped (volumes kept)`,
    );
    return patched;
  }

  /** A person or GitOps tool changing spec after a cull means "run again" (Kubeflow clears its annotation on start). */
  async clearStaleStop(obj: NotebookServer): Promise<NotebookServer> {
    const a = obj.metadata.annotations ?? {};
    if (a[ANNOTATIONS.stopped] === undefined) return obj;
    const at = Number(a[ANNOTATIONS.stoppedGeneration]);
    if (!Number.isFinite(at) || (obj.metadata.generation ?? 0) <= at) return obj;
    const patched = await this.d.writer.patchMetadata(obj, {
      annotations: { [ANNOTATIONS.stopped]: null, [ANNOTATIONS.stoppedGeneration]: null, [ANNOTATIONS.stoppedReason]: null },
    });
    await this.writes.event(
      patched,
      'Normal',
      'Resumed',
      `spec changed (generation ${obj.metadata.generation}) after the server was stopped by ${a[ANNOTATIONS.stoppedReason] ?? 'annotation'}; starting it again`,
    );
    return patched;
  }

  /** `written`: the object as the status write left it (undefined when status was not written). */
  async clearMetDeadline(obj: NotebookServer, status: NotebookServerStatus, written: NotebookServer | undefined): Promise<void> {
    if (obj.metadata.annotations?.[ANNOTATIONS.startDeadline] !== undefined && status.phase === 'Running') {
      // The start it was waited for is done: a later crash is not a missed start. Conditional on
      // the version read, so the deadline of a newer start is never the one removed.
      const rv = (written ?? obj).metadata.resourceVersion;
      await this.d.writer.patchMetadata(obj, { resourceVersion: rv, annotations: { [ANNOTATIONS.startDeadline]: null } });
    }
  }
}

/** The start deadline (ms since the epoch) a client set on the object, if any. */
function startDeadline(obj: NotebookServer): number | undefined {
  const raw = obj.metadata.annotations?.[ANNOTATIONS.startDeadline];
  if (raw === undefined) return undefined;
  const t = Date.parse(raw);
  return Number.isFinite(t) ? t : undefined;
}

/** Whether the stored status says Ready for the object's current generation. */
function readyForGeneration(obj: NotebookServer): boolean {
  const st = obj.status;
  return st?.observedGeneration === obj.metadata.generation && st?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Look again by the start deadline at the latest, so a start nobody waits for is stopped on time. */
export function withDeadline(obj: NotebookServer, res: ReconcileResult | void, now: number): ReconcileResult | void {
  const deadline = startDeadline(obj);
  if (deadline === undefined || isStopped(obj) || res?.progress !== undefined) return res;
  const untilDeadline = Math.max(0, deadline - now) + 50;
  if (res?.requeueAfterMs !== undefined && res.requeueAfterMs <= untilDeadline) return res;
  return { ...res, requeueAfterMs: untilDeadline };
}
