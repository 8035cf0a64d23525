/**
 * The Swarm's nodes as the manager sees them, kept for the backend: whether there is more than one
 * (the single-node path then costs nothing: one `docker info`), and per node its hostname, the
 * address its published ports are reached at, its state and availability. Docker's node events
 * (create, update, remove: a node going down, drained, joining) drop the view; a multi-node view is
 * also re-read after `ttlMs`, in case an event was missed while the stream reconnected.
 */
import type Docker from 'dockerode';
import { wrapDockerError } from './docker.js';
import type { ClusterView, NodeView, ObservedState } from './types.js';

export interface NodesSnapshot extends ClusterView {
  /** Swarm node ID of the daemon the operator talks to. */
  self?: string;
  byId: Map<string, NodeView>;
  byHostname: Map<string, NodeView>;
}

/** A Swarm node object (GET /nodes) as a NodeView. */
export function nodeView(n: any): NodeView {
  const role = n?.Spec?.Role === 'manager' ? 'manager' : 'worker';
  // A manager's Status.Addr may be 0.0.0.0 (listening on every address); its ManagerStatus says where it is reached.
  let addr: string | undefined = n?.Status?.Addr || undefined;
  if ((!addr || addr === '0.0.0.0') && n?.ManagerStatus?.Addr) addr = String(n.ManagerStatus.Addr).replace(/:\d+$/, '');
  return {
    id: String(n?.ID ?? ''),
    hostname: String(n?.Description?.Hostname ?? n?.ID ?? ''),
    addr: addr && addr !== '0.0.0.0' ? addr : undefined,
    role,
    state: String(n?.Status?.State ?? 'unknown'),
    availability: String(n?.Spec?.Availability ?? 'active'),
    labels: { ...(n?.Spec?.Labels ?? {}) },
  };
}

/**
 * Why a task the manager still lists as running is not running for anyone: its node was declared
 * down. The manager keeps the task's last reported state, and after a `kill -9` of the node's
 * daemon its container may even still answer at the node's address (a split brain), so a probe
 * would pass there. Swarm replaces the task elsewhere within moments (or, for a server pinned to
 * the node, once the node is back): read as starting, the server is polled until its new task
 * runs instead of being reported Ready at an address that is about to go.
 */
export function lostNodeMessage(state: ObservedState, node: NodeView | undefined): string | undefined {
  if (state !== 'running' || node?.state !== 'down') return undefined;
  return `node ${node.hostname} is down; Swarm replaces its task on another node (or there, once it is back, when pinned)`;
}

export class SwarmNodes {
  private snapshot?: Promise<NodesSnapshot>;
  private at = 0;

  constructor(
    private readonly docker: Docker,
    private readonly ttlMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The current view: one `docker info` on a single-node Swarm, plus one node list on several. */
  get(): Promise<NodesSnapshot> {
    const cur = this.snapshot;
    if (cur && !(this.now() - this.at > this.ttlMs)) return cur;
    const started = this.now();
    const p = this.read();
    this.snapshot = p;
    this.at = started;
    p.then(
      (s) => {
        // A single-node Swarm changes only by a node event (a node joining), which drops the view.
        if (!s.multiNode && this.snapshot === p) this.at = Infinity;
      },
      () => {
        if (this.snapshot === p) this.snapshot = undefined;
      },
    );
    return p;
  }

  /** A node event arrived: read again next time. */
  invalidate(): void {
    this.snapshot = undefined;
  }

  private async read(): Promise<NodesSnapshot> {
    let info: any;
    try {
      info = await this.docker.info();
    } catch (err) {
      throw wrapDockerError('docker info', err);
    }
    const self = String(info?.Swarm?.NodeID ?? '') || undefined;
    const count = Number(info?.Swarm?.Nodes ?? 0);
    const empty = { self, byId: new Map<string, NodeView>(), byHostname: new Map<string, NodeView>() };
    if (!(count > 1) || info?.Swarm?.ControlAvailable !== true) return { multiNode: false, nodes: [], ...empty };
    let list: any[];
    try {
      list = (await this.docker.listNodes()) as any[];
    } catch (err) {
      throw wrapDockerError('docker node ls', err);
    }
    const nodes = list.map(nodeView);
    for (const n of nodes) {
      empty.byId.set(n.id, n);
      empty.byHostname.set(n.hostname, n);
    }
    return { multiNode: nodes.length > 1, nodes, ...empty };
  }
}
