/** NBSWARM_* environment variables: which policy key each sets, and how its text is read. */
import { PolicyError } from './policy-error.js';

type EnvReader = (raw: string, name: string) => unknown;
const asInt: EnvReader = (raw, name) => {
  if (!/^\d+$/.test(raw.trim())) throw new PolicyError(`environment variable ${name}: "${raw}" is not a whole number`, [name]);
  return Number(raw.trim());
};
const asBool: EnvReader = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new PolicyError(`environment variable ${name}: "${raw}" is not a boolean (true/false)`, [name]);
};
const asList: EnvReader = (raw) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const asString: EnvReader = (raw) => raw.trim();

/** NBSWARM_* variables and the policy key each one sets. */
export const POLICY_ENV: Record<string, { key: string; read: EnvReader }> = {
  NBSWARM_PREFIX: { key: 'prefix', read: asString },
  NBSWARM_NAME_TEMPLATE: { key: 'nameTemplate', read: asString },
  NBSWARM_DEFAULT_IMAGE: { key: 'defaultImage', read: asString },
  NBSWARM_ALLOWED_IMAGES: { key: 'allowedImages', read: asList },
  NBSWARM_LOCAL_IMAGES: { key: 'localImages', read: asList },
  NBSWARM_PULL_POLICY: { key: 'pullPolicy', read: asString },
  NBSWARM_BACKEND: { key: 'backend', read: asString },
  // Not NBSWARM_PORT: that is the embedded API server's listen port.
  NBSWARM_SERVER_PORT: { key: 'port', read: asInt },
  NBSWARM_NETWORK_MODE: { key: 'networkMode', read: asString },
  NBSWARM_NETWORK: { key: 'network', read: asString },
  NBSWARM_HOST_PORT_RANGE: {
    key: 'hostPortRange',
    read: (raw, name) => {
      const m = /^\s*(\d+)\s*[-:,]\s*(\d+)\s*$/.exec(raw);
      if (!m) throw new PolicyError(`environment variable ${name}: "${raw}" is not a port range like 20000-20999`, [name]);
      return [Number(m[1]), Number(m[2])];
    },
  },
  NBSWARM_PUBLISH_HOST_IP: { key: 'publishHostIp', read: asString },
  NBSWARM_CONSTRAINTS: { key: 'constraints', read: asList },
  NBSWARM_REGISTRY: { key: 'registry.address', read: asString },
  NBSWARM_PROBE_NETWORKS: { key: 'probeNetworks', read: asList },
  NBSWARM_DEFAULT_MODE: { key: 'defaultMode', read: asString },
  NBSWARM_HOME_DIR: { key: 'homeDir', read: asString },
  NBSWARM_SYSTEM_USERS: { key: 'systemUsers.enabled', read: asBool },
  NBSWARM_SYSTEM_USER_GROUPS: { key: 'systemUsers.allowedGroups', read: asList },
  NBSWARM_CULLING: { key: 'culling.enabled', read: asBool },
  NBSWARM_IDLE_TIMEOUT_SECONDS: { key: 'culling.idleTimeoutSeconds', read: asInt },
  NBSWARM_RESYNC_SECONDS: { key: 'resyncSeconds', read: asInt },
  NBSWARM_CONCURRENCY: { key: 'concurrency', read: asInt },
};

export function envOverrides(env: NodeJS.ProcessEnv): { doc: Record<string, unknown>; origin: Map<string, string> } {
  const doc: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  for (const [name, { key, read }] of Object.entries(POLICY_ENV)) {
    const raw = env[name];
    if (raw === undefined) continue;
    const parts = key.split('.');
    let o = doc;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts.at(-1)!] = read(raw, name);
    origin.set(key, `environment variable ${name}`);
  }
  return { doc, origin };
}
