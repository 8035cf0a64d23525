/**
 * The NotebookServers' Events for the status page: list + watch (the operator's reflector) of
 * core/v1 Events whose involvedObject is a NotebookServer, each kept as the few fields the page
 * shows (~300 bytes), so the cache of an hour of Events (the API server's TTL) stays small.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { KIND } from '../api/names.js';
import { Informer, type InformerOptions } from '../controller/informer.js';
import { makeApiClient } from '../controller/kube.js';
import type { Logger } from '../log.js';
import { eventRow, newestEvents, type EventRow } from './model.js';

export interface CachedEvent {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  row: EventRow;
}

const SELECTOR = `involvedObject.kind=${KIND}`;

export class EventsFeed extends Informer<CachedEvent> {
  constructor(kc: KubeConfig, log: Logger, opts: InformerOptions = {}) {
    const api = makeApiClient(kc, CoreV1Api);
    const ns = opts.namespace;
    super(
      kc,
      log,
      {
        what: 'Events',
        watchPath: `${ns ? `/api/v1/namespaces/${encodeURIComponent(ns)}/events` : '/api/v1/events'}?fieldSelector=${encodeURIComponent(SELECTOR)}`,
        listPage: async (limit, cont) => {
          const res = ns
            ? await api.listNamespacedEvent({ namespace: ns, fieldSelector: SELECTOR, limit, _continue: cont })
            : await api.listEventForAllNamespaces({ fieldSelector: SELECTOR, limit, _continue: cont });
          return { items: res.items, resourceVersion: res.metadata?.resourceVersion, continue: res.metadata?._continue };
        },
        transform: (raw: any): CachedEvent => {
          if (raw?.row) return raw as CachedEvent;
          const m = raw?.metadata ?? {};
          return { metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion }, row: eventRow(raw) };
        },
        hint: 'the status page needs list and watch on events',
      },
      opts,
    );
  }

  /** The newest `n` Events, newest first. */
  recent(n: number): EventRow[] {
    return newestEvents(
      this.list().map((e) => e.row),
      n,
    );
  }
}
