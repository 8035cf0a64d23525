/**
 * CPU and memory of the servers' containers from Docker stats, sampled only while someone watches
 * the status page. One-shot stats (no two-second wait inside the daemon); the CPU % comes from this
 * sample and the previous one, as `docker stats` computes it. The containers come from the
 * backend's event-kept snapshot, so finding them costs no Docker call. A container on another Swarm
 * node is not visible to this daemon's stats: its row shows no figures.
 */
import type Docker from 'dockerode';
import type { ObservedServer } from '../backends/types.js';
import { cpuPercent, cpuSample, memoryUsage, type CpuSample, type StatsRow } from './model.js';

export interface StatsSource {
  /** The managed objects with their running container (the backend's snapshot). */
  containers(): Promise<ObservedServer[]>;
  /** "namespace/name" of the NotebookServer an object belongs to (by its uid label). */
  keyOf(o: ObservedServer): string | undefined;
}

/** Concurrent stats calls: each costs the daemon a cgroup read. */
const PARALLEL = 4;

export class DockerStatsSampler {
  private readonly previous = new Map<string, CpuSample>();

  constructor(
    private readonly docker: Docker,
    private readonly source: StatsSource,
  ) {}

  /** One round: stats of every running server container, by NotebookServer key. */
  async sample(): Promise<Record<string, StatsRow>> {
    const running = (await this.source.containers()).filter((o) => o.state === 'running' && o.containerId);
    const out: Record<string, StatsRow> = {};
    const seen = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < running.length) {
        const o = running[next++]!;
        const key = this.source.keyOf(o);
        const id = o.containerId!;
        if (!key) continue;
        seen.add(id);
        let raw: any;
        try {
          raw = await this.docker.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false });
        } catch {
          continue; // gone meanwhile, or on another node
        }
        const cpu = cpuSample(raw);
        out[key] = { cpuPercent: cpuPercent(this.previous.get(id), cpu), ...memoryUsage(raw) };
        if (cpu) this.previous.set(id, cpu);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, running.length) }, worker));
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    return out;
  }
}
