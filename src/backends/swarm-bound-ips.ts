/**
 * Where a Swarm task's published port really listens. Swarm's PortConfig has no host IP: a
 * mode=host port binds on the daemon's default address (dockerd --ip), so the address is read from
 * the task's container and remembered for the container's life. A full observation learns every
 * unknown one from ONE container list instead of an inspect per container.
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { MANAGED_FILTER } from './base-backend.js';

export class BoundIps {
  /** "containerId/port" → host IP the published port is bound to. */
  private readonly ips = new Map<string, string>();

  constructor(private readonly docker: Docker) {}

  /**
   * After a full list of `services` and their `tasks` (by service ID): forget containers that are
   * gone, and learn the ports of running containers on node `self` not known yet.
   */
  async refresh(services: any[], tasks: Map<string, any[]>, self: string | undefined): Promise<void> {
    const seen = new Set<string>();
    for (const ts of tasks.values()) for (const t of ts) if (t.Status?.ContainerStatus?.ContainerID) seen.add(t.Status.ContainerStatus.ContainerID);
    for (const key of this.ips.keys()) if (!seen.has(key.split('/')[0]!)) this.ips.delete(key);
    if (!self) return;
    let unknown = false;
    for (const s of services) {
      const port = Number(s.Spec?.Labels?.[LABELS.port] ?? 0);
      for (const t of tasks.get(s.ID) ?? []) {
        const cid = t.Status?.ContainerStatus?.ContainerID;
        if (cid && t.NodeID === self && t.Status?.State === 'running' && !this.ips.has(`${cid}/${port}`)) unknown = true;
      }
    }
    if (!unknown) return;
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ filters: JSON.stringify({ label: [MANAGED_FILTER, 'com.docker.swarm.task.id'], status: ['running'] }) });
    } catch {
      return; // of() falls back to inspecting the container
    }
    for (const c of list) {
      for (const p of c.Ports ?? []) {
        if (p.Type !== 'tcp' || !p.PublicPort) continue;
        const key = `${c.Id}/${p.PrivatePort}`;
        // IPv4 first, like inspect's first binding.
        if (this.ips.has(key) && p.IP?.includes(':')) continue;
        this.ips.set(key, p.IP ? p.IP : '0.0.0.0');
      }
    }
  }

  /** The host IP of `containerId`'s published `port` (inspected once when not known). */
  async of(containerId: string, port: number): Promise<string | undefined> {
    const key = `${containerId}/${port}`;
    const known = this.ips.get(key);
    if (known !== undefined) return known;
    try {
      const c: any = await this.docker.getContainer(containerId).inspect();
      const b = c?.NetworkSettings?.Ports?.[`${port}/tcp`]?.[0];
      if (!b) return undefined;
      const ip = b.HostIp === '' ? '0.0.0.0' : String(b.HostIp);
      this.ips.set(key, ip);
      return ip;
    } catch {
      return undefined;
    }
  }
}
