/**
 * The Docker secrets that carry a Swarm server's secret files: named by a digest of their content
 * (a changed Secret makes new ones), labelled with the server's uid, removed once no spec of the
 * server references them.
 */
import type Docker from 'dockerode';
import { LABELS } from '../api/names.js';
import type { Logger } from '../log.js';
import { labelFilter } from './base-backend.js';
import { hintFromDaemon, statusOf, wrapDockerError } from './docker.js';
import { swarmSecretLabels, swarmSecretName, swarmSecretRefs } from './secret-files.js';
import type { DesiredServer, ObservedServer } from './types.js';

export class SwarmSecrets {
  constructor(
    private readonly docker: Docker,
    private readonly log: Logger | undefined,
  ) {}

  /**
   * ContainerSpec.Secrets for the drift check of an idle reconcile: the service's own entries when it
   * references every secret d wants (secret names carry a digest of their content, so the same name
   * is the same secret), read from the observed spec without a Docker call; else the secrets are made.
   */
  async refsOf(d: DesiredServer, current: ObservedServer): Promise<object[]> {
    if (!d.secretFiles?.length) return [];
    const refs: any[] = (current.observedSpec as any)?.TaskTemplate?.ContainerSpec?.Secrets ?? [];
    const ids = new Map<string, string>(refs.filter((r) => r?.SecretName && r.SecretID).map((r) => [r.SecretName, r.SecretID]));
    if (d.secretFiles.every((f) => ids.has(swarmSecretName(d, f)))) return swarmSecretRefs(d, ids);
    return this.ensure(d);
  }

  /** The Docker secrets of d.secretFiles, created when missing; their ContainerSpec.Secrets entries. */
  async ensure(d: DesiredServer): Promise<object[]> {
    const files = d.secretFiles ?? [];
    if (!files.length) return [];
    const existing = await this.list(d.uid);
    const ids = new Map<string, string>(existing.map((s) => [s.Spec?.Name, s.ID]));
    for (const f of files) {
      const name = swarmSecretName(d, f);
      if (ids.has(name)) continue;
      try {
        const res: any = await this.docker.createSecret({ Name: name, Labels: swarmSecretLabels(d), Data: Buffer.from(f.data, 'utf8').toString('base64') });
        ids.set(name, res.id ?? res.ID);
      } catch (err) {
        if (statusOf(err) !== 409) throw wrapDockerError(`docker secret create ${name}`, err, hintFromDaemon(err));
        const again = (await this.list(d.uid)).find((s) => s.Spec?.Name === name);
        if (!again) throw wrapDockerError(`docker secret create ${name}`, err, 'a secret of that name exists but is not labelled for this resource: remove it');
        ids.set(name, again.ID);
      }
    }
    return swarmSecretRefs(d, ids);
  }

  /** Remove the server's Docker secrets that its spec no longer references (a changed Secret's old content). */
  async prune(d: DesiredServer): Promise<void> {
    const keep = new Set((d.secretFiles ?? []).map((f) => swarmSecretName(d, f)));
    await this.remove(d.uid, keep);
  }

  async remove(uid: string, keep: ReadonlySet<string>): Promise<void> {
    const stale = (await this.list(uid)).filter((s) => !keep.has(s.Spec?.Name));
    // Best effort: a secret still referenced by a service (a racing update) is refused and tried
    // again with the next write or the removal of the service.
    await Promise.all(
      stale.map((s) =>
        this.docker
          .getSecret(s.ID)
          .remove()
          .catch((err: unknown) => {
            if (statusOf(err) !== 404) this.log?.debug('docker secret rm deferred', { secret: s.Spec?.Name, error: (err as Error).message });
          }),
      ),
    );
  }

  private async list(uid: string): Promise<any[]> {
    try {
      return (await this.docker.listSecrets({ filters: labelFilter(`${LABELS.uid}=${uid}`) } as object)) as any[];
    } catch (err) {
      throw wrapDockerError('docker secret ls', err, hintFromDaemon(err));
    }
  }
}
