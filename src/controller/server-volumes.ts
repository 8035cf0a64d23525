/** The volumes a server mounts from the policy's volume templates, and which of them keep their data on one node. Pure. */
import { posix } from 'node:path';
import { LABELS, MANAGED_BY } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { VolumeMount } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { renderTemplate, volumeName } from '../config/templates.js';

/** Whether a volume template keeps its data on one node (see VolumeTemplate.shared). */
export function volumeIsNodeLocal(v: Pick<Policy['volumes'][number], 'type' | 'shared'>): boolean {
  return v.shared !== undefined ? !v.shared : (v.type ?? 'volume') === 'volume';
}

/**
 * The node-local named volumes `spec` gets from the policy (what pins a server on a multi-node
 * Swarm), without rendering the rest: used to find other servers that share them.
 */
export function nodeLocalVolumeNames(
  spec: Pick<NotebookServer['spec'], 'user' | 'servername' | 'systemUser'>,
  policy: Pick<Policy, 'prefix' | 'volumes' | 'homeDir'>,
): string[] {
  const vars = { prefix: policy.prefix, username: spec.user, servername: spec.servername ?? '' };
  const out: string[] = [];
  for (const v of policy.volumes) {
    if (!volumeIsNodeLocal(v)) continue;
    const target = renderTemplate(v.target, vars);
    if (spec.systemUser && (target === policy.homeDir || target.startsWith(policy.homeDir.replace(/\/+$/, '') + '/'))) continue;
    const name = renderTemplate(v.name, vars);
    out.push((v.type ?? 'volume') === 'bind' ? posix.normalize(name) : volumeName(name));
  }
  return out;
}

/** Who a server's volumes belong to: the values of their labels and of the system-user rule. */
export interface VolumeOwner {
  namespace: string;
  user: string;
  servername: string;
  uid: string;
  systemUser?: boolean;
}

/**
 * The mounts of the policy's volume templates rendered with `tplVars`; for a system user, those
 * inside the image's home are left out (the host home replaces them). `keep`: the volume names the
 * server's existing Docker object was created with, by mount target.
 */
export function templateVolumes(policy: Policy, tplVars: Record<string, string>, owner: VolumeOwner, keep?: Record<string, string>): VolumeMount[] {
  const { namespace, user, servername, uid } = owner;
  const volumes: VolumeMount[] = [];
  for (const v of policy.volumes) {
    const target = renderTemplate(v.target, tplVars);
    if (owner.systemUser && (target === policy.homeDir || target.startsWith(policy.homeDir.replace(/\/+$/, '') + '/'))) continue;
    if ((v.type ?? 'volume') === 'bind') {
      volumes.push({ source: posix.normalize(renderTemplate(v.name, tplVars)), target, type: 'bind', readOnly: v.readOnly });
      continue;
    }
    const driverOptions = v.driverOptions
      ? Object.fromEntries(Object.entries(v.driverOptions).map(([k, o]) => [k, renderTemplate(o, tplVars, { escape: false })]))
      : undefined;
    const perServer = v.name.includes('{servername}');
    const labels: Record<string, string> = {
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.volume]: perServer ? 'server' : 'user',
      [LABELS.namespace]: namespace,
      [LABELS.user]: user,
    };
    if (perServer) labels[LABELS.servername] = servername;
    if (v.deleteWithServer) {
      labels[LABELS.deleteWithServer] = 'true';
      labels[LABELS.uid] = uid;
    }
    const source = keep?.[target] ?? volumeName(renderTemplate(v.name, tplVars));
    const mount: VolumeMount = { source, target, type: 'volume', readOnly: v.readOnly, labels };
    if (v.driver) mount.driver = v.driver;
    if (driverOptions) mount.driverOptions = driverOptions;
    volumes.push(mount);
  }
  return volumes;
}
