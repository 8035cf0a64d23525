/**
 * core/v1 Events for NotebookServers, with the aggregation kubelet's recorder does: a repeat of
 * the same (object, type, reason, message) bumps `count` and `lastTimestamp` on the existing Event
 * instead of creating a new one, so a retry loop does not flood `kubectl describe`.
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { NotebookServer } from '../api/types.js';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';
import { nowIso } from '../util/time.js';
import { makeApiClient } from './kube.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  emit(obj: NotebookServer, type: EventType, reason: string, message: string): Promise<void>;
  /** Events emitted (created + aggregated), for tests and stats. */
  count(): number;
}

const COMPONENT = 'nbswarm-operator';

export class ApiEventRecorder implements EventRecorder {
  private readonly api: CoreV1Api;
  private readonly seen = new Map<string, { name: string; namespace: string; count: number }>();
  private n = 0;

  constructor(
    kc: KubeConfig,
    private readonly log: Logger,
    private readonly host = 'nbswarm',
  ) {
    this.api = makeApiClient(kc, CoreV1Api);
  }

  count(): number {
    return this.n;
  }

  async emit(obj: NotebookServer, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? 'default';
    const msg = message.slice(0, 1024);
    const aggKey = createHash('sha1').update([obj.metadata.uid, type, reason, msg].join('\0')).digest('hex');
    const now = nowIso();
    this.n++;
    const prev = this.seen.get(aggKey);
    try {
      if (prev) {
        prev.count++;
        try {
          await this.api.patchNamespacedEvent(
            { name: prev.name, namespace: prev.namespace, body: { count: prev.count, lastTimestamp: now } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          return;
        } catch (err) {
          if ((err as { code?: number }).code !== 404) throw err;
          this.seen.delete(aggKey);
        }
      }
      const name = `${obj.metadata.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            uid: obj.metadata.uid,
            resourceVersion: obj.metadata.resourceVersion,
          },
          reason,
          message: msg,
          type,
          count: 1,
          firstTimestamp: now as unknown as Date,
          lastTimestamp: now as unknown as Date,
          source: { component: COMPONENT, host: this.host },
          reportingComponent: COMPONENT,
          reportingInstance: this.host,
        },
      });
      if (this.seen.size > 5000) this.seen.clear();
      this.seen.set(aggKey, { name, namespace, count: 1 });
    } catch (err) {
      // An event is a courtesy: failing to record one must not fail the reconcile.
      this.log.warn('could not record event', { ...errorFields(err, `${namespace}/${obj.metadata.name}`), reason });
    }
  }
}
