/**
 * The plain-container backend's pure half: the createContainer body for a DesiredServer, and
 * drift, judged on the HostConfig fields `docker update` can change.
 */
import { envList } from './base-backend.js';
import { diffPaths, pruneEmpty } from './drift.js';
import type { DesiredServer, ResolvedImage } from './types.js';

/**
 * The HostConfig fields `docker update` can change after a container was created: what drift on a
 * container can be (everything else needs a new container, which the spec hash covers).
 */
export const UPDATABLE_HOST_CONFIG = [
  'Memory',
  'MemorySwap',
  'MemoryReservation',
  'NanoCpus',
  'CpuShares',
  'CpuPeriod',
  'CpuQuota',
  'CpuRealtimePeriod',
  'CpuRealtimeRuntime',
  'CpusetCpus',
  'CpusetMems',
  'PidsLimit',
  'BlkioWeight',
  'RestartPolicy',
] as const;

/** The part of a container's HostConfig that drift is judged on, in drift.ts's canonical form. Pure. */
export function ownedContainerConfig(hostConfig: any): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of UPDATABLE_HOST_CONFIG) out[k] = hostConfig?.[k];
  return (pruneEmpty(out) as Record<string, unknown> | undefined) ?? {};
}

/**
 * Where an observed container (its ownedContainerConfig) differs from the createContainer body
 * nbswarm would write now: field paths, empty when it has not drifted. Pure.
 */
export function containerDrift(observedOwned: unknown, desiredBody: any): string[] {
  const want = ownedContainerConfig(desiredBody?.HostConfig);
  const have: Record<string, unknown> = structuredClone((observedOwned as Record<string, unknown> | undefined) ?? {});
  // Docker gives a memory limit without a swap limit a swap limit of twice the memory.
  if (want.MemorySwap === undefined && typeof have.Memory === 'number' && have.MemorySwap === 2 * have.Memory) delete have.MemorySwap;
  return diffPaths(pruneEmpty(have) ?? {}, want, 2);
}

/** The createContainer body for `d`. Pure, so it can be unit-tested. */
export function containerSpec(d: DesiredServer, image: ResolvedImage): any {
  const portKey = `${d.port}/tcp`;
  const host = d.networkMode === 'host';
  const hostConfig: any = {
    RestartPolicy: { Name: 'unless-stopped' },
    // A server as PID 1 gets no default signal handlers, so SIGTERM would be ignored and every
    // stop would wait out the grace period; Docker's init forwards signals and reaps zombies.
    Init: true,
    Mounts: d.volumes.map((v) => ({ Type: v.type, Source: v.source, Target: v.target, ReadOnly: !!v.readOnly })),
    CapDrop: d.hardening.capDrop.length ? d.hardening.capDrop : undefined,
    CapAdd: d.hardening.capAdd?.length ? d.hardening.capAdd : undefined,
    SecurityOpt: d.hardening.noNewPrivileges ? ['no-new-privileges:true'] : undefined,
    PidsLimit: d.hardening.pidsLimit || undefined,
    ReadonlyRootfs: d.hardening.readOnlyRootfs || undefined,
    NanoCpus: d.resources.nanoCpus || undefined,
    Memory: d.resources.memoryBytes || undefined,
    NetworkMode: host ? 'host' : (d.network ?? 'bridge'),
    // HostPort "" = Docker picks a free port on HostIp, the `-p HOSTIP::PORT` form.
    PortBindings: host ? undefined : { [portKey]: [{ HostIp: d.publishHostIp, HostPort: '' }] },
    GroupAdd: d.groups?.length ? d.groups : undefined,
  };
  const body: any = {
    name: d.dockerName,
    Image: image.pinned,
    Labels: d.labels,
    Env: envList(d.env),
    ExposedPorts: host ? undefined : { [portKey]: {} },
    Hostname: host ? undefined : d.dockerName,
    HostConfig: hostConfig,
  };
  if (d.entrypoint) body.Entrypoint = d.entrypoint;
  if (d.command.length) body.Cmd = d.command;
  if (d.workdir) body.WorkingDir = d.workdir;
  if (d.user) body.User = d.user;
  if (!host && d.network) body.NetworkingConfig = { EndpointsConfig: { [d.network]: { Aliases: [d.dockerName] } } };
  return body;
}
