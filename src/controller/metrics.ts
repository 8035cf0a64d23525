/**
 * The operator's Prometheus metrics besides the work queue's own (workqueue.ts) and Docker's
 * (backends/docker-metrics.ts). Gauges read the caches when scraped, so a scrape costs no API or
 * Docker call. Fleet gauges come from the informer's cache on every replica; what only the leader
 * knows (spawn times) only the leader reports, so summing over replicas never double-counts.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { NotebookServer } from '../api/types.js';
import type { SpawnObservation, SpawnTimer } from './spawn-timer.js';

export const PHASES = ['Pending', 'Creating', 'Running', 'Stopping', 'Stopped', 'Failed', 'Terminating'] as const;

export interface OperatorMetricSources {
  servers: { list(): NotebookServer[]; get(key: string): NotebookServer | undefined };
  leading(): boolean;
  spawns: SpawnTimer;
  counts(): { statusPatches: number; dockerWrites: number; gcRemoved: number; eventsEmitted: number };
}

export interface OperatorMetrics {
  /** Record a finished spawn (the leader's queue calls this after a reconcile). */
  spawned(o: SpawnObservation): void;
}

export function registerOperatorMetrics(registry: Registry, src: OperatorMetricSources): OperatorMetrics {
  const registers = [registry];
  const fromCount = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        // The count lives in the reconciler's stats (monotonic); the counter shows it when scraped.
        this.reset();
        this.inc(read());
      },
    });
  fromCount('nbswarm_reconciler_status_patches_total', 'Status patches written by reconciles', () => src.counts().statusPatches);
  fromCount(
    'nbswarm_reconciler_docker_writes_total',
    'Docker writes (create, update, scale, remove, commit) made by reconciles',
    () => src.counts().dockerWrites,
  );
  fromCount('nbswarm_reconciler_events_total', 'Kubernetes Events recorded by reconciles', () => src.counts().eventsEmitted);
  fromCount('nbswarm_gc_removed_total', 'Orphaned Docker objects removed', () => src.counts().gcRemoved);
  new Gauge({
    name: 'nbswarm_leader',
    help: '1 when this replica holds the leader lease',
    registers,
    collect() {
      this.set(src.leading() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nbswarm_informer_cached',
    help: 'NotebookServers in the cache',
    registers,
    collect() {
      this.set(src.servers.list().length);
    },
  });

  new Gauge({
    name: 'nbswarm_notebookservers',
    help: 'NotebookServers by status.phase (Unknown: no status yet)',
    labelNames: ['phase'],
    registers,
    collect() {
      const counts = new Map<string, number>([...PHASES, 'Unknown'].map((p) => [p, 0]));
      for (const o of src.servers.list()) {
        const p = o.status?.phase ?? 'Unknown';
        counts.set(p, (counts.get(p) ?? 0) + 1);
      }
      for (const [phase, n] of counts) this.set({ phase }, n);
    },
  });

  const spawn = new Histogram({
    name: 'nbswarm_spawn_duration_seconds',
    help: 'From a NotebookServer created (trigger="create") or told to start (trigger="start") to its Ready condition True',
    labelNames: ['trigger'],
    buckets: [0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300],
    registers,
  });
  new Gauge({
    name: 'nbswarm_notebookserver_starting_seconds',
    help: 'Seconds since each server still on its way (phase Pending or Creating) began to start; leader only',
    labelNames: ['namespace', 'name'],
    registers,
    collect() {
      this.reset();
      if (!src.leading()) return;
      for (const s of src.spawns.starting((k) => src.servers.get(k))) {
        const [namespace, name] = s.key.split('/');
        this.set({ namespace: namespace ?? '', name: name ?? '' }, Math.round(s.seconds * 10) / 10);
      }
    },
  });

  return { spawned: (o) => spawn.observe({ trigger: o.trigger }, o.seconds) };
}
