/** Stopping a scaled-down service's task container ourselves, without Swarm's pause for gossip. */
import type Docker from 'dockerode';
import { statusOf, wrapDockerError } from './docker.js';
import type { SwarmReader } from './swarm-reader.js';

/** Swarm's default task stop grace period (ContainerSpec.StopGracePeriod unset), used for our own stop too. */
const STOP_GRACE_SECONDS = 10;
/** How long a scale-down waits for Swarm to mark the task for shutdown, and later to report it down. */
const TASK_SHUTDOWN_WAIT_MS = 2000;

/**
 * Stop a scaled-down service's task container ourselves when it runs on this node. Swarm stops a
 * task attached to any network but the default bridge (host networking, an overlay) only after a
 * fixed 2 s pause for its service-discovery gossip to converge (moby's executor,
 * defaultGossipConvergeDelay); a notebook server being stopped has no callers to drain, so that
 * pause was most of a stop. The container is stopped only once Swarm no longer wants the task
 * running (so its exit is never taken for a crash to restart), with Swarm's own grace period,
 * and the call returns when Swarm reports the task down. A container on another node (not found
 * here) is left to Swarm.
 */
export async function stopTaskNow(docker: Docker, reader: SwarmReader, serviceId: string, containerId: string): Promise<void> {
  const tasksOf = async () => (await reader.listTasks({ service: [serviceId] })).get(serviceId) ?? [];
  const ours = (tasks: any[]) => tasks.find((t) => t.Status?.ContainerStatus?.ContainerID === containerId);
  if (!(await until(async () => ours(await tasksOf())?.DesiredState !== 'running', TASK_SHUTDOWN_WAIT_MS))) return;
  try {
    await docker.getContainer(containerId).stop({ t: STOP_GRACE_SECONDS });
  } catch (err) {
    const s = statusOf(err);
    if (s === 404) return; // on another node: Swarm stops it
    if (s !== 304) throw wrapDockerError(`docker stop ${containerId.slice(0, 12)}`, err);
  }
  await until(async () => ours(await tasksOf())?.Status?.State !== 'running', TASK_SHUTDOWN_WAIT_MS);
}

/** Poll `cond` every 10 ms for up to `ms`; whether it held. */
async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}
