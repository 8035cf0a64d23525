/**
 * The operator: informers for NotebookServers and Secrets (all replicas keep warm caches), Lease
 * leader election, and — on the leader only — the rxjs merge of watch events, Docker events and
 * periodic resync into the keyed work queue that drives reconcile(key). Beside the queue: echo
 * suppression (watch events of our own writes) and the progress clock (poll delays of servers on
 * their way). Orphan GC and (optionally) idle culling run beside it.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import { EMPTY, Subscription, auditTime, filter, interval, map, merge, mergeMap, of, share, tap } from 'rxjs';
import { LEASE_STATUS_URL, leaseNameFor } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { Backend } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { createLogger, errorFields, type Logger } from '../log.js';
import { Culler, type CullerStats } from './culling.js';
import { isStopped } from './desired.js';
import { EchoSuppressor } from './echoes.js';
import { ApiEventRecorder, type EventRecorder } from './events.js';
import { OrphanCollector, type GcStats } from './gc.js';
import { NotebookServerInformer, keyOf, type InformerEvent, type InformerStats } from './informer.js';
import { LeaderElector } from './leader.js';
import { registerOperatorMetrics } from './metrics.js';
import { answersHttp } from './netutil.js';
import { ApiObjectWriter } from './object-writer.js';
import { HostPortAllocator } from './ports.js';
import { ProgressClock } from './progress.js';
import { Reconciler, newReconcilerStats, type ReconcilerStats } from './reconciler.js';
import { RecordedReadiness } from './recorded-readiness.js';
import { SecretInformer, serversReferencing } from './secrets.js';
import { RetryLater } from './server-writes.js';
import { SpawnTimer } from './spawn-timer.js';
import { WorkQueue, type Lane, type WorkQueueStats } from './workqueue.js';
import { MemoryAfterBurst, type MemoryAfterBurstOptions, type MemoryAfterBurstStats } from '../memory-after-burst.js';

/** Where the leader-election Lease lives unless told otherwise (the embedded API server creates it at start). */
export const DEFAULT_LEASE_NAMESPACE = 'nbswarm';

export interface OperatorOptions {
  kubeconfig: KubeConfig;
  policy: Policy;
  backend: Backend;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  /** Leader-election identity (default host-pid-random). */
  identity?: string;
  log?: Logger;
  /**
   * Namespace of the Lease (default "nbswarm"): a namespace only the operator's identity may write,
   * never a tenant's, where a hub could hold the Lease and stop every operator.
   */
  leaseNamespace?: string;
  /** Lease name (default nbswarm-operator-<prefix>: operators with different prefixes are independent). */
  leaseName?: string;
  leaseDurationSeconds?: number;
  renewSeconds?: number;
  /** Back-off of the work queue (ms). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Replace the Event recorder (tests). */
  events?: EventRecorder;
  /** Registry for the operator's metrics (default: a new one, as `metricsRegistry`). */
  registry?: Registry;
  /** Where this replica's status page answers; the leader announces it on the Lease (`nbswarm status` reads it). */
  statusUrl?: string;
  /** Replace the HTTP readiness probe (tests whose servers live in another network namespace). */
  probe?: (url: string) => Promise<boolean>;
  /** Give the heap back after each burst of reconciles (memory-after-burst.ts); only where the process runs the operator alone. */
  memoryAfterBurst?: MemoryAfterBurstOptions;
}

export interface OperatorStats {
  leader: boolean;
  /** This replica's leader-election identity. */
  identity: string;
  /** The lease holder as last seen ('' when nobody holds it). */
  leaderIdentity: string;
  queue: WorkQueueStats;
  reconciler: ReconcilerStats;
  informer: InformerStats;
  secretInformer: InformerStats;
  gc: GcStats;
  culler?: CullerStats;
  backendEvents: number;
  /** Watch events skipped as echoes of the operator's own writes. */
  echoesSkipped: number;
  /** Full collections after bursts, when the operator runs them (OperatorOptions.memoryAfterBurst). */
  memoryAfterBurst?: MemoryAfterBurstStats;
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

export async function startOperator(opts: OperatorOptions): Promise<OperatorHandle> {
  const log = opts.log ?? createLogger();
  const { kubeconfig, policy, backend } = opts;
  const identity = opts.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const registry = opts.registry ?? new Registry();
  const informer = new NotebookServerInformer(kubeconfig, log, { namespace: opts.namespace });
  const secrets = new SecretInformer(kubeconfig, log, { namespace: opts.namespace });
  const events = opts.events ?? new ApiEventRecorder(kubeconfig, log, identity);

  const elector = new LeaderElector(
    kubeconfig,
    {
      namespace: opts.leaseNamespace ?? DEFAULT_LEASE_NAMESPACE,
      name: opts.leaseName ?? leaseNameFor(policy.prefix),
      identity,
      annotations: { [LEASE_STATUS_URL]: opts.statusUrl ?? '' },
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
        // The object just changed state in Docker (e.g. the task container started): the next step
        // (task running, server listening) usually follows within milliseconds, so poll from short again.
        if (reasons.includes('docker')) progress.reset(key);
        const result = await reconciler.reconcile(key);
        const spawned = spawns.settle(key, informer.get(key));
        if (spawned) metrics.spawned(spawned);
        return progress.outcome(key, result);
      } finally {
        // Still processing here, so this marks the key dirty: it runs once more afterwards.
        for (const reason of echoes.settle(key)) queue.enqueue(key, reason, 'high');
      }
    },
    onError: (key, err, retryIn) => {
      const fields = errorFields(err, key);
      if (err instanceof RetryLater) log.warn('reconcile will retry', { ...fields, resource: key, retryInMs: retryIn });
      else log.error('reconcile failed', { ...fields, retryInMs: retryIn });
    },
  });
  const gc = new OrphanCollector(backend, informer, log, { prefix: policy.prefix, namespace: opts.namespace });
  const echoes = new EchoSuppressor();
  const progress = new ProgressClock();
  const spawns = new SpawnTimer();
  const readiness = new RecordedReadiness();
  const stats = newReconcilerStats();
  const reconciler = new Reconciler({
    policy,
    backend,
    servers: informer,
    secrets,
    writer: new ApiObjectWriter(kubeconfig, informer, echoes, stats),
    events,
    ports: new HostPortAllocator(policy.hostPortRange),
    probe: opts.probe ?? ((url) => answersHttp(url)),
    readiness,
    gc,
    stats,
  });
  const culler = policy.culling.enabled
    ? new Culler({
        // Its own counts: the culler's writes are not the reconciler's.
        writer: new ApiObjectWriter(kubeconfig, informer, echoes, { statusPatches: 0, metadataPatches: 0 }),
        policy,
        informer,
        events,
        log,
        isLeader: () => leading,
        enqueue: (k, r) => queue.enqueue(k, r, 'high'),
      })
    : undefined;
  let backendEvents = 0;

  const metrics = registerOperatorMetrics(registry, {
    servers: informer,
    leading: () => leading,
    spawns,
    counts: () => ({ statusPatches: stats.statusPatches, dockerWrites: stats.dockerWrites, gcRemoved: gc.s.removed, eventsEmitted: stats.eventsEmitted }),
  });

  // Keys from the API: echoes of our own writes are filtered out; a change to a source server also
  // wakes the dashboards built from it (what controller-runtime's Watches+mapper does).
  const dependents = (obj: NotebookServer) =>
    informer
      .list()
      .filter((o) => o.metadata.namespace === obj.metadata.namespace && o.spec?.source?.server === obj.metadata.name)
      .map((o) => keyOf(o));
  // Lanes: lists and first sight of an object are 'low'; changes to known objects are 'high'.
  const apiLane = (ev: InformerEvent): Lane => (ev.fromList || ev.type === 'added' ? 'low' : 'high');
  const apiKeys$ = informer.events$.pipe(
    tap((ev) => spawns.onEvent(ev)),
    mergeMap((ev) => {
      const reason = `api:${ev.type}`;
      const keys: string[] = [];
      if (echoes.admit(ev, reason, queue.isProcessing(ev.key))) keys.push(ev.key);
      keys.push(...dependents(ev.obj));
      if (ev.type === 'deleted') {
        queue.forget(ev.key);
        echoes.forget(ev.key);
        progress.reset(ev.key);
        readiness.forget(ev.key);
      }
      return of(...keys.map((k) => ({ key: k, reason, lane: apiLane(ev) })));
    }),
  );
  // A Secret that appears, changes or goes wakes every server that references it: those waiting
  // for it start, and running ones are updated (restarted) with the new value at once, so a
  // replaced credential never lingers in a running server until the next resync.
  const secretKeys$ = secrets.events$.pipe(
    mergeMap((ev) => of(...serversReferencing(informer.list(), ev.obj).map((o) => ({ key: keyOf(o), reason: `secret:${ev.type}`, lane: 'high' as Lane })))),
  );
  const dockerEvents$ = backend.events().pipe(
    tap(() => backendEvents++),
    share(),
  );
  const dockerKeys$ = dockerEvents$.pipe(
    // A Swarm node went down, came back or was drained: its servers' tasks move (or stop) without
    // events of their own, so every server on it (or pinned to it) is looked at now.
    mergeMap((ev) => (ev.type === 'node' ? of(...serversOnNode(ev.name)) : of(ev.uid ? informer.keyForUid(ev.uid) : undefined))),
    filter((k): k is string => !!k),
    // A Docker event of a running server (container started or died) is urgent; for a stopped
    // one it is mostly the echo of our own scale-down/create and may wait behind first-time keys.
    map((key) => {
      const obj = informer.get(key);
      return { key, reason: 'docker', lane: (obj && isStopped(obj) ? 'low' : 'high') as Lane };
    }),
  );
  function serversOnNode(hostname: string | undefined): string[] {
    return informer
      .list()
      .filter((o) => hostname === undefined || o.status?.node === hostname || o.status?.backend?.node === hostname)
      .map((o) => keyOf(o));
  }
  // Docker objects whose uid we do not know are orphans (or someone else's): let GC look, debounced.
  const orphanHints$ = dockerEvents$.pipe(
    // Only objects in this operator's name scope can be its orphans; other operators' events are ignored.
    filter((ev) => !!ev.uid && gc.isOrphanHint(ev) && informer.hasSynced() && !informer.keyForUid(ev.uid)),
    auditTime(1000),
  );
  // Deferred image/volume removals become possible when a container goes away; poll slowly too.
  const pendingRetry$ = merge(dockerEvents$.pipe(filter((ev) => ev.action === 'destroy' || ev.action === 'remove')), interval(10_000)).pipe(
    filter(() => gc.s.pending > 0),
    auditTime(500),
  );
  const resync$ = policy.resyncSeconds > 0 ? interval(policy.resyncSeconds * 1000) : EMPTY;

  await Promise.all([informer.start(), secrets.start()]);
  const subs = new Subscription();
  let leaderSubs: Subscription | undefined;
  const leaderWaiters: Array<() => void> = [];
  const startLeading = () => {
    leading = true;
    leaderSubs = new Subscription();
    leaderSubs.add(merge(apiKeys$, secretKeys$, dockerKeys$).subscribe(({ key, reason, lane }) => queue.enqueue(key, reason, lane)));
    leaderSubs.add(
      resync$.subscribe(() => {
        for (const k of informer.keys()) queue.enqueue(k, 'resync', 'low');
        void gc.runOnce();
      }),
    );
    leaderSubs.add(merge(orphanHints$, pendingRetry$).subscribe(() => void gc.runOnce()));
    for (const obj of informer.list()) {
      const key = keyOf(obj);
      // Servers already on their way are timed from their creation.
      spawns.onEvent({ type: 'added', key, obj, fromList: true });
      queue.enqueue(key, 'leader', 'low');
    }
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

  const afterBurst = opts.memoryAfterBurst ? new MemoryAfterBurst(queue, log, opts.memoryAfterBurst) : undefined;

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
      identity,
      leaderIdentity: elector.holder(),
      queue: queue.stats(),
      reconciler: { ...stats, actions: { ...stats.actions } },
      informer: informer.stats(),
      secretInformer: secrets.stats(),
      gc: { ...gc.s },
      culler: culler ? { ...culler.s } : undefined,
      backendEvents,
      echoesSkipped: echoes.skipped,
      memoryAfterBurst: afterBurst ? { ...afterBurst.s } : undefined,
    }),
    stop: () => {
      stopping ??= (async () => {
        stopLeading();
        afterBurst?.stop();
        subs.unsubscribe();
        await queue.shutdown();
        await elector.stop();
        await informer.stop();
        await secrets.stop();
        log.info('operator stopped', { identity });
      })();
      return stopping;
    },
  };
}
