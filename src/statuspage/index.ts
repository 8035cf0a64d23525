/**
 * The status page of `nbswarm up` / `nbswarm operator`: bound first (so a taken port fails the
 * start), then fed from the running operator's caches.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import type { Backend } from '../backends/types.js';
import { LABELS } from '../api/names.js';
import type { OperatorHandle } from '../controller/operator.js';
import type { Logger } from '../log.js';
import { apiServerTokenCheck, isLoopback, readTokenFile, StatusAuth } from './auth.js';
import { DockerStatsSampler } from './docker-stats.js';
import { EventsFeed } from './events-feed.js';
import { StatusPage } from './server.js';

export { StatusPage } from './server.js';

export interface StatusPageConfig {
  address: string;
  port: number;
  /** Extra accepted tokens (one per line); only used when the address is not loopback. */
  tokenFile?: string;
  tls?: { cert: string; key: string };
  /** The operator's kubeconfig (once known): tokens are checked against its API server. */
  kubeconfig: () => KubeConfig | undefined;
  namespace?: string;
  log: Logger;
}

/** Bind the page (a taken port is an error naming its holder); returns it with its URL. */
export async function startStatusPage(c: StatusPageConfig): Promise<{ page: StatusPage; url: string }> {
  const required = !isLoopback(c.address);
  const auth = new StatusAuth(required, required ? apiServerTokenCheck(c.kubeconfig, c.namespace) : undefined, c.tokenFile ? readTokenFile(c.tokenFile) : []);
  const page = new StatusPage({ address: c.address, port: c.port, auth, log: c.log, tls: c.tls });
  const url = await page.listen();
  return { page, url };
}

export interface FeedInputs {
  operator: OperatorHandle;
  backend: Backend;
  docker?: Docker;
  kubeconfig: KubeConfig;
  namespace?: string;
  dockerReachable: () => Promise<boolean>;
  log: Logger;
}

/** Feed the page from the operator; returns a stop function (for the Events watch). */
export async function feedStatusPage(page: StatusPage, i: FeedInputs): Promise<() => Promise<void>> {
  const events = new EventsFeed(i.kubeconfig, i.log, { namespace: i.namespace });
  await events.start();
  const informer = i.operator.informer;
  let dockerReachable: boolean | null = null;
  const sampler = i.docker
    ? new DockerStatsSampler(i.docker, {
        containers: () => i.backend.listManaged({ fromCache: true }),
        keyOf: (o) => informer.keyForUid(o.labels[LABELS.uid] ?? ''),
      })
    : undefined;
  page.feed.attach({
    servers: informer,
    events,
    health: async () => {
      const s = i.operator.stats();
      dockerReachable = await i.dockerReachable();
      return {
        leader: s.leader,
        leaderIdentity: s.leaderIdentity,
        identity: s.identity,
        queueDepth: s.queue.depth,
        inFlight: s.queue.inFlight,
        delayed: s.queue.delayed,
        reconcilesTotal: s.queue.reconcilesTotal,
        reconcileErrors: s.queue.errorsTotal,
        dockerReachable,
        backend: i.backend.kind,
        servers: s.informer.cached,
        synced: informer.hasSynced(),
      };
    },
    stats: sampler ? () => sampler.sample() : undefined,
  });
  return () => events.stop();
}
