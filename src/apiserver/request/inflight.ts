/**
 * Requests in progress per user (kube's max-requests-inflight filter, per user rather than per
 * server: one token cannot take the server's whole capacity). Watches count apart: they stay open
 * for as long as the client wants, so they have their own allowance.
 */
import { tooManyRequests } from '../errors.js';

export class InflightLimiter {
  private readonly requests = new Map<string, number>();
  private readonly watches = new Map<string, number>();

  constructor(
    private readonly maxRequests: number,
    private readonly maxWatches: number,
  ) {}

  /** Counts a request of `user` in; throws 429 past the allowance. The returned function counts it out (once). */
  enter(user: string, watch: boolean): () => void {
    const counts = watch ? this.watches : this.requests;
    const max = watch ? this.maxWatches : this.maxRequests;
    const n = counts.get(user) ?? 0;
    if (n >= max) {
      throw tooManyRequests(
        watch ? `user "${user}" has ${n} watches open, the most one user may have` : `user "${user}" has ${n} requests in progress, the most one user may have`,
      );
    }
    counts.set(user, n + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const m = (counts.get(user) ?? 1) - 1;
      if (m > 0) counts.set(user, m);
      else counts.delete(user);
    };
  }

  /** Requests (or watches) `user` has in progress. */
  inflight(user: string, watch = false): number {
    return (watch ? this.watches : this.requests).get(user) ?? 0;
  }
}
