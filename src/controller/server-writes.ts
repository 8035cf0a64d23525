/**
 * What a reconcile writes about its server to the API, and counts: status is patched only when it
 * differs from what the object has (a converged reconcile writes nothing), an Event goes out only
 * together with a visible change (no Event spam on resync), and every Docker write is counted for
 * the operator's stats. Every step of a reconcile reports through here, so a failure in any of them
 * reaches the server's status and Events the same way.
 */
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import type { BackendError } from '../backends/types.js';
import type { EventRecorder, EventType } from './events.js';
import type { ObjectWriter } from './object-writer.js';
import type { ReconcileResult } from './progress.js';
import { dockerFailedStatus, failedStatus, forGeneration } from './status-phases.js';
import { planStatusWrite, type EventSpec, type StatusWrite } from './status.js';

/** A failure that has already been written to status; the queue should back off and retry. */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly resource: string,
    readonly dockerCall?: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A step that has written the server's status and ends the reconcile with this result. */
export interface Ended {
  ended: ReconcileResult | void;
}

/** The counts a reconcile's writes keep (the reconciler's stats hold them, with the object writer's). */
export interface WriteTally {
  dockerWrites: number;
  actions: Record<string, number>;
  eventsEmitted: number;
}

export interface ServerWritesDeps {
  writer: ObjectWriter;
  events: EventRecorder;
  stats: WriteTally;
}

export class ServerWrites {
  constructor(
    private readonly d: ServerWritesDeps,
    private readonly now: () => string,
  ) {}

  /** Patch status only when it differs; record the Event only together with a visible change. */
  async writeStatus(obj: NotebookServer, old: NotebookServerStatus, next: NotebookServerStatus, event?: EventSpec): Promise<NotebookServer | undefined> {
    return this.write(obj, this.plan(obj, old, next, event));
  }

  /** What writeStatus would write, for a caller that decides by it before writing (see readiness.ts). */
  plan(obj: NotebookServer, old: NotebookServerStatus, next: NotebookServerStatus, event?: EventSpec): StatusWrite {
    return planStatusWrite(old, forGeneration(next, obj.metadata.generation), event);
  }

  /** Write a planned status patch and its Event; undefined when there is nothing to write or the object is gone. */
  async write(obj: NotebookServer, plan: StatusWrite): Promise<NotebookServer | undefined> {
    if (!plan.patch) return undefined;
    const written = await this.d.writer.patchStatus(obj, plan.patch);
    if (written && plan.event) await this.event(obj, plan.event.type, plan.event.reason, plan.event.message);
    return written;
  }

  /** A refused spec or unusable system user: Failed, one Warning; nothing to retry until something changes. */
  async fail(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus, reason: string, message: string): Promise<void> {
    await this.writeStatus(obj, old, failedStatus(status, reason, message, this.now()), { type: 'Warning', reason, message });
  }

  /** Write a Docker call's failure to the server's status and as a Warning event. */
  async dockerFailed(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus, err: unknown): Promise<void> {
    const e = err as BackendError;
    const msg = `${e.dockerCall && !e.message.startsWith(e.dockerCall) ? e.dockerCall + ': ' : ''}${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`;
    await this.writeStatus(obj, old, dockerFailedStatus(status, e.reason ?? 'DockerError', msg, this.now()), {
      type: 'Warning',
      reason: 'Failed',
      message: msg,
    });
  }

  async event(obj: NotebookServer, type: EventType, reason: string, message: string): Promise<void> {
    this.d.stats.eventsEmitted++;
    await this.d.events.emit(obj, type, reason, message);
  }

  countWrite(what: string): void {
    this.d.stats.dockerWrites++;
    this.d.stats.actions[what] = (this.d.stats.actions[what] ?? 0) + 1;
  }
}
