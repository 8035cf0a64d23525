/**
 * What one reconcile writes to Docker, through the backend: the server's object found by its UID
 * (a duplicate removed), converged to the desired server (the backend writes nothing when the spec
 * hash and run state already match), and started again when Docker gave up restarting it. Each
 * write is counted and announced as one Event; a failed Docker call is written to status first.
 */
import { ANNOTATIONS, LABELS } from '../api/names.js';
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import { NameTaken } from '../backends/name-taken.js';
import {
  BackendError,
  type ApplyAction,
  type Backend,
  type DesiredServer,
  type ObservedServer,
  type RegistryAuth,
  type ResolvedImage,
} from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { crashLoopBackOff, type BackOff } from './crash-loop.js';
import { fallbackDockerName, renderDesired } from './desired.js';
import type { Rendered } from './desired-render.js';
import type { HostPortAllocator } from './ports.js';
import type { ServerWrites } from './server-writes.js';

export interface DockerWriteDeps {
  policy: Policy;
  backend: Backend;
  ports: Pick<HostPortAllocator, 'release'>;
}

export class DockerWrites {
  constructor(
    private readonly d: DockerWriteDeps,
    private readonly writes: ServerWrites,
    private readonly now: () => string,
  ) {}

  /** The server's Docker object, if it has one. */
  async findCurrent(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus): Promise<ObservedServer | undefined> {
    let found: ObservedServer[];
    try {
      found = await this.d.backend.find(obj.metadata.uid ?? '');
    } catch (err) {
      // Docker did not answer (or failed) reading this server's object: say so on the server.
      if (err instanceof BackendError) await this.writes.dockerFailed(obj, old, status, err);
      throw err;
    }
    return (await this.dropDuplicates(obj, found))[0];
  }

  /** Converge the Docker object to `rendered.desired`; the desired server it now has (its name may differ) and what Docker shows. */
  async apply(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    rendered: Rendered,
    image: ResolvedImage,
    current: ObservedServer | undefined,
    auth: RegistryAuth | undefined,
  ): Promise<{ desired: DesiredServer; observed: ObservedServer }> {
    const { backend, policy } = this.d;
    const { ctx } = rendered;
    let action: ApplyAction;
    let observed: ObservedServer;
    let drift: string[] | undefined;
    let desired = rendered.desired;
    try {
      try {
        ({ action, observed, drift } = await backend.apply(desired, image, current, { auth }));
      } catch (err) {
        if (!(err instanceof NameTaken) || current) throw err;
        // The template's name is held by an object that is not this server's (another tenant's
        // server whose name renders the same, or one made by hand): never touch it; take the
        // name with a hash of the UID, which this server keeps from now on.
        const name = fallbackDockerName(err.dockerName, obj.metadata.uid ?? '');
        const again = renderDesired(obj, policy, { ...ctx, keep: { name } });
        if (!again.ok) throw err;
        desired = { ...again.desired, stopped: rendered.desired.stopped };
        await this.writes.event(obj, 'Warning', 'NameTaken', `${err.message}; using ${name} instead`);
        ({ action, observed, drift } = await backend.apply(desired, image, current, { auth }));
      }
    } catch (err) {
      await this.writes.dockerFailed(obj, old, status, err);
      throw err;
    }
    // The object's label records the port now: its reservation can go.
    if (ctx.hostPort !== undefined) this.d.ports.release(ctx.hostPort);
    await this.announce(obj, action, observed, drift);
    return { desired, observed };
  }

  /**
   * Docker stopped restarting a failed server (Swarm's restart policy gave up): start it again
   * after a back-off. `backOff` is set while the back-off still runs.
   */
  async restartIfGaveUp(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    observed: ObservedServer,
    stopped: boolean,
  ): Promise<{ observed: ObservedServer; backOff?: BackOff }> {
    if (stopped || (observed.state !== 'failed' && observed.state !== 'rejected')) return { observed };
    const b = crashLoopBackOff(observed, this.d.policy, this.now());
    if (Date.parse(this.now()) < Date.parse(b.at)) return { observed, backOff: b };
    return { observed: await this.restartCrashed(obj, old, status, observed, b) };
  }

  private async restartCrashed(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    observed: ObservedServer,
    b: BackOff,
  ): Promise<ObservedServer> {
    let after: ObservedServer;
    try {
      after = await this.d.backend.restart(observed);
    } catch (err) {
      await this.writes.dockerFailed(obj, old, status, err);
      throw err;
    }
    this.writes.countWrite('restart');
    const why = observed.lastFailure ?? observed.message;
    await this.writes.event(
      obj,
      'Normal',
      'Restarted',
      `started ${this.d.backend.kind} ${observed.name} again after Docker stopped restarting it (back-off ${Math.round(b.delayMs / 1000)} s, attempt ${b.attempt})${why ? `; it had failed: ${why}` : ''}`,
    );
    return after;
  }

  /** One Event (and a counted Docker write) for whatever apply did. */
  private async announce(obj: NotebookServer, action: ApplyAction, observed: ObservedServer, drift?: string[]): Promise<void> {
    if (drift?.length) {
      // Someone changed the Docker object by hand: written back, and said so where people look.
      await this.writes.event(
        obj,
        'Warning',
        'DriftReverted',
        `${this.d.backend.kind} ${observed.name} had been changed outside nbswarm (${drift.join(', ')}); reverted to the spec`,
      );
    }
    const kind = this.d.backend.kind;
    const why = obj.metadata.annotations?.[ANNOTATIONS.stoppedReason];
    const verbs: Partial<Record<ApplyAction, [string, string]>> = {
      created: ['Created', `created ${kind} ${observed.name}`],
      updated: ['Updated', `updated ${kind} ${observed.name} for generation ${obj.metadata.generation}`],
      recreated: ['Updated', `recreated ${kind} ${observed.name} for generation ${obj.metadata.generation}`],
      started: ['Started', `started ${kind} ${observed.name}`],
      stopped: ['Stopped', `stopped ${kind} ${observed.name}${why ? ` (${why})` : ''}; volumes kept`],
      pinned: [
        'Pinned',
        observed.pinNode
          ? `pinned ${kind} ${observed.name} to node ${observed.pinNode}, which holds its volumes`
          : `unpinned ${kind} ${observed.name}: its volumes are shared`,
      ],
      reverted: ['Reverted', `wrote ${kind} ${observed.name} back to the spec of generation ${obj.metadata.generation}`],
    };
    const verb = verbs[action];
    if (!verb) return;
    this.writes.countWrite(action);
    await this.writes.event(obj, 'Normal', verb[0], verb[1]);
  }

  /** More than one object for one UID (a crash between create and label, or a human): keep one. */
  private async dropDuplicates(obj: NotebookServer, found: ObservedServer[]): Promise<ObservedServer[]> {
    if (found.length <= 1) return found;
    const want = obj.metadata.generation;
    const score = (o: ObservedServer) => (o.state === 'running' ? 2 : 0) + (Number(o.labels[LABELS.generation]) === want ? 1 : 0);
    const sorted = [...found].sort((a, b) => score(b) - score(a) || String(a.createdAt ?? '').localeCompare(String(b.createdAt ?? '')));
    for (const extra of sorted.slice(1)) {
      await this.d.backend.remove(extra);
      this.writes.countWrite('removeDuplicate');
      await this.writes.event(obj, 'Warning', 'DuplicateRemoved', `removed duplicate ${extra.kind} ${extra.name} (${extra.id.slice(0, 12)}) for this server`);
    }
    return sorted.slice(0, 1);
  }
}
