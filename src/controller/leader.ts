/**
 * Lease-based leader election (coordination.k8s.io/v1), after client-go's leaderelection:
 * try to acquire or renew every `renewSeconds`; a lease held by someone else counts as expired
 * only when its record has not changed for `leaseDurationSeconds` by OUR clock (so clock skew
 * between replicas does not matter); updates carry the resourceVersion, so two candidates
 * racing for an expired lease cannot both win (the loser gets 409). A leader that cannot renew
 * for 2/3 of the lease duration steps down before anyone else may take over.
 */
import { CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';
import { makeApiClient } from './kube.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewSeconds?: number;
  /** Annotations the leader keeps on the Lease (e.g. where its status page answers). */
  annotations?: Record<string, string>;
}

/** MicroTime as Kubernetes parses it: RFC 3339 with exactly six fractional digits. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly leader$ = new BehaviorSubject<boolean>(false);
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private observedHolder = '';
  private readonly duration: number;
  private readonly renew: number;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.api = makeApiClient(kc, CoordinationV1Api);
    this.duration = opts.leaseDurationSeconds ?? 15;
    this.renew = opts.renewSeconds ?? 5;
  }

  get isLeader$(): Observable<boolean> {
    return this.leader$.pipe(distinctUntilChanged());
  }

  isLeader(): boolean {
    return this.leader$.value;
  }

  /** The holder of the lease as last read ('' when none), this replica's identity when it leads. */
  holder(): string {
    return this.leader$.value ? this.opts.identity : this.observedHolder;
  }

  start(): void {
    void this.loop();
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.log.warn('leader election: lease update failed', { ...errorFields(err, `lease ${this.opts.namespace}/${this.opts.name}`) });
    }
    if (this.stopped) return;
    if (ok) {
      this.lastRenew = Date.now();
      if (!this.leader$.value) this.log.info('became leader', { identity: this.opts.identity, lease: `${this.opts.namespace}/${this.opts.name}` });
      this.leader$.next(true);
    } else if (this.leader$.value && Date.now() - this.lastRenew > (this.duration * 1000 * 2) / 3) {
      this.log.warn('lost leadership (could not renew the lease in time)', { identity: this.opts.identity });
      this.leader$.next(false);
    }
    // A non-leader polls at the renew interval too; it can only win after the lease expires anyway.
    this.timer = setTimeout(() => void this.loop(), this.renew * 1000);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace, annotations: this.opts.annotations },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.duration,
              acquireTime: microTime() as unknown as Date,
              renewTime: microTime() as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (e) {
        if ((e as { code?: number }).code === 409) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observedHolder = holder;
    const record = `${holder}|${String(spec.renewTime ?? '')}|${spec.leaseTransitions ?? 0}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const leaseSeconds = spec.leaseDurationSeconds ?? this.duration;
    const heldByOther = holder !== '' && holder !== identity;
    if (heldByOther && Date.now() - this.observedAt < leaseSeconds * 1000) return false;
    const now = microTime();
    const changed = holder !== identity;
    const body: V1Lease = {
      ...lease,
      metadata: this.opts.annotations ? { ...lease.metadata, annotations: { ...lease.metadata?.annotations, ...this.opts.annotations } } : lease.metadata,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.duration,
        renewTime: now as unknown as Date,
        acquireTime: (changed ? now : (spec.acquireTime ?? now)) as unknown as Date,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (changed && holder !== '' ? 1 : 0),
      },
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body });
      if (changed) this.log.info('acquired lease', { previousHolder: holder || '(none)' });
      return true;
    } catch (e) {
      if ((e as { code?: number }).code === 409) return false;
      throw e;
    }
  }

  /** Stop campaigning; a leader releases the lease so a successor need not wait for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.leader$.value) {
      this.leader$.next(false);
      try {
        const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
        if (lease.spec?.holderIdentity === this.opts.identity) {
          await this.api.replaceNamespacedLease({
            name: this.opts.name,
            namespace: this.opts.namespace,
            body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() as unknown as Date } },
          });
        }
      } catch {
        // best effort: the lease expires by itself
      }
    }
    this.leader$.complete();
  }
}
