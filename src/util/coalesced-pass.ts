/**
 * Work that reacts to changes arriving in bursts (deletions, ClusterRole writes): `kick` runs it
 * once on the next turn of the event loop however often it is asked meanwhile, since one pass
 * covers every change before it. A pass that throws is reported and tried again a second later.
 */
export class CoalescedPass {
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly work: () => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.closed) return;
      try {
        this.work();
      } catch (err) {
        this.onError(err);
        setTimeout(() => this.kick(), 1000).unref();
      }
    });
  }

  close(): void {
    this.closed = true;
  }
}
