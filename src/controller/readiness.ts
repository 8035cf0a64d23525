/**
 * Whether the converged server is ready, and the status that says so: status.ts judges what Docker
 * shows, and a running server is probed on its URL, except on this process's first look at it when
 * its recorded status already says what an answering server's would (recorded-readiness.ts). The
 * result is the status write planned once, for the reconciler to write.
 */
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import type { Backend, ClusterView, DesiredServer, ObservedServer, ResolvedImage } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import type { BackOff } from './crash-loop.js';
import type { RecordedReadiness } from './recorded-readiness.js';
import type { ServerWrites } from './server-writes.js';
import { observedStatus, probeUrlFor, type StatusOutcome, type StatusWrite } from './status.js';

export interface ReadinessDeps {
  policy: Policy;
  backend: Pick<Backend, 'kind'>;
  /** Whether an HTTP server answers at a loopback URL (any status counts). */
  probe: (url: string) => Promise<boolean>;
  /** When set, a first look at a running server takes its recorded Ready instead of probing (see recorded-readiness.ts). */
  readiness?: Pick<RecordedReadiness, 'firstLook'>;
}

/** What one reconcile found after its Docker write. */
export interface Converged {
  /** Status so far (generation, image, build). */
  status: NotebookServerStatus;
  desired: DesiredServer;
  observed: ObservedServer;
  image: ResolvedImage;
  cluster: ClusterView;
  stopped: boolean;
  /** Observed failed and Docker gave up: when the operator starts it again. */
  backOff?: BackOff;
}

export class Readiness {
  constructor(
    private readonly d: ReadinessDeps,
    private readonly writes: ServerWrites,
    private readonly now: () => string,
  ) {}

  /** `key`: the server's queue key, by which its first look is known. */
  async check(key: string, obj: NotebookServer, old: NotebookServerStatus, c: Converged): Promise<{ outcome: StatusOutcome; write: StatusWrite }> {
    const { policy, backend } = this.d;
    const { desired, observed, stopped } = c;
    const url = probeUrlFor(desired, observed, policy, stopped);
    const observation = {
      obj,
      base: c.status,
      desired,
      observed,
      image: c.image,
      kind: backend.kind,
      policy,
      stopped,
      cluster: c.cluster,
      now: this.now(),
      backOff: c.backOff,
    };
    let outcome = observedStatus({ ...observation, answering: true });
    let write: StatusWrite | undefined;
    if (url) {
      // The record is taken instead of a probe only on the process's first look, and only when the
      // status it would write if the server answers is exactly the one recorded (so the record is of
      // this generation, Docker object, endpoint and restart count, and says Ready). That plan is
      // the write too when the record is taken or the probe finds the server answering.
      const ifAnswering = this.d.readiness?.firstLook(key) ? this.writes.plan(obj, old, outcome.status, outcome.event) : undefined;
      const takeRecord = ifAnswering !== undefined && !ifAnswering.patch;
      if (!takeRecord && !(await this.d.probe(url))) outcome = observedStatus({ ...observation, answering: false });
      else write = ifAnswering;
    }
    return { outcome, write: write ?? this.writes.plan(obj, old, outcome.status, outcome.event) };
  }
}
