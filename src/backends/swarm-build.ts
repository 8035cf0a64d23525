/**
 * Source-server images on a multi-node Swarm. `docker commit` works only on the daemon that runs
 * the container, and the manager's API cannot reach another node's containers; so the commit runs
 * where the container is: a one-off Swarm job on that node, from an image with the docker CLI
 * (policy sourceImages.builderImage, e.g. docker:cli), with the node's Docker socket mounted. It
 * commits the container and pushes the result to the registry; the operator then names the image
 * by the registry's digest, so the dashboard runs on any node.
 *
 * The job is labelled with the image it builds, so an operator restarted mid-build finds it and
 * waits for it instead of starting a second one. Job services carry no managed-by label: they are
 * never mistaken for servers (nor collected as their orphans).
 */
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { hintFromDaemon, statusOf, wrapDockerError } from './docker.js';
import { registryDigest, withoutTag } from './registry.js';
import { BackendError, type RegistryAuth } from './types.js';

/** Where a node's dockerd listens, as seen from a container on that node. */
export const NODE_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * The job's script: commit with the given options, then push. Arguments come as positional
 * parameters ("$@"), never spliced into the script, so no value can change what runs.
 */
const BUILD_SCRIPT = 'set -e; docker commit "$@" >/dev/null; exec docker push "$NBSWARM_BUILD_TARGET"';

export interface BuildJob {
  /** Swarm hostname of the node that runs the source container. */
  node: string;
  containerId: string;
  /** repository:tag to build, including the registry. */
  target: string;
  /** The builder image, pinned (digest). */
  builderImage: string;
  /** Labels the committed image gets (Dockerfile LABEL changes). */
  labels: Record<string, string>;
  comment: string;
  /** Swarm secret holding a docker config.json for the push, when the registry needs credentials. */
  credentials?: { secretId: string; secretName: string };
}

export function buildJobName(target: string): string {
  return `nbswarm-build-${createHash('sha256').update(target).digest('hex').slice(0, 16)}`;
}

/** A Dockerfile LABEL instruction; JSON strings are valid Dockerfile quoting for keys and values. */
function labelChange(key: string, value: string): string {
  return `LABEL ${JSON.stringify(key)}=${JSON.stringify(value)}`;
}

/** The service spec of the builder job. Pure. */
export function buildJobSpec(j: BuildJob): any {
  if (!/^[0-9a-f]{12,64}$/.test(j.containerId)) throw new BackendError(`not a container ID: ${JSON.stringify(j.containerId)}`, 'CommitFailed', 'docker commit');
  const args = [
    '--pause=true',
    '--message',
    j.comment,
    ...Object.entries(j.labels).flatMap(([k, v]) => ['--change', labelChange(k, v)]),
    j.containerId,
    j.target,
  ];
  const env = [`NBSWARM_BUILD_TARGET=${j.target}`];
  const spec: any = {
    Name: buildJobName(j.target),
    Labels: { [LABELS.buildTarget]: j.target },
    TaskTemplate: {
      ContainerSpec: {
        Image: j.builderImage,
        Command: ['sh', '-c', BUILD_SCRIPT, 'nbswarm-build', ...args],
        Env: env,
        Labels: { [LABELS.buildTarget]: j.target },
        Mounts: [{ Type: 'bind', Source: NODE_DOCKER_SOCKET, Target: NODE_DOCKER_SOCKET }],
      },
      RestartPolicy: { Condition: 'none' },
      Placement: { Constraints: [`node.hostname==${j.node}`] },
    },
    Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
  };
  if (j.credentials) {
    // The CLI reads $DOCKER_CONFIG/config.json; Swarm puts secrets under /run/secrets.
    env.push('DOCKER_CONFIG=/run/secrets');
    spec.TaskTemplate.ContainerSpec.Secrets = [
      { SecretID: j.credentials.secretId, SecretName: j.credentials.secretName, File: { Name: 'config.json', UID: '0', GID: '0', Mode: 0o400 } },
    ];
  }
  return spec;
}

/** A docker config.json with credentials for `auth.serveraddress`. */
export function dockerConfigJson(auth: RegistryAuth): string {
  const entry = auth.identitytoken
    ? { identitytoken: auth.identitytoken }
    : { auth: Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64') };
  return JSON.stringify({ auths: { [auth.serveraddress]: entry } });
}

export interface BuildOptions {
  timeoutMs: number;
  pollMs: number;
  sleep?: (ms: number) => Promise<void>;
}

/** What the job's tasks say: still running, done, or failed with Docker's words. */
export function jobOutcome(tasks: any[]): { done: true } | { failed: string } | { running: true } {
  if (tasks.some((t) => t?.Status?.State === 'complete')) return { done: true };
  const failed = tasks.find((t) => ['failed', 'rejected', 'shutdown', 'orphaned'].includes(t?.Status?.State));
  if (failed && tasks.every((t) => ['failed', 'rejected', 'shutdown', 'orphaned', 'complete'].includes(t?.Status?.State))) {
    return { failed: `${failed.Status.State}: ${failed.Status.Err || failed.Status.Message || 'no message'}` };
  }
  return { running: true };
}

/**
 * Run (or join) the builder job for `j` and wait for it; returns the pushed image's digest
 * reference. The job service (and its credentials secret) is removed afterwards.
 */
export async function runBuildJob(docker: Docker, j: Omit<BuildJob, 'credentials'>, auth: RegistryAuth | undefined, o: BuildOptions): Promise<string> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const call = `docker commit ${j.containerId.slice(0, 12)} ${j.target} (job ${buildJobName(j.target)} on ${j.node})`;
  let id = await findJob(docker, j.target);
  let secret: { secretId: string; secretName: string } | undefined;
  try {
    if (!id) {
      if (auth) secret = await createCredentials(docker, j.target, auth);
      try {
        const created: any = await docker.createService(auth as any, buildJobSpec({ ...j, credentials: secret }));
        id = String(created.id ?? created.ID);
      } catch (err) {
        // Another replica or an earlier attempt created it meanwhile: join that one.
        if (statusOf(err) !== 409) throw wrapDockerError(`docker service create ${buildJobName(j.target)}`, err, hintFromDaemon(err), 'CommitFailed');
        id = await findJob(docker, j.target);
        if (!id) throw wrapDockerError(`docker service create ${buildJobName(j.target)}`, err, undefined, 'CommitFailed');
      }
    }
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      let tasks: any[];
      try {
        tasks = (await docker.listTasks({ filters: JSON.stringify({ service: [id] }) } as object)) as unknown as any[];
      } catch (err) {
        throw wrapDockerError('docker service ps', err, undefined, 'CommitFailed');
      }
      const outcome = jobOutcome(tasks);
      if ('done' in outcome) break;
      if ('failed' in outcome) {
        throw new BackendError(
          `${call} failed: ${outcome.failed}${await logTail(docker, id)}`,
          'CommitFailed',
          call,
          'the builder image needs the docker CLI and a shell (sourceImages.builderImage, e.g. docker:cli); the node must reach the registry',
        );
      }
      if (Date.now() > deadline) {
        throw new BackendError(
          `${call} did not finish within ${Math.round(o.timeoutMs / 1000)} s (${describeTasks(tasks)})`,
          'CommitFailed',
          call,
          'is the node up, and can it pull the builder image and reach the registry?',
        );
      }
      await sleep(o.pollMs);
    }
  } finally {
    // A finished or failed job is removed; one still running is left for the next attempt to join.
    if (id && (await jobFinished(docker, id)))
      await docker
        .getService(id)
        .remove()
        .catch(() => undefined);
    if (secret)
      await docker
        .getSecret(secret.secretId)
        .remove()
        .catch(() => undefined);
  }
  const digest = await registryDigest(docker, j.target, auth);
  if (!digest)
    throw new BackendError(`${call}: the job finished but the registry has no ${j.target}`, 'CommitFailed', call, 'check the registry address in the policy');
  return `${withoutTag(j.target)}@${digest}`;
}

async function findJob(docker: Docker, target: string): Promise<string | undefined> {
  try {
    const list = (await docker.listServices({ filters: JSON.stringify({ label: [`${LABELS.buildTarget}=${target}`] }) } as any)) as unknown as any[];
    return list.find((s) => s.Spec?.Labels?.[LABELS.buildTarget] === target)?.ID;
  } catch (err) {
    throw wrapDockerError('docker service ls', err, undefined, 'CommitFailed');
  }
}

async function jobFinished(docker: Docker, id: string): Promise<boolean> {
  try {
    const tasks = (await docker.listTasks({ filters: JSON.stringify({ service: [id] }) } as object)) as unknown as any[];
    return !('running' in jobOutcome(tasks));
  } catch {
    return false;
  }
}

async function createCredentials(docker: Docker, target: string, auth: RegistryAuth): Promise<{ secretId: string; secretName: string }> {
  const secretName = `${buildJobName(target)}-${Date.now().toString(36)}`;
  try {
    const s: any = await docker.createSecret({
      Name: secretName,
      Labels: { [LABELS.buildTarget]: target },
      Data: Buffer.from(dockerConfigJson(auth)).toString('base64'),
    } as any);
    return { secretId: String(s.id ?? s.ID), secretName };
  } catch (err) {
    throw wrapDockerError(`docker secret create ${secretName}`, err, undefined, 'CommitFailed');
  }
}

function describeTasks(tasks: any[]): string {
  return tasks.map((t) => `${t?.Status?.State ?? '?'}${t?.Status?.Err ? ` (${t.Status.Err})` : ''}`).join(', ') || 'no task yet';
}

/** The last lines the job printed, for the failure message. */
async function logTail(docker: Docker, id: string): Promise<string> {
  try {
    const buf: any = await docker.getService(id).logs({ stdout: true, stderr: true, tail: 5 } as any);
    const text = demux(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf ?? ''))).trim();
    return text ? `; output: ${text.split('\n').slice(-3).join(' | ').slice(0, 500)}` : '';
  } catch {
    return '';
  }
}

/** Docker's multiplexed log frames (8-byte headers) as text. */
function demux(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2) && buf[i + 1] === 0) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return i === 0 ? buf.toString('utf8') : out;
}
