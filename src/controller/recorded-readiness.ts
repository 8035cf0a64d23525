/**
 * Which servers this operator process has looked at, for the readiness probe: the first look at a
 * running server may rely on the Ready its status records instead of probing it, every later look
 * probes. Beside the queue, so reconcile itself stays a function of the caches and Docker.
 *
 * Why: a restarted operator reconciles every server once, and with 1,000 running servers 1,000
 * probes (a TCP connect through Docker's published port each) were most of the time to converge.
 * Nothing is lost by taking the record on that first look: it is taken only when the status the
 * reconcile would write, assuming the server answers, is exactly the one recorded (same generation,
 * Docker object, endpoint and restart count; Ready for them). A server that stopped answering is
 * then found by the next look, as in steady state, where every look probes and a server that hangs
 * right after one is found by the next.
 */
export class RecordedReadiness {
  private readonly looked = new Set<string>();

  /** True the first time it is asked about `key` (in this process, since the key was last forgotten). */
  firstLook(key: string): boolean {
    if (this.looked.has(key)) return false;
    this.looked.add(key);
    return true;
  }

  /** The object is gone: a new one with the same key is looked at afresh. */
  forget(key: string): void {
    this.looked.delete(key);
  }

  get size(): number {
    return this.looked.size;
  }
}
