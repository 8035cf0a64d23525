/**
 * The pure parts of the Swarm backend: the service spec written for a DesiredServer, and what a
 * service's tasks say about the server (Swarm keeps old tasks next to the current one, and a
 * crash-looping task is retried under a new task).
 */
import { KEY_PREFIX, LABELS } from '../api/names.js';
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

/** The placement constraint that keeps a server on the node holding its volumes. */
export function pinConstraint(hostname: string): string {
  return `node.hostname==${hostname}`;
}

/**
 * `spec` (a service spec as Docker returns it) pinned to `hostname` (or unpinned when undefined):
 * only Placement and the service-level node label change, so Swarm keeps the running task when
 * its node satisfies the new placement (swarmkit compares placement apart from the rest).
 */
export function withPin(spec: any, hostname: string | undefined): any {
  const placement = spec.TaskTemplate?.Placement ?? {};
  const previous: string | undefined = spec.Labels?.[LABELS.node];
  // Only the old pin goes; a node.hostname constraint of the policy stays.
  const constraints: string[] = (placement.Constraints ?? []).filter((c: string) => !previous || c.replace(/\s+/g, '') !== pinConstraint(previous));
  if (hostname) constraints.push(pinConstraint(hostname));
  const labels = { ...(spec.Labels ?? {}) };
  if (hostname) labels[LABELS.node] = hostname;
  else delete labels[LABELS.node];
  return { ...spec, Labels: labels, TaskTemplate: { ...spec.TaskTemplate, Placement: { ...placement, Constraints: constraints } } };
}

/**
 * The service spec for `d`, pinned to `image.pinned`. Pure, so it can be unit-tested. `secrets`
 * are the ContainerSpec.Secrets entries of d.secretFiles (./secret-files.ts), made by the caller
 * once the Docker secrets exist.
 */
export function serviceSpec(d: DesiredServer, image: ResolvedImage, secrets: object[] = []): any {
  if (!isPinned(image.pinned)) {
    // A bare tag would make every task start pull from a registry (moby's executor).
    throw new BackendError(
      `refusing to hand Swarm the unpinned image "${image.pinned}"`,
      'DockerError',
      'docker service create',
      'resolve the image first (resolveImage)',
    );
  }
  const containerSpec: any = {
    Image: image.pinned,
    Labels: d.labels,
    Env: envList(d.env),
    Mounts: d.volumes.map((v) =>
      v.type === 'volume'
        ? {
            Type: 'volume',
            Source: v.source,
            Target: v.target,
            ReadOnly: !!v.readOnly,
            VolumeOptions: {
              Labels: { [LABELS.volume]: 'true', ...(v.labels ?? {}) },
              // Each node's daemon creates the volume with this driver when a task first mounts it there.
              DriverConfig: v.driver || v.driverOptions ? { Name: v.driver ?? 'local', Options: v.driverOptions } : undefined,
            },
          }
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
  if (secrets.length) containerSpec.Secrets = secrets;

  const limits: any = {};
  if (d.resources.nanoCpus) limits.NanoCPUs = d.resources.nanoCpus;
  if (d.resources.memoryBytes) limits.MemoryBytes = d.resources.memoryBytes;
  if (d.hardening.pidsLimit) limits.Pids = d.hardening.pidsLimit;
  const reservations: any = {};
  if (d.resources.reserveNanoCpus) reservations.NanoCPUs = d.resources.reserveNanoCpus;
  if (d.resources.reserveMemoryBytes) reservations.MemoryBytes = d.resources.reserveMemoryBytes;
  const constraints = [...(d.constraints ?? []), ...(d.pinNode ? [pinConstraint(d.pinNode)] : [])];

  const networks = d.networkMode === 'host' ? [{ Target: 'host' }] : d.network ? [{ Target: d.network, Aliases: [d.dockerName] }] : undefined;
  return {
    Name: d.dockerName,
    // Service labels only: the container's labels are part of the task spec, and a change there
    // would restart the task. The image written is recorded (a running server keeps it until it
    // restarts, and a human's --image is told apart from it); so is the node it is pinned to.
    Labels: { ...d.labels, [LABELS.writtenImage]: image.pinned, ...(d.pinNode ? { [LABELS.node]: d.pinNode } : {}) },
    TaskTemplate: {
      ContainerSpec: containerSpec,
      Resources: Object.keys(reservations).length ? { Limits: limits, Reservations: reservations } : { Limits: limits },
      // A crash-looping server stops being restarted after a few attempts, so its failed task
      // (with Docker's error) stays the newest one and observe can report it.
      RestartPolicy: { Condition: 'on-failure', Delay: 2e9, MaxAttempts: 5, Window: 120e9 },
      Placement: constraints.length ? { Constraints: constraints } : {},
      Networks: networks,
    },
    Mode: { Replicated: { Replicas: d.stopped ? 0 : 1 } },
    // No PublishedPort: Docker picks a free one on the node; the mode=host port binds on the
    // daemon's default address (dockerd --ip), since Swarm's PortConfig has no host IP field.
    // dnsrr: the service name resolves straight to the task on the overlay network. A VIP needs
    // IPVS in the kernel, which hosts like this one (and the ingress mesh) may lack.
    EndpointSpec: d.networkMode === 'host' ? { Mode: 'dnsrr' } : { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: d.port, PublishMode: 'host' }] },
  };
}

export interface TaskView {
  state: ObservedState;
  message: string;
  /** The task that stands for the server now (the newest one it wants running), if any. */
  task?: any;
  /** A scaled-down service's task that is still running (shutting down), if any. */
  shuttingDown?: any;
  /** Failures of the current version that Swarm restarted (or is about to). */
  restarts?: number;
  /** Docker's words for the newest of them. */
  lastFailure?: string;
  /** state 'failed': when the task failed and Swarm's restart policy gave up. */
  failedAt?: string;
}

/** What the service is now: tasks written for anything else are history. */
export interface ServiceVersion {
  /** The service's spec-hash label (task specs carry it in their container labels). */
  specHash?: string;
  /** TaskTemplate.ForceUpdate: bumped by a forced restart. */
  forceUpdate?: number;
  /** The service's UpdatedAt: tasks that ended before it (a scale-up, an update) say nothing about now. */
  updatedAt?: string;
}

const WANTED = new Set(['running', 'ready', 'accepted']);
const FAILED = new Set(['failed', 'rejected']);
/** A task that ended in one of these states with nothing to replace it means the server is down. */
const ENDED = new Set(['failed', 'rejected', 'complete']);

function describe(t: any): string {
  const st = t.Status ?? {};
  return [st.State, st.Err || st.Message].filter(Boolean).join(': ');
}

/**
 * What the tasks of a service with `replicas` desired replicas say about its server. Swarm keeps
 * old tasks (task history) next to the current one, and retries a crashed task under a new task
 * while its restart policy allows: while it does, the server is restarting (state 'pending' or
 * 'starting', with the count and the last failure), not failed. It is 'failed' only when the
 * newest task of the current version ended and none replaces it (the restart policy gave up).
 */
export function interpretTasks(given: any[], replicas: number, version: ServiceVersion = {}): TaskView {
  const tasks = [...given];
  // Newest task first.
  tasks.sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt) || (b.Version?.Index ?? 0) - (a.Version?.Index ?? 0));
  if (replicas === 0) {
    const live = tasks.find((t) => t.Status?.State === 'running');
    // Until its task has really stopped the server still runs: callers (the hub) must not
    // treat it as stopped and re-attach to the old process. The reconciler shows "Stopping".
    return live ? { state: 'running', message: 'scaled to 0; task shutting down', shuttingDown: live } : { state: 'stopped', message: 'scaled to 0' };
  }
  const since = Date.parse(version.updatedAt ?? '') || 0;
  const endedAt = (t: any): number => Date.parse(t.Status?.Timestamp ?? '') || 0;
  // A task of another spec (before an update or a forced restart) is history, even while it still
  // runs: the server answering there is the previous version.
  const current = (t: any): boolean =>
    (version.specHash === undefined || t.Spec?.ContainerSpec?.Labels?.[LABELS.specHash] === version.specHash) &&
    Number(t.Spec?.ForceUpdate ?? 0) === Number(version.forceUpdate ?? 0);
  const mine = tasks.filter((t) => current(t) && !(endedAt(t) < since && !WANTED.has(t.DesiredState)));
  const failures = mine.filter((t) => FAILED.has(t.Status?.State));
  const restarting = (view: TaskView): TaskView => (failures.length ? { ...view, restarts: failures.length, lastFailure: describe(failures[0]) } : view);

  const task = mine.find((t) => WANTED.has(t.DesiredState) && !FAILED.has(t.Status?.State));
  if (task) {
    const state: string = task.Status?.State ?? 'pending';
    let observed: ObservedState = TASK_STATE[state] ?? 'pending';
    // A wanted task that has ended: Swarm replaces it or gives up in a moment.
    if (ENDED.has(state) || state === 'shutdown') observed = 'starting';
    return restarting({ state: observed, message: describe(task) || 'pending', task });
  }
  // A failed task Swarm has not yet acted on (its desired state is still running): it restarts it
  // or gives up within moments; until then it counts as restarting.
  const crashed = mine.find((t) => WANTED.has(t.DesiredState) && FAILED.has(t.Status?.State));
  if (crashed) return restarting({ state: 'starting', message: `${describe(crashed)}; Swarm restarts it`, task: crashed });
  const ended = mine.find((t) => ENDED.has(t.Status?.State));
  if (ended) {
    const failed = failures.length ? failures : [ended];
    return {
      state: ended.Status?.State === 'rejected' ? 'rejected' : 'failed',
      message: describe(ended),
      task: ended,
      failedAt: ended.Status?.Timestamp,
      restarts: Math.max(0, failed.length - 1),
      lastFailure: describe(ended),
    };
  }
  const previous = tasks.find((t) => !current(t) && t.Status?.State === 'running');
  if (previous) return { state: 'starting', message: 'replacing the task of the previous spec' };
  return { state: 'pending', message: tasks.length ? 'waiting for Swarm to schedule a task of the current spec' : 'no task scheduled yet' };
}

/** Service labels that are bookkeeping, not configuration: never drift. */
const BOOKKEEPING_LABELS = new Set<string>([LABELS.writtenImage, LABELS.writtenAt]);

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
  for (const [k, v] of Object.entries<string>(spec?.Labels ?? {})) if (k.startsWith(KEY_PREFIX) && !BOOKKEEPING_LABELS.has(k)) labels[k] = v;
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
