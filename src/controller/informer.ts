/**
 * List + watch of one kind with a local cache, in the manner of client-go's reflector:
 * list once (cache := items, remember resourceVersion), watch from that version, resume from the
 * last version seen after a dropped connection, relist on 410 Gone, reconnect with back-off on any
 * other error. It never throws into the process: a watch error is logged and retried, because an
 * operator that exits on a watch hiccup (a common complaint about TS Kubernetes clients) stops
 * converging exactly when it is needed.
 *
 * client-node's makeInformer was not used: its ListWatch stops on errors and leaves restarting to
 * the caller, and its cache is keyed differently; this file is the small reflector we need.
 */
import { CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import { Subject, type Observable } from 'rxjs';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';
import { makeApiClient } from './kube.js';

export type InformerEventType = 'added' | 'modified' | 'deleted';

export interface InformerEvent<T extends KubeObject = NotebookServer> {
  type: InformerEventType;
  key: string;
  obj: T;
  old?: T;
  /** true when the event comes from a (re)list rather than a watch event. */
  fromList?: boolean;
}

export interface KubeObject {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface ListPage {
  items: unknown[];
  resourceVersion?: string;
  continue?: string;
}

/** What one informer lists and watches. */
export interface InformerSource<T extends KubeObject> {
  /** Plural for log lines ("NotebookServers"). */
  what: string;
  /** The collection URL watched. */
  watchPath: string;
  /** One page of the list. */
  listPage(limit: number, cont: string | undefined): Promise<ListPage>;
  /** What the cache keeps of a listed or watched object. */
  transform(raw: any): T;
  /** Said when the list fails (RBAC, a missing CRD). */
  hint: string;
}

export interface InformerOptions {
  /** Watch only this namespace (default: all). */
  namespace?: string;
  watchTimeoutSeconds?: number;
  pageSize?: number;
}

export function keyOf(obj: { metadata: { namespace?: string; name?: string } }): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
}

export interface InformerStats {
  lists: number;
  /** List requests (a list of more than one page is several). */
  listPages: number;
  watchesStarted: number;
  watchErrors: number;
  relistsOn410: number;
  events: number;
  resourceVersion?: string;
  cached: number;
}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly uidIndex = new Map<string, string>();
  private readonly subject = new Subject<InformerEvent<T>>();
  private readonly watcher: Watch;
  private abort?: AbortController;
  private stopped = false;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private resourceVersion?: string;
  private backoffMs = 0;
  private retryTimer?: NodeJS.Timeout;
  private readonly s: InformerStats = { lists: 0, listPages: 0, watchesStarted: 0, watchErrors: 0, relistsOn410: 0, events: 0, cached: 0 };

  constructor(
    kc: KubeConfig,
    protected readonly log: Logger,
    private readonly source: InformerSource<T>,
    private readonly opts: InformerOptions = {},
  ) {
    this.watcher = new Watch(kc);
  }

  /** Every change (list diffs and watch events). */
  get events$(): Observable<InformerEvent<T>> {
    return this.subject.asObservable();
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  keyForUid(uid: string): string | undefined {
    return this.uidIndex.get(uid);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  stats(): InformerStats {
    return { ...this.s, resourceVersion: this.resourceVersion, cached: this.cache.size };
  }

  /** Begin list+watch in the background; resolves once the first list is in the cache (or on stop). */
  start(): Promise<void> {
    void this.listAndWatch();
    return this.whenSynced();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.abort?.abort();
    for (const w of this.syncWaiters.splice(0)) w();
    this.subject.complete();
  }

  /**
   * Update the cache from our own writes (the object the API returned), so the next reconcile of
   * the key does not act on a stale copy before the watch event arrives. Only newer versions win.
   */
  observeWrite(obj: T): void {
    const key = keyOf(obj);
    const cur = this.cache.get(key);
    if (cur && cur.metadata.uid === obj.metadata.uid && rvNewer(obj.metadata.resourceVersion, cur.metadata.resourceVersion)) {
      this.cache.set(key, this.source.transform(obj));
    }
  }

  private async listAndWatch(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.relist();
    } catch (err) {
      this.s.watchErrors++;
      this.log.warn(`list of ${this.source.what} failed; retrying`, { ...errorFields(err), hint: this.source.hint });
      return this.retry(() => this.listAndWatch());
    }
    this.watch();
  }

  private async relist(): Promise<void> {
    // In pages (as client-go's reflector does): one response of 10,000 objects is a 16 MB string
    // plus its parse held at once, which stays in the operator's RSS long after the list.
    const limit = this.opts.pageSize ?? LIST_PAGE_SIZE;
    const seen = new Set<string>();
    let resourceVersion: string | undefined;
    let cont: string | undefined;
    do {
      const res = await this.source.listPage(limit, cont);
      if (this.stopped) return;
      this.s.listPages++;
      // Watching from the first page's version replays whatever changed while later pages were read.
      resourceVersion ??= res.resourceVersion;
      cont = res.continue || undefined;
      for (const item of res.items ?? []) {
        const obj = this.source.transform(item);
        const key = keyOf(obj);
        seen.add(key);
        const old = this.cache.get(key);
        this.put(key, obj);
        this.subject.next({ type: old ? 'modified' : 'added', key, obj, old, fromList: true });
      }
    } while (cont);
    this.s.lists++;
    for (const [key, obj] of [...this.cache]) {
      if (!seen.has(key)) {
        this.drop(key);
        this.subject.next({ type: 'deleted', key, obj, fromList: true });
      }
    }
    this.resourceVersion = resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private put(key: string, obj: T): void {
    const old = this.cache.get(key);
    if (old?.metadata.uid && old.metadata.uid !== obj.metadata.uid) this.uidIndex.delete(old.metadata.uid);
    this.cache.set(key, obj);
    if (obj.metadata.uid) this.uidIndex.set(obj.metadata.uid, key);
  }

  private drop(key: string): void {
    const old = this.cache.get(key);
    if (old?.metadata.uid) this.uidIndex.delete(old.metadata.uid);
    this.cache.delete(key);
  }

  private watch(): void {
    if (this.stopped) return;
    this.s.watchesStarted++;
    let gone = false;
    let errored = false;
    const timeout = this.opts.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 120);
    // A half-open connection never ends by itself: if the server's own timeout has long passed
    // without the stream closing, drop it and resume.
    let ac: AbortController | undefined;
    const watchdog = setTimeout(
      () => {
        this.log.warn('watch exceeded its timeout without closing; reconnecting');
        ac?.abort();
      },
      (timeout + 30) * 1000,
    );
    watchdog.unref?.();
    this.watcher
      .watch(
        this.source.watchPath,
        { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeout },
        (phase: string, obj: T & { code?: number; kind?: string; message?: string }) => {
          if (this.stopped) return;
          if (phase === 'ERROR') {
            // A Status object in the stream: 410 means our version is too old to resume from.
            if (obj?.code === 410) gone = true;
            else {
              errored = true;
              this.log.warn('watch returned an error event', { error: obj?.message });
            }
            this.abort?.abort();
            return;
          }
          this.backoffMs = 0;
          const rv = obj?.metadata?.resourceVersion;
          if (rv) this.resourceVersion = rv;
          if (phase === 'BOOKMARK') return;
          this.s.events++;
          const key = keyOf(obj);
          const full = this.source.transform(obj);
          if (phase === 'DELETED') {
            const old = this.cache.get(key);
            this.drop(key);
            this.subject.next({ type: 'deleted', key, obj: full, old });
          } else {
            const old = this.cache.get(key);
            this.put(key, full);
            this.subject.next({ type: old ? 'modified' : 'added', key, obj: full, old });
          }
        },
        (err: (Error & { statusCode?: number }) | null) => {
          clearTimeout(watchdog);
          if (this.stopped) return;
          if (errored || (err && err.name !== 'AbortError' && err.statusCode !== 410)) {
            this.s.watchErrors++;
            this.log.warn(`watch of ${this.source.what} failed; reconnecting`, errorFields(err));
            return this.retry(() => this.watch());
          }
          if (gone || err?.statusCode === 410) {
            this.s.relistsOn410++;
            this.log.info('watch resourceVersion expired (410 Gone); relisting');
            return void this.listAndWatch();
          }
          // Server-side close (timeout): resume from the last version without a relist.
          this.watch();
        },
      )
      .then((controller) => {
        ac = controller;
        this.abort = controller;
        if (this.stopped) controller.abort();
      })
      .catch((err: unknown) => {
        clearTimeout(watchdog);
        this.s.watchErrors++;
        this.log.warn('could not start watch; retrying', errorFields(err));
        this.retry(() => this.watch());
      });
  }

  private retry(fn: () => void | Promise<void>): void {
    if (this.stopped) return;
    this.backoffMs = Math.min(30_000, this.backoffMs ? this.backoffMs * 2 : 200);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void fn();
    }, this.backoffMs);
  }
}

/** Objects per list request (kubectl and client-go's reflector use 500). */
export const LIST_PAGE_SIZE = 500;

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * What the cache keeps of an object: managedFields and kubectl's last-applied copy are for the
 * API server and kubectl, never read by the operator, and are a third or more of an object's size
 * (controller-runtime's cache.TransformStripManagedFields does the same).
 */
export function slim(obj: NotebookServer): NotebookServer {
  const { managedFields: _managed, ...metadata } = obj.metadata as NotebookServer['metadata'] & { managedFields?: unknown };
  const ann = metadata.annotations;
  if (ann && LAST_APPLIED in ann) {
    const { [LAST_APPLIED]: _last, ...rest } = ann;
    metadata.annotations = rest;
  }
  return { ...obj, metadata };
}

function rvNewer(a?: string, b?: string): boolean {
  if (!a) return false;
  if (!b) return true;
  // resourceVersions are opaque in general; compare numerically when both are numbers (etcd and ours).
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

/** The NotebookServers of one namespace (or all), cached. */
export class NotebookServerInformer extends Informer<NotebookServer> {
  constructor(kc: KubeConfig, log: Logger, opts: InformerOptions = {}) {
    const api = makeApiClient(kc, CustomObjectsApi);
    const ns = opts.namespace;
    super(
      kc,
      log,
      {
        what: 'NotebookServers',
        watchPath: ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        listPage: async (limit, cont) => {
          type Page = { items: NotebookServer[]; metadata?: { resourceVersion?: string; continue?: string } };
          const res = (
            ns
              ? await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, limit, _continue: cont })
              : await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit, _continue: cont })
          ) as Page;
          return { items: res.items, resourceVersion: res.metadata?.resourceVersion, continue: res.metadata?.continue };
        },
        // Lists omit apiVersion/kind on items; the rest of the operator relies on them.
        transform: (o: NotebookServer) => slim({ ...o, apiVersion: o.apiVersion ?? API_VERSION, kind: KIND }),
        hint: 'is the API server reachable and the CRD installed?',
      },
      opts,
    );
  }
}
