/**
 * The API server's parts put together: storage → registry of kinds (built-in and CRD-backed,
 * each with its strategy) → admission → the generic write path → verb handlers → dispatcher;
 * plus the background work (namespace sweeps, garbage collection, ClusterRole aggregation, Event
 * expiry). index.ts adds TLS and HTTP.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { nowIso } from '../util/time.js';
import { AdmissionChain } from './admission/admission.js';
import { MetadataValidation } from './admission/metadata-validation.js';
import { NamespaceLifecycle } from './admission/namespace-lifecycle.js';
import type { KeyObject } from 'node:crypto';
import { RbacEscalation } from './admission/rbac-escalation.js';
import { RBACAuthorizer } from './auth/rbac/authorizer.js';
import { ClusterRoleAggregator } from './auth/rbac/aggregation.js';
import { reconcileBootstrapPolicy } from './auth/rbac/bootstrap.js';
import { newSigningKey, ServiceAccountTokens } from './auth/serviceaccounts.js';
import { UnionAuthenticator, type Authenticator } from './auth/tokens.js';
import { tokenRequest } from './handlers/token.js';
import { Dispatcher } from './dispatcher.js';
import { deleteCustomResources } from './gc/crds.js';
import { EventExpiry } from './gc/events.js';
import { NamespaceSweeper } from './gc/namespaces.js';
import { GarbageCollector } from './gc/owners.js';
import type { Services } from './handlers/scope.js';
import { Watches } from './handlers/watch-buffers.js';
import { Metrics } from './metrics.js';
import { builtinKinds } from './registry/builtins.js';
import { kindKey } from './registry/kinds.js';
import { ByteBudget, DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { KindRegistry } from './registry/registry.js';
import { RestStore } from './registry/rest.js';
import { BodyReader } from './request/body.js';
import type { Req, Res } from './request/http.js';
import { Responder } from './request/respond.js';
import type { Store } from './storage/sqlite.js';
import type { CustomResourceDefinition } from './types.js';

export interface ServerOptions {
  storage: Store;
  /** Who a bearer token is (the token file); ServiceAccount tokens are checked after it. */
  authenticator: Authenticator;
  /** Signs ServiceAccount tokens (Ed25519). Default: a new key, so tokens die with the process. */
  serviceAccountKey?: KeyObject;
  /** The CA certificate service-account-token Secrets carry as ca.crt. */
  caPem?: string;
  bookmarkIntervalMs: number;
  /** Upper bound for a watch without timeoutSeconds (kube's min-request-timeout). */
  maxWatchSeconds: number;
  /** Events older than this are deleted, as kube's --event-ttl (default 1 h) does. */
  eventTtlSeconds: number;
  /** What one request, user or watch may take (limits.ts); unset ones are DEFAULT_LIMITS. */
  limits?: Partial<ServerLimits>;
  log: Logger;
}

/** Namespaces every cluster has (`nbswarm` holds the operator's leader Lease: only its identity writes there). */
const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'nbswarm'];

export class ApiServer {
  readonly metrics = new Metrics();
  private readonly dispatcher: Dispatcher;
  private readonly watches: Watches;
  private readonly sweeper: NamespaceSweeper;
  private readonly gc: GarbageCollector;
  private readonly eventExpiry: EventExpiry;
  private readonly aggregator: ClusterRoleAggregator;

  constructor(o: ServerOptions) {
    const { storage, log } = o;
    const registry = new KindRegistry(log);
    const authorizer = new RBACAuthorizer(storage, registry);
    const saTokens = new ServiceAccountTokens(o.serviceAccountKey ?? newSigningKey(), storage);
    const caPem = o.caPem ?? '';
    this.sweeper = new NamespaceSweeper(storage, () => registry.all(), log);
    this.gc = new GarbageCollector(storage, () => registry.all(), log);
    const kinds = builtinKinds({
      rbacChanged: () => authorizer.invalidate(),
      tokenRequest: tokenRequest(saTokens),
      fillServiceAccountToken: (secret) => saTokens.fillSecret(secret, caPem),
      namespaceTerminating: (name) => this.sweeper.sweep(name),
      crd: {
        served: (group, resource) => registry.get(group, resource),
        register: (crd) => registry.registerCrd(crd),
        deleted: (crd) => {
          deleteCustomResources(storage, crd);
          registry.unregisterCrd(crd);
          this.gc.kick();
        },
      },
    });
    for (const k of kinds) registry.add(k);
    for (const crd of storage.iterate(kindKey('apiextensions.k8s.io', 'customresourcedefinitions'), ''))
      registry.registerCrd(crd as unknown as CustomResourceDefinition);
    ensureSystemNamespaces(storage);
    reconcileBootstrapPolicy(storage);
    this.aggregator = new ClusterRoleAggregator(storage, log);
    const admission = new AdmissionChain([new NamespaceLifecycle((name) => storage.namespace(name)), new MetadataValidation(), new RbacEscalation(authorizer)]);
    const limits: ServerLimits = { ...DEFAULT_LIMITS, ...o.limits };
    this.watches = new Watches(o.bookmarkIntervalMs, o.maxWatchSeconds, this.metrics.watches, limits, (why) => {
      this.metrics.terminatedWatchers.inc();
      log.warn('watch ended: its client does not keep up (it will re-list)', { why });
    });
    const watches = this.watches;
    this.metrics.watchBufferedSource = () => watches.bufferedBytes;
    const services: Services = {
      storage,
      registry,
      rest: new RestStore(storage, admission, () => this.gc.kick()),
      authorizer,
      respond: new Responder(storage, log),
      watches: this.watches,
      bodies: new BodyReader(new ByteBudget(limits.bodyBytesInFlight), limits.requestTimeoutSeconds * 1000),
      lists: new ByteBudget(limits.listBytesInFlight),
    };
    this.dispatcher = new Dispatcher(services, new UnionAuthenticator([o.authenticator, saTokens]), this.metrics, log, limits);
    this.eventExpiry = new EventExpiry(storage, o.eventTtlSeconds, log);
    this.sweeper.resume();
    this.gc.kick();
  }

  handle(req: Req, res: Res): Promise<void> {
    return this.dispatcher.handle(req, res);
  }

  /** Ends open watches and background work; storage is the caller's to close. */
  close(): void {
    this.watches.close();
    this.eventExpiry.close();
    this.sweeper.close();
    this.gc.close();
    this.aggregator.close();
  }
}

function ensureSystemNamespaces(storage: Store): void {
  const key = kindKey('', 'namespaces');
  for (const ns of SYSTEM_NAMESPACES) {
    if (storage.get(key, '', ns)) continue;
    storage.write('ADDED', key, '', ns, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, uid: randomUUID(), creationTimestamp: nowIso(), labels: { 'kubernetes.io/metadata.name': ns } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }
}
