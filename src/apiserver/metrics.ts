import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Request metrics in a private registry, so an operator in the same process keeps its own. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'apiserver_request_total',
    help: 'API requests by verb, resource and code',
    labelNames: ['verb', 'resource', 'code'],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'apiserver_request_duration_seconds',
    help: 'API request latency (watches excluded)',
    labelNames: ['verb'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly watches = new Gauge({ name: 'apiserver_registered_watchers', help: 'Open watch streams', registers: [this.registry] });
  /** kube-apiserver's name for watches ended because their clients did not keep up. */
  readonly terminatedWatchers = new Counter({
    name: 'apiserver_terminated_watchers_total',
    help: 'Watches ended because their clients did not take what was sent (buffer limits or stall)',
    registers: [this.registry],
  });
  readonly refusedConnections = new Counter({
    name: 'apiserver_refused_connections_total',
    help: 'Connections closed unanswered because the server held its most (reason="total") or their client address did (reason="per-client")',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  /** Reads the bytes open watches hold for their clients (set by the server once its watches exist). */
  watchBufferedSource: () => number = () => 0;
  readonly watchBuffered: Gauge = new Gauge({
    name: 'apiserver_watch_buffered_bytes',
    help: 'Bytes open watches hold for clients that have not taken them (a live event shared by several watches counts once)',
    registers: [this.registry],
    collect: (): void => this.watchBuffered.set(this.watchBufferedSource()),
  });
}
