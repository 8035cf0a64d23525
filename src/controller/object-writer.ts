/**
 * Writes to NotebookServers, as the reconciler needs them: a merge patch of metadata (finalizer,
 * annotations) or of the status subresource. The interface lets unit tests keep objects in memory;
 * the real writer patches through the API, puts the answer into the informer's cache (so the next
 * reconcile does not act on a stale copy before the watch event arrives) and tells echo
 * suppression the resourceVersion it wrote (so that watch event is not reconciled again).
 */
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { EchoSuppressor } from './echoes.js';
import { keyOf, type Informer } from './informer.js';
import { makeApiClient } from './kube.js';

export interface ObjectWriter {
  /** Merge-patch metadata; returns the object as written. */
  patchMetadata(obj: NotebookServer, metadata: Record<string, unknown>): Promise<NotebookServer>;
  /** Merge-patch status; undefined when the object is gone (404). */
  patchStatus(obj: NotebookServer, status: Record<string, unknown>): Promise<NotebookServer | undefined>;
}

export interface WriteCounts {
  statusPatches: number;
  metadataPatches: number;
}

export class ApiObjectWriter implements ObjectWriter {
  private readonly api: CustomObjectsApi;

  constructor(
    kc: KubeConfig,
    private readonly cache: Pick<Informer<NotebookServer>, 'observeWrite'>,
    private readonly echoes: Pick<EchoSuppressor, 'remember'>,
    private readonly counts: WriteCounts,
  ) {
    this.api = makeApiClient(kc, CustomObjectsApi);
  }

  async patchMetadata(obj: NotebookServer, metadata: Record<string, unknown>): Promise<NotebookServer> {
    const res = (await this.api.patchNamespacedCustomObject(
      { ...this.target(obj), body: { metadata } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as NotebookServer;
    this.counts.metadataPatches++;
    return this.written(res);
  }

  async patchStatus(obj: NotebookServer, status: Record<string, unknown>): Promise<NotebookServer | undefined> {
    let res: NotebookServer;
    try {
      res = (await this.api.patchNamespacedCustomObjectStatus(
        { ...this.target(obj), body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as NotebookServer;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
    this.counts.statusPatches++;
    return this.written(res);
  }

  private target(obj: NotebookServer) {
    return { group: GROUP, version: VERSION, plural: PLURAL, namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name ?? '' };
  }

  private written(res: NotebookServer): NotebookServer {
    const full = { ...res, apiVersion: API_VERSION, kind: KIND } as NotebookServer;
    this.echoes.remember(keyOf(full), full.metadata.resourceVersion);
    this.cache.observeWrite(full);
    return full;
  }
}
