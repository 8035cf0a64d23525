/**
 * DesiredServer.secretFiles → what each backend hands Docker, so secret content never sits in a
 * container's environment (visible to `docker inspect`):
 * - Swarm: one Docker secret per file (encrypted in the Swarm's Raft log, mounted on a tmpfs at
 *   /run/secrets/<name> in the task). Its name carries a digest of the content, so a changed
 *   Secret makes a new Docker secret (Docker secrets are immutable) and the service update swaps it.
 * - plain containers (no secret store outside Swarm): a tar with the files, copied into the
 *   created container before it starts (the container's own filesystem, not its config).
 * Files are 0444 root-owned like Docker's default secret mode: the server's user reads them; the
 * start prelude copies an ssh key to a private file because ssh refuses readable keys.
 */
import { createHash } from 'node:crypto';
import { LABELS, MANAGED_BY } from '../api/names.js';
import type { DesiredServer, SecretFile } from './types.js';

export const SECRET_FILE_MODE = 0o444;

/** The Docker secret name of `f` for server `d`: at most 64 characters, Docker's alphabet. */
export function swarmSecretName(d: Pick<DesiredServer, 'dockerName' | 'uid'>, f: SecretFile): string {
  const digest = createHash('sha256').update(`${d.uid}\0${f.name}\0${f.data}`).digest('hex').slice(0, 12);
  const safe = (s: string, n: number) =>
    s
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .slice(0, n)
      .replace(/^[^A-Za-z0-9]+/, '');
  return `${safe(d.dockerName, 24)}-${safe(f.name, 24)}-${digest}`;
}

/** Labels of a server's Docker secrets: found (and removed) by the server's uid like its other objects. */
export function swarmSecretLabels(d: Pick<DesiredServer, 'uid' | 'namespace' | 'name'>): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.uid]: d.uid, [LABELS.namespace]: d.namespace, [LABELS.name]: d.name };
}

/** ContainerSpec.Secrets entries for the files, given the Docker secret ID of each name. */
export function swarmSecretRefs(d: DesiredServer, ids: ReadonlyMap<string, string>): object[] {
  return (d.secretFiles ?? []).map((f) => {
    const name = swarmSecretName(d, f);
    return { SecretID: ids.get(name), SecretName: name, File: { Name: f.name, UID: '0', GID: '0', Mode: SECRET_FILE_MODE } };
  });
}

/** One 512-byte ustar header. */
function tarHeader(name: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number) => h.write(value, offset, length, 'utf8');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A tar of the files under run/secrets/, root-owned, for `docker cp` (putArchive at "/"). */
export function secretFilesTar(files: readonly SecretFile[]): Buffer {
  const parts: Buffer[] = [tarHeader('run/secrets/', 0, 0o755, '5')];
  for (const f of files) {
    if (!/^[A-Za-z0-9_.-]{1,80}$/.test(f.name)) throw new Error(`secret file name "${f.name}" is not a plain file name`);
    const data = Buffer.from(f.data, 'utf8');
    parts.push(tarHeader(`run/secrets/${f.name}`, data.length, SECRET_FILE_MODE, '0'), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
