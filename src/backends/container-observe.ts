/**
 * Reading a container back: an ObservedServer from a `docker ps` entry (when it tells enough) or
 * from `docker inspect`. Pure: the backend passes the host's name.
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { namedVolumes } from './base-backend.js';
import { ownedContainerConfig } from './container-spec.js';
import type { ObservedServer } from './types.js';

/** An ObservedServer from one `docker ps` entry, or undefined when only inspect can tell. Pure. */
export function observeSummary(c: Docker.ContainerInfo, node: string | undefined): ObservedServer | undefined {
  const labels: Record<string, string> = c.Labels ?? {};
  const port = Number(labels[LABELS.port] ?? 0);
  const obs: ObservedServer = {
    kind: 'container',
    id: c.Id,
    name: String(c.Names?.[0] ?? '').replace(/^\//, ''),
    labels,
    specHash: labels[LABELS.specHash],
    state: 'pending',
    node,
    containerId: c.Id,
    image: c.ImageID,
    createdAt: typeof c.Created === 'number' ? new Date(c.Created * 1000).toISOString() : undefined,
    volumes: namedVolumes(c.Mounts, 'Name', 'Destination'),
  };
  const exit = /^Exited \((-?\d+)\)/.exec(c.Status ?? '');
  if (c.State === 'running') {
    obs.state = 'running';
    obs.message = 'running';
  } else if (c.State === 'created') {
    // Never started (a failed start would need inspect's State.Error; a start is retried anyway).
    obs.state = 'stopped';
    obs.message = 'created';
  } else if (c.State === 'exited' && exit && [0, 143].includes(Number(exit[1]))) {
    obs.state = 'stopped';
    obs.message = `exited; exit code ${exit[1]}`;
  } else return undefined;
  if (c.HostConfig?.NetworkMode === 'host') {
    obs.hostPort = port || undefined;
  } else if (obs.state === 'running') {
    const b = (c.Ports ?? []).find((p) => p.PrivatePort === port && p.Type === 'tcp' && p.PublicPort);
    if (b) {
      obs.hostPort = b.PublicPort;
      obs.hostIp = !b.IP ? '0.0.0.0' : b.IP;
    }
  }
  return obs;
}

/** An ObservedServer from a `docker inspect` answer, on host `node`. Pure. */
export function observeInspected(c: any, node: string | undefined): ObservedServer {
  const labels: Record<string, string> = c.Config?.Labels ?? {};
  const port = Number(labels[LABELS.port] ?? 0);
  const st = c.State ?? {};
  const obs: ObservedServer = {
    kind: 'container',
    id: c.Id,
    name: String(c.Name ?? '').replace(/^\//, ''),
    labels,
    specHash: labels[LABELS.specHash],
    state: 'pending',
    node,
    containerId: c.Id,
    image: c.Image,
    createdAt: c.Created,
    volumes: namedVolumes(c.Mounts, 'Name', 'Destination'),
    // Only an inspect has it: drift is checked after Docker announced a change (an "update"
    // event makes the next read an inspect), never at the cost of a call per idle server.
    observedSpec: ownedContainerConfig(c.HostConfig),
  };
  const status: string = st.Status ?? '';
  if (st.Running && !st.Restarting) obs.state = 'running';
  // Docker restarts it (restart policy unless-stopped, with its own back-off): not failed.
  else if (st.Restarting) obs.state = 'starting';
  // "created" without an error was never started: it is as stopped as an exited one. (As
  // "pending" a stopped resource's container would look forever "Stopping".)
  else if (status === 'created') obs.state = st.Error ? 'failed' : 'stopped';
  else if (status === 'removing') obs.state = 'stopped';
  else if (status === 'exited' || status === 'dead') {
    // We stop containers with SIGTERM/SIGKILL; any other non-zero exit, or a Docker error, is a crash.
    const clean = [0, 137, 143].includes(st.ExitCode) && !st.Error && !st.OOMKilled;
    obs.state = clean ? 'stopped' : 'failed';
    if (!clean) obs.failedAt = st.FinishedAt;
  } else if (status === 'paused') obs.state = 'stopped';
  if (c.RestartCount) {
    obs.restarts = c.RestartCount;
    // Docker resets the exit code when it starts the container again: a restarted container that
    // runs (for now) no longer says how it last failed, and "exit code 0" would be wrong.
    if (st.Error || st.OOMKilled || st.ExitCode) obs.lastFailure = failureParts(st, true).join('; ');
  }
  if (st.StartedAt && !st.StartedAt.startsWith('0001-')) obs.updatedAt = st.StartedAt;
  obs.message = [status, ...failureParts(st, status === 'exited' || !!st.ExitCode), st.Restarting ? `restart count ${c.RestartCount}` : '']
    .filter(Boolean)
    .join('; ');
  if (c.HostConfig?.NetworkMode === 'host') {
    obs.hostPort = port || undefined;
  } else {
    const b = c.NetworkSettings?.Ports?.[`${port}/tcp`]?.[0];
    if (b?.HostPort) {
      obs.hostPort = Number(b.HostPort);
      obs.hostIp = b.HostIp === '' ? '0.0.0.0' : b.HostIp;
    }
  }
  return obs;
}

/** How a container's State says it failed: Docker's error, out of memory, and (`withExitCode`) the exit code. */
function failureParts(st: { Error?: string; OOMKilled?: boolean; ExitCode?: number }, withExitCode: boolean): string[] {
  return [st.Error ?? '', st.OOMKilled ? 'out of memory' : '', withExitCode ? `exit code ${st.ExitCode}` : ''].filter(Boolean);
}
