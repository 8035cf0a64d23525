/**
 * The pure parts of the Swarm backend: the service spec written for a DesiredServer, and what a
 * service's tasks say about the server (Swarm keeps old tasks next to the current one, and a
 * crash-looping task is retried under a new task).
 */
import { LABELS } from '../api/names.js';
import { envList } from './base-backend.js';
import { diffPaths, dropDefault, pruneEmpty } from './drift.js';
import { BackendError, type DesiredServer, type ObservedState, type ResolvedImage } from './types.js';

const TASK_STATE: Record<string, ObservedState> = {
  new: 'pending',
  allocated: 'pending',
  pending: 'pending',
  assigned: 'pending',
  accepted: 'pending',
  preparing: 'preparing',
  ready: 'starting',
  starting: 'starting',
  running: 'running',
  failed: 'failed',
  rejected: 'rejected',
};

/** Whether Docker can run `ref` without resolving a tag (an image ID or a digest reference). */
export function isPinned(ref: string | undefined): boolean {
  return !!ref && (ref.startsWith('sha256:') || ref.includes('@sha256:'));
}

/** The service spec for `d`, pinned to `image.pinned`. Pure, so it can be unit-tested. */
export function serviceSpec(d: DesiredServer, image: ResolvedImage): any {
  if (!isPinned(image.pinned)) {
    // A bare tag would make every task start pull from a registry (moby's executor).
    throw new BackendError(`refusing to hand Swarm the unpinned image "${image.pinned}"`, 'DockerError', 'docker service create', 'resolve the image first (resolveImage)');
  }
  const containerSpec: any = {
    Image: image.pinned,
    Labels: d.labels,
    Env: envList(d.env),
    Mounts: d.volumes.map((v) =>
      v.type === 'volume'
        ? { Type: 'volume', Source: v.source, Target: v.target, ReadOnly: !!v.readOnly, VolumeOptions: { Labels: { [LABELS.volume]: 'true', ...(v.labels ?? {}) } } }
        : { Type: 'bind', Source: v.source, Target: v.target, ReadOnly: !!v.readOnly },
    ),
    CapabilityDrop: d.hardening.capDrop.length ? d.hardening.capDrop : undefined,
    CapabilityAdd: d.hardening.capAdd?.length ? d.hardening.capAdd : undefined,
    // Honoured from API 1.46 (Docker 27) on; Docker 20.10 (API 1.41) drops the field silently.
    Privileges: { NoNewPrivileges: d.hardening.noNewPrivileges },
    ReadOnly: d.hardening.readOnlyRootfs || undefined,
    Hostname: d.networkMode === 'host' ? undefined : d.dockerName,
    // Signals reach the server (PID 1 ignores SIGTERM by default) and zombies are reaped.
    Init: true,
  };
  if (d.entrypoint) containerSpec.Command = d.entrypoint;
  if (d.command.length) containerSpec.Args = d.command;
  if (d.workdir) containerSpec.Dir = d.workdir;
  if (d.user) containerSpec.User = d.user;
  if (d.groups?.length) containerSpec.Groups = d.groups;

  const limits: any = {};
  if (d.resources.nanoCpus) limits.NanoCPUs = d.resources.nanoCpus;
  if (d.resources.memoryBytes) limits.MemoryBytes = d.resources.memoryBytes;
  if (d.hardening.pidsLimit) limits.Pids = d.hardening.pidsLimit;

  const networks =
    d.networkMode === 'host' ? [{ Target: 'host' }] : d.network ? [{ Target: d.network, Aliases: [d.dockerName] }] : undefined;
  return {
    Name: d.dockerName,
    // The image written is recorded on the service only (its tasks' labels would restart them):
    // a running server keeps it until it restarts, and a human's --image is told apart from it.
    Labels: { ...d.labels, [LABELS.writtenImage]: image.pinned },
    TaskTemplate: {
      ContainerSpec: containerSpec,
      Resources: { Limits: limits },
      // A crash-looping server stops being restarted after a few attempts, so its failed task
      // (with Docker's error) stays the newest one and observe can report it.
      RestartPolicy: { Condition: 'on-failure', Delay: 2e9, MaxAttempts: 5, Window: 120e9 },
      Placement: d.constraints?.length ? { Constraints: d.constraints } : {},
      Networks: networks,
    },
    Mode: { Replicated: { Replicas: d.stopped ? 0 : 1 } },
    // No PublishedPort: Docker picks a free one on the node; the mode=host port binds on the
    // daemon's default address (dockerd --ip), since Swarm's PortConfig has no host IP field.
    // dnsrr: the service name resolves straight to the task on the overlay network. A VIP needs
    // IPVS in the kernel, which hosts like this one (and the ingress mesh) may lack.
    EndpointSpec:
      d.networkMode === 'host'
        ? { Mode: 'dnsrr' }
        : { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: d.port, PublishMode: 'host' }] },
  };
}

export interface TaskView {
  state: ObservedState;
  message: string;
  /** The task that stands for the server now (the newest one it wants running), if any. */
  task?: any;
  /** A scaled-down service's task that is still running (shutting down), if any. */
  shuttingDown?: any;
}

/** What the tasks of a service with `replicas` desired replicas say about its server. */
export function interpretTasks(given: any[], replicas: number): TaskView {
  const tasks = [...given];
  // Newest task first; Swarm keeps old ones (task history) next to the current one.
  tasks.sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt) || (b.Version?.Index ?? 0) - (a.Version?.Index ?? 0));
  const wanted = tasks.filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready' || t.DesiredState === 'accepted');
  if (replicas === 0) {
    const live = tasks.find((t) => t.Status?.State === 'running');
    // Until its task has really stopped the server still runs: callers (the hub) must not
    // treat it as stopped and re-attach to the old process. The reconciler shows "Stopping".
    return live ? { state: 'running', message: 'scaled to 0; task shutting down', shuttingDown: live } : { state: 'stopped', message: 'scaled to 0' };
  }
  const task = wanted[0] ?? tasks[0];
  if (!task) return { state: 'pending', message: 'no task scheduled yet' };
  const st = task.Status ?? {};
  const state: string = st.State ?? 'pending';
  let observed: ObservedState = TASK_STATE[state] ?? (task.DesiredState === 'running' ? 'pending' : 'failed');
  if (['complete', 'shutdown', 'orphaned', 'remove'].includes(state) && wanted.length === 0) observed = 'failed';
  let message = [state, st.Err || st.Message].filter(Boolean).join(': ');
  // While Swarm waits to retry a crashed task, the newest task is just "new"/"pending"; the
  // failure that caused it is the useful news (like a crash-loop back-off), so report that.
  if (['pending', 'preparing', 'starting'].includes(observed)) {
    // Only failures of the same task spec count: after an update that fixed the cause, an old
    // failure says nothing about the new task.
    const sameSpec = JSON.stringify(task.Spec ?? {});
    const prev = tasks.find(
      (t) => t !== task && t.Slot === task.Slot && (t.Status?.State === 'failed' || t.Status?.State === 'rejected') && JSON.stringify(t.Spec ?? {}) === sameSpec,
    );
    if (prev) {
      observed = prev.Status.State === 'rejected' ? 'rejected' : 'failed';
      const attempts = tasks.filter((t) => t.Slot === task.Slot).length;
      message = `${prev.Status.State}: ${prev.Status.Err || prev.Status.Message}; Swarm retries (task ${attempts}, now ${state})`;
    }
  }
  return { state: observed, message, task };
}

/** Service labels that are bookkeeping, not configuration: never drift. */
const BOOKKEEPING_LABELS = new Set<string>([LABELS.writtenImage]);

/**
 * The part of a service spec nbswarm writes, in the canonical form drift is judged on (see
 * drift.ts): service labels, the task template and the endpoint. Left out: the name (kept for the
 * service's life), replicas (started/stopped on their own), Swarm's update and rollback
 * settings, ForceUpdate (a restart counter), network targets (Swarm stores IDs where nbswarm
 * writes names; aliases and count still count) and Privileges (Docker 20.10 drops
 * NoNewPrivileges and stores false, so it cannot be compared there).
 */
export function ownedServiceSpec(spec: any): any {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries<string>(spec?.Labels ?? {})) if (k.startsWith('nbswarm.io/') && !BOOKKEEPING_LABELS.has(k)) labels[k] = v;
  const { ForceUpdate: _f, Runtime: runtime, Networks: networks, ...task } = spec?.TaskTemplate ?? {};
  const { Privileges: _p, ...container } = task.ContainerSpec ?? {};
  return pruneEmpty({
    Labels: labels,
    TaskTemplate: {
      ...task,
      ContainerSpec: container,
      Runtime: runtime === 'container' ? undefined : runtime,
      Networks: (networks ?? []).map((n: any) => ({ aliases: (n?.Aliases ?? []).join(',') || '-' })),
    },
    EndpointSpec: spec?.EndpointSpec,
  });
}

/**
 * Where an observed service (its ownedServiceSpec) differs from the spec nbswarm would write now:
 * dotted paths, empty when it has not drifted. Service labels someone added are ignored (they
 * reach no container); changed or removed ones of ours are not.
 */
export function serviceDrift(observedOwned: any, desiredSpec: any): string[] {
  const want: any = ownedServiceSpec(desiredSpec) ?? {};
  const have: any = structuredClone(observedOwned ?? {});
  if (have.Labels) {
    for (const k of Object.keys(have.Labels)) if (!(k in (want.Labels ?? {}))) delete have.Labels[k];
    if (!Object.keys(have.Labels).length) delete have.Labels;
  }
  // Daemon defaults for fields nbswarm leaves unset.
  dropDefault(have, want, ['TaskTemplate', 'ContainerSpec', 'StopGracePeriod'], 10e9);
  dropDefault(have, want, ['TaskTemplate', 'ContainerSpec', 'Isolation'], 'default');
  return diffPaths(pruneEmpty(have), want);
}
