/**
 * Secrets through an informer: env values from secretKeyRef are read from a cache kept by list +
 * watch, not with a GET per reference on every reconcile (that was two GETs per hub-spawned server
 * on every reconcile, also on each 25 ms poll while it started). The cache keeps only each Secret's
 * decoded values.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { NotebookServer } from '../api/types.js';
import type { Logger } from '../log.js';
import { Informer, type InformerOptions } from './informer.js';
import { makeApiClient } from './kube.js';

export interface CachedSecret {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  /** Decoded data (stringData for keys data lacks, as an unmerged object may carry it). */
  values: Record<string, string>;
}

interface RawSecret {
  metadata?: CachedSecret['metadata'];
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  values?: Record<string, string>;
}

/** A Secret as the cache keeps it (a cached one passes through unchanged). */
export function cachedSecret(raw: RawSecret): CachedSecret {
  const m = raw.metadata ?? {};
  const metadata = { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion };
  if (raw.values) return { metadata, values: raw.values };
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw.stringData ?? {})) values[k] = String(v);
  for (const [k, v] of Object.entries(raw.data ?? {})) values[k] = Buffer.from(v, 'base64').toString('utf8');
  return { metadata, values };
}

export class SecretInformer extends Informer<CachedSecret> {
  constructor(kc: KubeConfig, log: Logger, opts: InformerOptions = {}) {
    const api = makeApiClient(kc, CoreV1Api);
    const ns = opts.namespace;
    super(
      kc,
      log,
      {
        what: 'Secrets',
        watchPath: ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets',
        listPage: async (limit, cont) => {
          const res = ns
            ? await api.listNamespacedSecret({ namespace: ns, limit, _continue: cont })
            : await api.listSecretForAllNamespaces({ limit, _continue: cont });
          return { items: res.items, resourceVersion: res.metadata?.resourceVersion, continue: res.metadata?._continue };
        },
        transform: cachedSecret,
        hint: 'the operator needs list and watch on secrets (spec.env[].valueFrom.secretKeyRef)',
      },
      opts,
    );
  }

  /** The decoded values of Secret `namespace/name`, undefined when it does not exist. */
  values(namespace: string, name: string): Record<string, string> | undefined {
    return this.get(`${namespace}/${name}`)?.values;
  }
}

/** The servers in the Secret's namespace whose spec.env or spec.git (credentials) references it. */
export function serversReferencing(servers: Iterable<NotebookServer>, secret: { metadata: { namespace?: string; name?: string } }): NotebookServer[] {
  const out: NotebookServer[] = [];
  for (const o of servers) {
    if (o.metadata.namespace !== secret.metadata.namespace) continue;
    const name = secret.metadata.name;
    if ((o.spec?.env ?? []).some((e) => e.valueFrom?.secretKeyRef?.name === name) || o.spec?.git?.secretName === name) out.push(o);
  }
  return out;
}
