/**
 * The operator: one informer (all replicas keep a warm cache), Lease leader election, and — on the
 * leader only — the rxjs merge of watch events, Docker events and periodic resync into the keyed
 * work queue that drives reconcile(key). Orphan GC and (optionally) idle culling run beside it.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge, Registry } from 'prom-client';
import { EMPTY, Subscription, auditTime, filter, interval, map, merge, mergeMap, of, share, tap } from 'rxjs';
import type { NotebookServer } from '../api/types.js';
import type { Backend } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { Culler, type CullerStats } from './culling.js';
import { ApiEventRecorder, type EventRecorder } from './events.js';
import { OrphanCollector, type GcStats } from './gc.js';
import { NotebookServerInformer, keyOf, type InformerEvent, type InformerStats } from './informer.js';
import { LeaderElector } from './leader.js';
import { createLogger, errorFields, type Logger } from '../log.js';
import { Reconciler, RetryLater, isStopped, type ReconcilerStats } from './reconciler.js';
import { jsonEqual } from './status.js';
import { WorkQueue, type Lane, type WorkQueueStats } from './workqueue.js';

export interface OperatorOptions {
  kubeconfig: KubeConfig;
  policy: Policy;
  backend: Backend;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  /** Leader-election identity (default host-pid-random). */
  identity?: string;
  log?: Logger;
  /** Namespace of the Lease (default: `namespace`, else "default"). */
  leaseNamespace?: string;
  /** Lease name (default nbswarm-operator-<prefix>: operators with different prefixes are independent). */
  leaseName?: string;
  leaseDurationSeconds?: number;
  renewSeconds?: number;
  /** Back-off of the work queue (ms). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Replace the Event recorder (tests). */
  events?: EventRecorder;
}

export interface OperatorStats {
  leader: boolean;
  queue: WorkQueueStats;
  reconciler: ReconcilerStats;
  informer: InformerStats;
  gc: GcStats;
  culler?: CullerStats;
  backendEvents: number;
  /** Watch events skipped as echoes of the operator's own writes. */
  echoesSkipped: number;
}

export interface OperatorHandle {
  stop(): Promise<void>;
  stats(): OperatorStats;
  metricsRegistry: Registry;
  informer: NotebookServerInformer;
  queue: WorkQueue;
  gc: OrphanCollector;
  culler?: Culler;
  /** Resolves once this replica leads (immediately after start when it wins the lease). */
  whenLeader(): Promise<void>;
}

/** Status-only updates (our own patches) need no reconcile; spec, metadata and deletion do. */
export function needsReconcile(ev: InformerEvent): boolean {
  if (ev.type !== 'modified' || ev.fromList || !ev.old) return true;
  const a = ev.old.metadata;
  const b = ev.obj.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    !jsonEqual(a.annotations ?? {}, b.annotations ?? {}) ||
    !jsonEqual(a.labels ?? {}, b.labels ?? {}) ||
    !jsonEqual(a.finalizers ?? [], b.finalizers ?? [])
  );
}

export async function startOperator(opts: OperatorOptions): Promise<OperatorHandle> {
  const log = opts.log ?? createLogger();
  const { kubeconfig, policy, backend } = opts;
  const identity = opts.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const registry = new Registry();
  const informer = new NotebookServerInformer(kubeconfig, log, { namespace: opts.namespace });
  const events = opts.events ?? new ApiEventRecorder(kubeconfig, log, identity);

  const elector = new LeaderElector(
    kubeconfig,
    {
      namespace: opts.leaseNamespace ?? opts.namespace ?? 'default',
      name: opts.leaseName ?? `nbswarm-operator-${policy.prefix}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-').slice(0, 63),
      identity,
      leaseDurationSeconds: opts.leaseDurationSeconds,
      renewSeconds: opts.renewSeconds,
    },
    log,
  );
  let leading = false;
  const queue = new WorkQueue({
    concurrency: policy.concurrency,
    baseDelayMs: opts.backoff?.baseMs ?? 200,
    maxDelayMs: opts.backoff?.maxMs ?? 60_000,
    registry,
    metricPrefix: 'nbswarm_workqueue_',
    handler: async (key, reasons) => {
      try {
        // A replica that lost the lease must not write; the new leader resyncs everything.
        if (!leading) return;
        return await reconciler.reconcile(key, reasons);
      } finally {
        settleDeferred(key);
      }
    },
    onError: (key, err, retryIn) => {
      const fields = errorFields(err, key);
      if (err instanceof RetryLater) log.warn('reconcile will retry', { ...fields, resource: key, retryInMs: retryIn });
      else log.error('reconcile failed', { ...fields, retryInMs: retryIn });
    },
  });
  const gc = new OrphanCollector(backend, informer, log, { prefix: policy.prefix, namespace: opts.namespace });
  const reconciler = new Reconciler({ kubeconfig, policy, backend, informer, events, log, gc });
  const culler = policy.culling.enabled
    ? new Culler({ kubeconfig, policy, informer, events, log, isLeader: () => leading, enqueue: (k, r) => queue.enqueue(k, r, 'high') })
    : undefined;
  let backendEvents = 0;
  let echoesSkipped = 0;
  // Watch events that arrive while their key is being reconciled may be echoes of that very
  // reconcile's writes (the API server can deliver the event before the PATCH response); they are
  // held until the reconcile ends, when the resourceVersions it wrote are known.
  const deferred = new Map<string, Array<{ rv?: string; reason: string; needed: boolean }>>();
  const settleDeferred = (key: string) => {
    const held = deferred.get(key);
    if (!held) return;
    deferred.delete(key);
    for (const h of held) {
      if (reconciler.isOwnWrite(key, h.rv)) echoesSkipped++;
      // Still processing here, so this marks the key dirty: it runs once more afterwards.
      else if (h.needed) queue.enqueue(key, h.reason, 'high');
    }
  };

  const collect = (name: string, help: string, fn: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(fn()); } });
  collect('nbswarm_reconciler_status_patches', 'Status patches written', () => reconciler.s.statusPatches);
  collect('nbswarm_reconciler_docker_writes', 'Docker write calls made by reconciles', () => reconciler.s.dockerWrites);
  collect('nbswarm_gc_removed', 'Orphaned Docker objects removed', () => gc.s.removed);
  collect('nbswarm_leader', '1 when this replica holds the lease', () => (leading ? 1 : 0));
  collect('nbswarm_informer_cached', 'NotebookServers in the cache', () => informer.stats().cached);

  // Keys from the API: our own status patches are filtered out; a change to a source server also
  // wakes the dashboards built from it (what controller-runtime's Watches+mapper does).
  const dependents = (obj: NotebookServer) =>
    informer
      .list()
      .filter((o) => o.metadata.namespace === obj.metadata.namespace && o.spec?.source?.server === obj.metadata.name)
      .map((o) => keyOf(o));
  // Lanes: lists and first sight of an object are 'low'; changes to known objects are 'high'.
  const apiLane = (ev: InformerEvent): Lane => (ev.fromList || ev.type === 'added' ? 'low' : 'high');
  const apiKeys$ = informer.events$.pipe(
    mergeMap((ev) => {
      const reason = `api:${ev.type}`;
      const keys: string[] = [];
      const needed = needsReconcile(ev);
      const rv = ev.obj.metadata.resourceVersion;
      // Every write of ours (finalizer, cleared stop annotation, status) comes back as a MODIFIED
      // event; matching all of them (not only those needsReconcile passes) also empties the table.
      if (ev.type !== 'modified' || ev.fromList) {
        if (needed) keys.push(ev.key);
      } else if (reconciler.isOwnWrite(ev.key, rv)) echoesSkipped++;
      else if (queue.isProcessing(ev.key)) {
        const held = deferred.get(ev.key) ?? [];
        held.push({ rv, reason, needed });
        deferred.set(ev.key, held);
      } else if (needed) keys.push(ev.key);
      keys.push(...dependents(ev.obj));
      if (ev.type === 'deleted') {
        queue.forget(ev.key);
        reconciler.forgetKey(ev.key);
      }
      return of(...keys.map((k) => ({ key: k, reason, lane: apiLane(ev) })));
    }),
  );
  const dockerEvents$ = backend.events().pipe(
    tap(() => backendEvents++),
    share(),
  );
  const dockerKeys$ = dockerEvents$.pipe(
    map((ev) => (ev.uid ? informer.keyForUid(ev.uid) : undefined)),
    filter((k): k is string => !!k),
    // A Docker event of a running server (container started or died) is urgent; for a stopped
    // one it is mostly the echo of our own scale-down/create and may wait behind first-time keys.
    map((key) => {
      const obj = informer.get(key);
      return { key, reason: 'docker', lane: (obj && isStopped(obj) ? 'low' : 'high') as Lane };
    }),
  );
  // Docker objects whose uid we do not know are orphans (or someone else's): let GC look, debounced.
  const orphanHints$ = dockerEvents$.pipe(
    // Only objects in this operator's name scope can be its orphans; other operators' events are ignored.
    filter((ev) => !!ev.uid && gc.isOrphanHint(ev) && informer.hasSynced() && !informer.keyForUid(ev.uid)),
    auditTime(1000),
  );
  // Deferred image/volume removals become possible when a container goes away; poll slowly too.
  const pendingRetry$ = merge(
    dockerEvents$.pipe(filter((ev) => ev.action === 'destroy' || ev.action === 'remove')),
    interval(10_000),
  ).pipe(
    filter(() => gc.s.pending > 0),
    auditTime(500),
  );
  const resync$ = policy.resyncSeconds > 0 ? interval(policy.resyncSeconds * 1000) : EMPTY;

  await informer.start();
  const subs = new Subscription();
  let leaderSubs: Subscription | undefined;
  const leaderWaiters: Array<() => void> = [];
  const startLeading = () => {
    leading = true;
    leaderSubs = new Subscription();
    leaderSubs.add(merge(apiKeys$, dockerKeys$).subscribe(({ key, reason, lane }) => queue.enqueue(key, reason, lane)));
    leaderSubs.add(
      resync$.subscribe(() => {
        for (const k of informer.keys()) queue.enqueue(k, 'resync', 'low');
        void gc.runOnce();
      }),
    );
    leaderSubs.add(merge(orphanHints$, pendingRetry$).subscribe(() => void gc.runOnce()));
    for (const k of informer.keys()) queue.enqueue(k, 'leader', 'low');
    void gc.runOnce().catch((err: unknown) => log.warn('orphan GC failed', errorFields(err)));
    culler?.start();
    for (const w of leaderWaiters.splice(0)) w();
  };
  const stopLeading = () => {
    leading = false;
    leaderSubs?.unsubscribe();
    leaderSubs = undefined;
    culler?.stop();
  };
  subs.add(
    elector.isLeader$.subscribe((isLeader) => {
      if (isLeader && !leading) startLeading();
      else if (!isLeader && leading) stopLeading();
    }),
  );
  elector.start();
  log.info('operator started', { identity, backend: backend.kind, namespace: opts.namespace ?? '(all)', prefix: policy.prefix });

  let stopping: Promise<void> | undefined;
  return {
    metricsRegistry: registry,
    informer,
    queue,
    gc,
    culler,
    whenLeader: () => (leading ? Promise.resolve() : new Promise((r) => leaderWaiters.push(r))),
    stats: () => ({
      leader: leading,
      queue: queue.stats(),
      reconciler: reconciler.stats(),
      informer: informer.stats(),
      gc: { ...gc.s },
      culler: culler ? { ...culler.s } : undefined,
      backendEvents,
      echoesSkipped,
    }),
    stop: () => {
      stopping ??= (async () => {
        stopLeading();
        subs.unsubscribe();
        await queue.shutdown();
        await elector.stop();
        await informer.stop();
        log.info('operator stopped', { identity });
      })();
      return stopping;
    },
  };
}
