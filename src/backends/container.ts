/**
 * Plain-container backend (kind 'container'), for a Docker host without Swarm: `-p HOSTIP::PORT`,
 * port read back from inspect; a spec change recreates the container (volumes survive). The
 * container body and drift (./container-spec.ts) and the reading of Docker's answers
 * (./container-observe.ts) are pure; this file does the Docker calls.
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import { BaseBackend, labelFilter, MANAGED_FILTER } from './base-backend.js';
import { observeInspected, observeSummary } from './container-observe.js';
import { containerDrift, containerSpec, ownedContainerConfig, UPDATABLE_HOST_CONFIG } from './container-spec.js';
import { statusOf, wrapDockerError, type BackendOptions } from './docker.js';
import { digestOf, WrittenShapes } from './drift.js';
import { secretFilesTar } from './secret-files.js';
import { nameTaken } from './name-taken.js';
import { BackendError, type ApplyResult, type BackendEvent, type DesiredServer, type ObservedServer, type ResolvedImage } from './types.js';

export class ContainerBackend extends BaseBackend {
  readonly kind = 'container' as const;
  /** How containers looked right after the operator wrote them, when that already "differs" (see drift.ts). */
  private readonly shapes = new WrittenShapes();

  constructor(docker: Docker, opts: BackendOptions = {}) {
    super(docker, opts);
  }

  /**
   * One resource's containers, each inspected. A refetch follows an event about them, and
   * `docker ps` answers from a view Docker updates after it sends the event: right after "die"
   * it still says "running" (measured: a crash-looping container then read as running for
   * 5–30 s). Inspect reads the container itself.
   */
  async fetchUid(uid: string): Promise<ObservedServer[]> {
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true, filters: labelFilter(`${LABELS.uid}=${uid}`) });
    } catch (err) {
      throw wrapDockerError('docker ps', err);
    }
    const out = await Promise.all(
      list
        .filter((c) => c.State !== 'removing' && c.State !== 'dead')
        .map((c) => this.observeById(c.Id).catch((err) => (statusOf((err as BackendError).cause) === 404 ? undefined : Promise.reject(err)))),
    );
    return out.filter((o): o is ObservedServer => !!o);
  }

  listAll(): Promise<ObservedServer[]> {
    return this.list(labelFilter(MANAGED_FILTER));
  }

  /**
   * Observe from the list answer itself (labels, state, ports are in it); only a container in an
   * unusual state (restarting, paused, or exited with a code our stop does not produce) is
   * inspected, for Docker's own error, restart count and paused-but-running.
   */
  private async list(filters: string): Promise<ObservedServer[]> {
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true, filters });
    } catch (err) {
      throw wrapDockerError('docker ps', err);
    }
    // A container Docker is removing (or failed to remove) is already gone for our purposes:
    // starting it again would only get a 409 "marked for removal".
    list = list.filter((c) => c.State !== 'removing' && c.State !== 'dead');
    const node = await this.dockerHostName();
    const out = await Promise.all(
      list.map((c) => {
        const o = observeSummary(c, node);
        if (o) return o;
        return this.observeById(c.Id).catch((err) => (statusOf((err as BackendError).cause) === 404 ? undefined : Promise.reject(err)));
      }),
    );
    return out.filter((o): o is ObservedServer => !!o);
  }

  private async inspect(id: string): Promise<any | undefined> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw wrapDockerError(`docker inspect ${id}`, err);
    }
  }

  private async observeById(id: string): Promise<ObservedServer> {
    const c = await this.inspect(id);
    if (!c) throw new BackendError(`container ${id} is gone`, 'Conflict', `docker inspect ${id}`, undefined, { statusCode: 404 });
    return this.observeContainer(c);
  }

  async observeContainer(c: any): Promise<ObservedServer> {
    return observeInspected(c, await this.dockerHostName());
  }

  private async create(d: DesiredServer, image: ResolvedImage): Promise<string> {
    await this.ensureVolumes(d);
    const spec = containerSpec(d, image);
    let id: string;
    try {
      const c = await this.docker.createContainer(spec);
      id = c.id;
    } catch (err) {
      const s = statusOf(err);
      if (s === 409) {
        // The name is taken: by this server's own container (a create whose answer was lost),
        // which is used, or by anyone else's, which is never touched (the reconciler renames).
        const holder: any = await this.docker
          .getContainer(d.dockerName)
          .inspect()
          .catch(() => undefined);
        if (holder?.Config?.Labels?.[LABELS.uid] === d.uid) return String(holder.Id);
        throw nameTaken('container', d.dockerName, holder?.Config?.Labels, err);
      }
      throw wrapDockerError(
        `docker create ${d.dockerName}`,
        err,
        undefined,
        s === 404 && /image/i.test(String((err as Error).message)) ? 'ImageNotFound' : undefined,
      );
    }
    if (d.secretFiles?.length) {
      // Before the first start, so the server never runs without them.
      try {
        await this.docker.getContainer(id).putArchive(secretFilesTar(d.secretFiles), { path: '/' });
      } catch (err) {
        await this.docker
          .getContainer(id)
          .remove({ force: true })
          .catch(() => undefined);
        throw wrapDockerError(
          `docker cp (secret files) ${d.dockerName}:/run/secrets`,
          err,
          d.hardening.readOnlyRootfs ? 'a read-only root filesystem takes no files; secret files need a writable one on the container backend' : undefined,
        );
      }
    }
    if (!d.stopped) await this.start(id, d.dockerName);
    return id;
  }

  private async start(id: string, name: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusOf(err) === 304) return;
      throw wrapDockerError(`docker start ${name}`, err);
    }
  }

  protected async applyNow(d: DesiredServer, image: ResolvedImage, current?: ObservedServer): Promise<ApplyResult> {
    if (!current) current = (await this.find(d.uid))[0];
    if (!current) {
      const id = await this.create(d, image);
      return { action: 'created', observed: await this.observeWritten(id, d, image) };
    }
    if (current.specHash !== d.specHash) {
      // Docker cannot change a container's image, command or mounts in place: replace it.
      // Named volumes are not removed (v: false), so the user's files carry over.
      await this.remove(current);
      const id = await this.create(d, image);
      return { action: 'recreated', observed: await this.observeWritten(id, d, image) };
    }
    const live = current.state === 'running' || current.state === 'starting';
    // The tag now names another image (re-pushed or pulled): taken when the server starts, or at
    // once when asked; a running server is never restarted for it otherwise.
    const newerImage = !!current.image && current.image.startsWith('sha256:') && current.image !== image.id;
    if (newerImage && !d.stopped && (!live || d.imageUpdates === 'immediate')) {
      await this.remove(current);
      const id = await this.create(d, image);
      return { action: live ? 'recreated' : 'started', observed: await this.observeWritten(id, d, image) };
    }
    // A stopped server keeps its container as written until it starts (see the Swarm backend).
    const drift = d.stopped ? [] : this.driftOf(current, d, image);
    if (drift.length) return this.revert(current, d, image, drift);
    const kept = newerImage && live ? { keptImage: current.image } : {};
    if (d.stopped && live) {
      await this.stop(current);
      return { action: 'stopped', observed: await this.observeById(current.id) };
    }
    if (!d.stopped && !live) {
      await this.start(current.id, current.name);
      return { action: 'started', observed: await this.observeById(current.id) };
    }
    return { action: 'unchanged', observed: current, ...kept };
  }

  /**
   * Where container `current` differs from what nbswarm would create now, ignoring how it looked
   * right after the operator's own write for this spec hash.
   */
  private driftOf(current: ObservedServer, d: DesiredServer, image: ResolvedImage): string[] {
    if (current.observedSpec === undefined) return [];
    const drift = containerDrift(current.observedSpec, containerSpec(d, image));
    if (drift.length && this.shapes.isOwnWrite(current.id, d.specHash, digestOf(current.observedSpec))) return [];
    return drift;
  }

  /**
   * Write back what someone changed with `docker update`: in place when every drifted field has a
   * value nbswarm sets (Docker's update cannot unset a limit), else, or when the update did not
   * take, by recreating the container (volumes survive).
   */
  private async revert(current: ObservedServer, d: DesiredServer, image: ResolvedImage, drift: string[]): Promise<ApplyResult> {
    const want = containerSpec(d, image).HostConfig;
    const owned = ownedContainerConfig(want);
    const inPlace = drift.every((p) => owned[p.split('.')[0]!] !== undefined);
    if (inPlace) {
      const body: Record<string, unknown> = {};
      for (const k of UPDATABLE_HOST_CONFIG) if (owned[k] !== undefined) body[k] = want[k];
      if (typeof body.Memory === 'number' && body.MemorySwap === undefined) body.MemorySwap = 2 * body.Memory;
      try {
        await this.docker.getContainer(current.id).update(body);
      } catch (err) {
        throw wrapDockerError(`docker update ${current.name}`, err);
      }
      const after = await this.observeById(current.id);
      if (!containerDrift(after.observedSpec, containerSpec(d, image)).length) return { action: 'reverted', observed: after, drift };
    }
    await this.remove(current);
    const id = await this.create(d, image);
    return { action: 'reverted', observed: await this.observeWritten(id, d, image), drift };
  }

  /**
   * Observe a container just created for `d`. When Docker stored it differently from what was
   * written (a normalisation drift.ts does not know), remember that shape so it is never "reverted".
   */
  private async observeWritten(id: string, d: DesiredServer, image: ResolvedImage): Promise<ObservedServer> {
    const obs = await this.observeById(id);
    const left = containerDrift(obs.observedSpec, containerSpec(d, image));
    if (left.length) {
      this.shapes.remember(id, d.specHash, digestOf(obs.observedSpec));
      this.log?.warn('Docker stored a container config that differs from the one written; not treated as drift', { container: obs.name, paths: left });
    }
    return obs;
  }

  protected async restartNow(observed: ObservedServer): Promise<ObservedServer> {
    await this.start(observed.id, observed.name);
    return this.observeById(observed.id);
  }

  private async stop(observed: ObservedServer): Promise<void> {
    try {
      await this.docker.getContainer(observed.id).stop({ t: 10 });
    } catch (err) {
      const s = statusOf(err);
      if (s !== 304 && s !== 404) throw wrapDockerError(`docker stop ${observed.name}`, err);
    }
  }

  protected async removeNow(observed: ObservedServer): Promise<void> {
    // Stop first so the server gets SIGTERM and its grace period, not an immediate SIGKILL.
    if (observed.state !== 'stopped') await this.stop(observed);
    try {
      await this.docker.getContainer(observed.id).remove({ force: true, v: false });
    } catch (err) {
      const s = statusOf(err);
      if (s === 404) return;
      if (s === 409 && /already in progress/i.test(String((err as Error).message))) return;
      throw wrapDockerError(`docker rm -f ${observed.name}`, err);
    }
  }

  protected eventFilters(): Record<string, string[]> {
    return { type: ['container'], label: [MANAGED_FILTER] };
  }

  protected mapEvent(raw: any): BackendEvent | undefined {
    return raw?.Type === 'container' ? this.containerEvent(raw) : undefined;
  }
}
