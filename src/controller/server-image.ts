/**
 * The image one reconcile runs its server from: the registry credentials the policy names (a
 * Secret), a dashboard's image built from its source server's container (source-image.ts), and the
 * reference resolved to a local image ID or registry digest, so Swarm never pulls by tag. A problem
 * with any of them is written to the server's status here; the ones a retry may cure end the
 * reconcile with RetryLater.
 */
import type { NotebookServer, NotebookServerStatus } from '../api/types.js';
import { registryAuthFromSecret } from '../backends/registry.js';
import { BackendError, type Backend, type DesiredServer, type ObservedServer, type RegistryAuth, type ResolvedImage } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import type { OrphanCollector } from './gc.js';
import { RetryLater, type Ended, type ServerWrites } from './server-writes.js';
import { ensureSourceImage } from './source-image.js';
import { imageFailedStatus, imageResolved, waitingStatus } from './status-phases.js';

export interface ServerImageDeps {
  policy: Policy;
  backend: Backend;
  servers: { get(key: string): NotebookServer | undefined };
  secrets: { values(namespace: string, name: string): Record<string, string> | undefined };
  gc: Pick<OrphanCollector, 'removeImageSoon'>;
}

/** A dashboard's built image: `previous` is the one built before, which this one replaces. */
export interface SourceBuild {
  status: NotebookServerStatus;
  image?: string;
  previous?: string;
}

export class ServerImage {
  constructor(
    private readonly d: ServerImageDeps,
    private readonly writes: ServerWrites,
    private readonly now: () => string,
  ) {}

  /** The registry credentials image pulls use; missing ones are written to status and retried. */
  async registryAuth(obj: NotebookServer, old: NotebookServerStatus, status: NotebookServerStatus, resource: string): Promise<RegistryAuth | undefined> {
    const registry = this.credentials();
    if ('problem' in registry) {
      await this.writes.writeStatus(obj, old, imageFailedStatus(status, 'RegistryCredentialsMissing', registry.problem, this.now()), {
        type: 'Warning',
        reason: 'RegistryCredentialsMissing',
        message: registry.problem,
      });
      throw new RetryLater(registry.problem, resource, undefined, 'create the Secret named by registry.credentialsSecret in the policy');
    }
    return registry.auth;
  }

  /** Source-server image (dashboards built from another server's container); none for other servers. */
  async fromSourceServer(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    current: ObservedServer | undefined,
    auth: RegistryAuth | undefined,
  ): Promise<SourceBuild | Ended> {
    if (!obj.spec.source?.server) return { status };
    const { backend, policy } = this.d;
    const r = await ensureSourceImage({ backend, policy, server: (k) => this.d.servers.get(k), now: this.now, auth }, obj, status);
    if ('refused' in r) {
      await this.writes.fail(obj, old, status, r.refused.reason, r.refused.message);
      return { ended: undefined };
    }
    if ('wait' in r) {
      await this.writes.writeStatus(obj, old, waitingStatus(status, !!current, r.wait.reason, r.wait.message, this.now()), r.wait.event);
      return { ended: { requeueAfterMs: r.wait.requeueMs } };
    }
    if (r.built) {
      this.writes.countWrite('commit');
      await this.writes.event(obj, 'Normal', 'Built', `committed source server ${obj.spec.source.server}'s container to ${r.image}`);
    }
    return { status: r.status, image: r.image, previous: r.previous };
  }

  /** The desired image as a local ID or digest, and the status that records it. */
  async resolve(
    obj: NotebookServer,
    old: NotebookServerStatus,
    status: NotebookServerStatus,
    desired: DesiredServer,
    build: SourceBuild,
    auth: RegistryAuth | undefined,
    resource: string,
  ): Promise<{ image: ResolvedImage; status: NotebookServerStatus }> {
    try {
      const image = await this.d.backend.resolveImage(desired.image, build.image ? 'never' : desired.pullPolicy, undefined, { auth });
      return { image, status: imageResolved(status, desired.image, image, this.now()) };
    } catch (err) {
      if (!(err instanceof BackendError) || (err.reason !== 'ImageNotFound' && err.reason !== 'ImagePullFailed' && err.reason !== 'ImageNotShared')) throw err;
      const msg = `${err.message.includes(desired.image) ? '' : `image ${desired.image}: `}${err.message}${err.hint && !err.message.includes(err.hint) ? `; ${err.hint}` : ''}`;
      await this.writes.writeStatus(obj, old, imageFailedStatus(status, err.reason, msg, this.now()), { type: 'Warning', reason: err.reason, message: msg });
      throw new RetryLater(msg, resource, err.dockerCall, err.hint);
    }
  }

  /** Once the Docker object runs a new build, the build it replaced can go (now if Docker lets go of it, else by the GC pass). */
  async removeReplacedBuild(build: SourceBuild): Promise<void> {
    if (build.previous && build.previous !== build.image) await this.d.gc.removeImageSoon(build.previous);
  }

  /** Registry credentials from the Secret the policy names, if it names one. */
  private credentials(): { auth?: RegistryAuth } | { problem: string } {
    const ref = this.d.policy.registry?.credentialsSecret;
    if (!ref) return {};
    const address = this.d.policy.registry.address ?? '';
    const data = this.d.secrets.values(ref.namespace, ref.name);
    if (!data) return { problem: `registry credentials: Secret ${ref.namespace}/${ref.name} (policy registry.credentialsSecret) not found` };
    const auth = registryAuthFromSecret(data, address);
    if (!auth)
      return {
        problem: `registry credentials: Secret ${ref.namespace}/${ref.name} has no credentials for ${address} (expected .dockerconfigjson or username/password)`,
      };
    return { auth };
  }
}
