/**
 * Host ports for servers on the host network (policy.networkMode "host"): a free port in
 * policy.hostPortRange, not labelled on any managed object, not handed to another server whose
 * object is not written yet, and bindable on loopback right now. A port stays reserved for its
 * server until its object carries it (then the object's label is the record), so two servers
 * converging at once never get the same one.
 */
import { LABELS } from '../api/names.js';
import { BackendError, type ObservedServer } from '../backends/types.js';
import { canBind } from './netutil.js';

export class HostPortAllocator {
  /** port → uid it was handed to, until that server's object is written. */
  private readonly reserved = new Map<number, string>();

  constructor(
    private readonly range: [number, number],
    private readonly bindable: (port: number) => Promise<boolean> = canBind,
  ) {}

  /** A port for server `uid`; `managed` lists every managed object (their ports are taken). */
  async allocate(uid: string, managed: () => Promise<ObservedServer[]>): Promise<number> {
    const [lo, hi] = this.range;
    const used = new Set<number>();
    for (const o of await managed()) {
      const p = Number(o.labels[LABELS.port]);
      if (p) used.add(p);
      if (o.hostPort) used.add(o.hostPort);
    }
    for (const [p, owner] of this.reserved) if (owner !== uid) used.add(p);
    for (const [p, owner] of this.reserved) if (owner === uid && !used.has(p)) return p;
    for (let p = lo; p <= hi; p++) {
      if (used.has(p)) continue;
      if (!(await this.bindable(p))) continue;
      this.reserved.set(p, uid);
      return p;
    }
    throw new BackendError(`no free host port in ${lo}-${hi}`, 'DockerError', 'allocate host port', 'widen policy.hostPortRange or remove unused servers');
  }

  /** The port is now recorded on the server's object. */
  release(port: number): void {
    this.reserved.delete(port);
  }
}
