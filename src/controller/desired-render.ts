/**
 * The desired server of one reconcile. renderDesired (desired.ts) is pure; what it needs beyond the
 * object and the policy is gathered here: a host port (host networking), the system user's passwd
 * entry, the node holding the server's volumes (multi-node Swarm), the Secrets cache. A spec that
 * does not render is written to status here: a missing Secret is waited for, anything else is Failed.
 */
import { ANNOTATIONS, LABELS } from '../api/names.js';
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import type { Backend, ClusterView, DesiredServer, ObservedServer } from '../backends/types.js';
import { lookupSystemUser, SystemUserError } from '../config/system-users.js';
import type { Policy } from '../config/types.js';
import { renderDesired, type RenderContext } from './desired.js';
import { pinFor } from './placement.js';
import type { HostPortAllocator } from './ports.js';
import { nodeLocalVolumeNames } from './server-volumes.js';
import type { Ended, ServerWrites } from './server-writes.js';
import { waitingStatus } from './status-phases.js';

/** Ready reasons of a spec that waits for a Secret (or a key of one) to exist, as a Pod does. */
export const WAITING_FOR_SECRET = new Set(['SecretNotFound', 'SecretKeyMissing']);

export interface DesiredRenderDeps {
  policy: Policy;
  backend: Backend;
  /** NotebookServers by "namespace/name" (the informer's cache); list() finds servers sharing volumes. */
  servers: { list?(): NotebookServer[] };
  /** Decoded values of a Secret (the Secrets informer's cache). */
  secrets: { values(namespace: string, name: string): Record<string, string> | undefined };
  ports: Pick<HostPortAllocator, 'allocate'>;
  systemUser?: typeof lookupSystemUser;
}

export interface Rendered {
  desired: DesiredServer;
  /** What it was rendered with: a render under another Docker name starts from it (see docker-write.ts). */
  ctx: RenderContext;
  cluster: ClusterView;
}

export class DesiredRender {
  constructor(
    private readonly d: DesiredRenderDeps,
    private readonly writes: ServerWrites,
    private readonly now: () => string,
  ) {}

  /**
   * `current`: the server's Docker object, if it has one; `sourceImage`: a dashboard's built image;
   * `stopped`: whether the server is to be stopped (its Secrets may be missing then).
   */
  async render(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    { current, sourceImage, stopped }: { current: ObservedServer | undefined; sourceImage: string | undefined; stopped: boolean },
  ): Promise<Rendered | Ended> {
    const { backend, policy } = this.d;
    const uid = obj.metadata.uid ?? '';
    let hostPort: number | undefined;
    if (policy.networkMode === 'host') {
      const label = current ? Number(current.labels[LABELS.port]) : NaN;
      // The labels come from the backend's event-kept snapshot: a full list per new server cost a
      // burst of spawns two list calls each.
      hostPort = Number.isInteger(label) && label > 0 ? label : await this.d.ports.allocate(uid, () => backend.listManaged({ fromCache: true }));
    }

    let systemUser: { uid: number; gid: number; home: string } | undefined;
    if (obj.spec.systemUser && policy.systemUsers.enabled) {
      try {
        systemUser = await (this.d.systemUser ?? lookupSystemUser)(obj.spec.user, policy);
      } catch (err) {
        if (!(err instanceof SystemUserError)) throw err;
        await this.writes.fail(obj, old, status, err.reason, `spec.systemUser: ${err.message}`);
        return { ended: undefined };
      }
    }

    const ns = obj.metadata.namespace ?? 'default';
    const cluster = await backend.cluster();
    const pinNode = this.pinNode(obj, old, current, cluster);
    // An existing object keeps the name and volumes it was created with (upgrades rename nothing).
    const ctx: RenderContext = {
      secrets: (name) => this.d.secrets.values(ns, name),
      hostPort,
      sourceImage,
      systemUser,
      secretsOptional: stopped,
      pinNode,
      keep: current ? { name: current.name, volumes: current.volumes } : undefined,
    };
    const rendered = renderDesired(obj, policy, ctx);
    if (!rendered.ok) {
      const message = rendered.message.startsWith(rendered.field) ? rendered.message : `${rendered.field}: ${rendered.message}`;
      // A missing Secret is waited for, as a Pod waits (the Secrets informer wakes this server when
      // it appears): a hub writes the Secret just before the object, and the two informers may
      // deliver them in either order. A server already running keeps running meanwhile.
      if (WAITING_FOR_SECRET.has(rendered.reason)) {
        await this.writes.writeStatus(obj, old, waitingStatus(status, !!current, rendered.reason, message, this.now()), {
          type: 'Warning',
          reason: rendered.reason,
          message,
        });
        return { ended: undefined };
      }
      // A refused spec waits for a change of the object; resync re-checks after policy changes.
      await this.writes.fail(obj, old, status, rendered.reason, message);
      return { ended: undefined };
    }
    // The stop annotation (culling) stops without a spec change; stopped is outside the spec hash.
    const desired = { ...rendered.desired, stopped };
    // A stopped server keeps the object it has, as written: a spec change (or a token Secret the
    // hub deleted on stop) is applied when it starts again, so stopping is a scale-down only,
    // never a rewrite of a service whose task is still shutting down.
    if (stopped && current?.specHash) desired.specHash = current.specHash;
    return { desired, ctx, cluster };
  }

  /**
   * Multi-node Swarm: the node holding the server's node-local volumes (see pinFor). Other servers
   * are searched only for a server that has no pin or record yet, e.g. a user's new named server
   * sharing the user's home volume.
   */
  private pinNode(obj: NotebookServer, old: NotebookServerStatus, current: ObservedServer | undefined, cluster: ClusterView): string | undefined {
    if (!cluster.multiNode) return undefined;
    const volumes = nodeLocalVolumeNames(obj.spec, this.d.policy);
    if (!volumes.length) return undefined;
    const annotation = obj.metadata.annotations?.[ANNOTATIONS.node];
    const known = annotation || current?.pinNode || old.node;
    let siblings: string[] | undefined;
    if (!known && this.d.servers.list) {
      const mine = new Set(volumes);
      siblings = this.d.servers
        .list()
        .filter((o) => o.metadata.uid !== obj.metadata.uid && (o.metadata.annotations?.[ANNOTATIONS.node] || o.status?.node))
        .filter((o) => o.spec?.user && nodeLocalVolumeNames(o.spec, this.d.policy).some((v) => mine.has(v)))
        .map((o) => (o.metadata.annotations?.[ANNOTATIONS.node] || o.status?.node)!);
    }
    return pinFor({ multiNode: true, volumes, annotation, current: current?.pinNode, recorded: old.node, siblings, running: current?.node });
  }
}
