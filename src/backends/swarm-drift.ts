/**
 * Drift of a Swarm service: where the spec Docker stores differs from the one nbswarm would write
 * now, memoised per service, and ignoring how Docker stored the operator's own last write when it
 * normalised something drift.ts does not know.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { digestOf, WrittenShapes } from './drift.js';
import { ownedServiceSpec, serviceDrift } from './swarm-spec.js';
import type { ObservedServer } from './types.js';

export class ServiceDrift {
  /** ownedServiceSpec per service, for its Swarm version. */
  private readonly ownedSpecs = new Map<string, { key: string; owned: unknown }>();
  /**
   * The last drift computed per service: for the same observed spec (one object per Swarm version,
   * see ownedSpecOf) and the same desired spec (by a digest of its text) it is the same. A server
   * polled while it starts compared unchanged specs ~10 times a second, the costliest step of its
   * reconcile.
   */
  private readonly drifts = new Map<string, { observed: unknown; desired: string; drift: string[] }>();
  /** Specs just written, checked against what Docker stored at the next inspect of the service. */
  private readonly pendingShapes = new Map<string, { spec: any; specHash: string }>();
  private readonly shapes = new WrittenShapes();

  /** ownedServiceSpec of service `s`, computed once per Swarm version of it (an idle resync re-lists unchanged services). */
  ownedSpecOf(s: any): unknown {
    const key = `${s.ID}@${s.Version?.Index ?? ''}`;
    const hit = this.ownedSpecs.get(s.ID);
    if (hit && hit.key === key) return hit.owned;
    const owned = ownedServiceSpec(s.Spec);
    if (this.ownedSpecs.size > 20_000) this.ownedSpecs.clear();
    this.ownedSpecs.set(s.ID, { key, owned });
    return owned;
  }

  /**
   * Where service `current` differs from `spec` (what nbswarm writes now), ignoring how it looked
   * right after the operator's own last write for this spec hash.
   */
  driftOf(current: ObservedServer, spec: any, specHash: string): string[] {
    if (current.observedSpec === undefined) return [];
    const desired = createHash('sha1').update(JSON.stringify(spec)).digest('base64');
    const memo = this.drifts.get(current.id);
    let drift: string[];
    if (memo && memo.observed === current.observedSpec && memo.desired === desired) drift = memo.drift;
    else {
      drift = serviceDrift(current.observedSpec, spec);
      if (this.drifts.size > 20_000) this.drifts.clear();
      this.drifts.set(current.id, { observed: current.observedSpec, desired, drift });
    }
    if (drift.length && this.shapes.isOwnWrite(current.id, specHash, digestOf(current.observedSpec))) return [];
    return drift;
  }

  /**
   * After a write, the stored spec should compare equal to what was written; when the daemon
   * normalised something drift.ts does not know, remember that shape so it is not "reverted"
   * again and again (one log line says what it was).
   */
  rememberShape(id: string, spec: any, specHash: string): void {
    this.pendingShapes.set(id, { spec, specHash });
  }

  /** Compare a service observed right after a write with the spec written (see rememberShape). */
  checkWritten(id: string, obs: ObservedServer, log: Logger | undefined): void {
    const written = this.pendingShapes.get(id);
    if (written) {
      this.pendingShapes.delete(id);
      const left = serviceDrift(obs.observedSpec, written.spec);
      if (left.length) {
        this.shapes.remember(id, written.specHash, digestOf(obs.observedSpec));
        log?.warn('Docker stored a service spec that differs from the one written; not treated as drift', { service: obs.name, paths: left });
      }
    }
  }
}
