/**
 * Loading the operator's policy: defaults ← YAML file (deep merge, lists replace) ← NBSWARM_* env
 * ← explicit overrides (flags), then validation that names the key and where it came from.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Ajv, type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { MODES, type Mode } from '../api/types.js';
import { APP_PATH_PATTERN, MODE_PATTERN, TOKEN_PATTERN } from '../api/schema.js';
import type { LauncherEntry, Policy } from './types.js';
import { BUILTIN_LAUNCHERS, PROXY_DEFAULTS, validateLauncher } from './launchers.js';
import { normaliseReference } from './image-refs.js';
import { NAME_PLACEHOLDERS, unknownPlaceholders } from './templates.js';
import { parseQuantity } from './quantity.js';
import { parseCidr } from '../util/cidr.js';

export class PolicyError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}

/**
 * Defaults, chosen so a fresh `nbswarm up` is safe on a laptop:
 * - allowedImages ["local/*", "jupyter/*", "quay.io/jupyter/*"]: images built on this host by the
 *   images/ recipes, and the Jupyter Docker Stacks (which follow the start.sh / jhsingle contract
 *   the launchers assume). Anything else is an explicit admin grant. defaultImage
 *   "local/notebook:latest" is what images/notebook/build.sh builds, so the default works offline.
 *   localImages ["local/*"]: Docker reads "local/x" as Docker Hub's "docker.io/local/x", so those
 *   images are never pulled; a missing one is reported, not fetched from someone else's account.
 * - Docker names and volumes carry the namespace ({namespace}, empty for "default", so the default
 *   namespace keeps the names of earlier versions): tenants in two namespaces never share a name or
 *   a volume.
 * - one named volume per user, "{prefix}-{namespace}-{username}-home" at /home/jovyan/work (DockerSpawner's
 *   per-user default): a user's named servers and dashboards see the same files, which is what a
 *   dashboard made from a notebook needs; per-(user, server) volumes would start each named server
 *   empty. Volumes are never deleted with a server.
 * - ports on 127.0.0.1 only, hardening on (no-new-privileges, cap-drop ALL, pids limit), and
 *   uid:gid 1000:100 (the recipes' jovyan) whatever the image's USER says, so an image built to run
 *   as root does not; runAsUser "image" keeps the image's USER. System users and culling off.
 */
export function defaultPolicy(): Policy {
  return {
    prefix: 'nbs',
    nameTemplate: '{prefix}-{namespace}-{username}-{servername}',
    allowedImages: ['local/*', 'jupyter/*', 'quay.io/jupyter/*'],
    defaultImage: 'local/notebook:latest',
    localImages: ['local/*'],
    pullPolicy: 'ifNotPresent',
    imageUpdates: 'onStart',
    backend: 'auto',
    port: 8888,
    networkMode: 'bridge',
    hostPortRange: [20000, 20999],
    publishHostIp: '127.0.0.1',
    constraints: [],
    placementRules: [],
    registry: { pushLocalImages: false },
    probeNetworks: ['127.0.0.0/8', '::1/128'],
    launchers: structuredClone(BUILTIN_LAUNCHERS) as Record<string, LauncherEntry>,
    defaultMode: 'notebook',
    dashboards: {
      git: { enabled: true, allowedUrls: [], directory: 'work' },
      conda: { envs: [], allowCustom: false },
      proxy: { ...PROXY_DEFAULTS },
      debug: false,
    },
    allowCommandOverride: false,
    volumes: [{ name: '{prefix}-{namespace}-{username}-home', target: '/home/jovyan/work', type: 'volume' }],
    homeDir: '/home/jovyan',
    env: {},
    resources: { defaults: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '8Gi' } },
    hardening: { runAsUser: '1000:100', noNewPrivileges: true, capDrop: ['ALL'], pidsLimit: 1024 },
    systemUsers: {
      enabled: false,
      homeTemplate: '/home/{username}',
      mountTarget: '/home/{username}',
      uidFloor: 1000,
      uidCeiling: 60000,
      users: {},
      allowedUsers: [],
      allowedGroups: [],
    },
    culling: { enabled: false, idleTimeoutSeconds: 3600, probeIntervalSeconds: 60 },
    crashLoopBackOff: { initialSeconds: 10, maxSeconds: 300, resetAfterSeconds: 600 },
    sourceImages: { repository: 'nbswarm-built', builderImage: 'docker:cli', allowOtherUsers: false },
    resyncSeconds: 300,
    concurrency: 8,
  };
}

// ---- schema of the policy document (validation + "did you mean") ----

const str = { type: 'string' };
const strList = { type: 'array', items: str };
const strMap = { type: 'object', additionalProperties: str };
const quantity = { type: ['string', 'number'] };
const launcherSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    args: strList,
    env: strMap,
    requiresPath: { type: 'boolean' },
    enabled: { type: 'boolean' },
    direct: { type: 'boolean' },
    hubArgs: strList,
    cmd: strList,
    debugArgs: strList,
    debugArgsAfter: str,
    templateArgs: strList,
    template: str,
  },
};
const seconds = { type: 'integer', minimum: 0 };
export const POLICY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$' },
    nameTemplate: { type: 'string', minLength: 1 },
    allowedImages: strList,
    defaultImage: { type: 'string', minLength: 1 },
    localImages: strList,
    pullPolicy: { enum: ['ifNotPresent', 'always', 'never'] },
    imageUpdates: { enum: ['onStart', 'immediate'] },
    backend: { enum: ['auto', 'service', 'container'] },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    networkMode: { enum: ['bridge', 'host'] },
    hostPortRange: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, minItems: 2, maxItems: 2 },
    publishHostIp: str,
    network: str,
    constraints: strList,
    placementRules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['constraints'],
        properties: { images: strList, modes: { type: 'array', items: { enum: [...MODES] } }, constraints: { type: 'array', items: str, minItems: 1 } },
      },
    },
    registry: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: { type: 'string', pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$' },
        credentialsSecret: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'namespace'],
          properties: { name: { type: 'string', minLength: 1 }, namespace: { type: 'string', minLength: 1 } },
        },
        pushLocalImages: { type: 'boolean' },
      },
    },
    probeNetworks: strList,
    proxyCommand: { type: 'array', items: str, minItems: 1 },
    launchers: { type: 'object', additionalProperties: launcherSchema },
    defaultMode: { type: 'string', minLength: 1 },
    dashboards: {
      type: 'object',
      additionalProperties: false,
      properties: {
        git: { type: 'object', additionalProperties: false, properties: { enabled: { type: 'boolean' }, allowedUrls: strList, directory: str } },
        conda: { type: 'object', additionalProperties: false, properties: { envs: strList, allowCustom: { type: 'boolean' } } },
        proxy: {
          type: 'object',
          additionalProperties: false,
          properties: {
            requestTimeout: seconds,
            readyTimeout: seconds,
            forceAlive: { type: 'boolean' },
            lastActivityInterval: seconds,
            websocketMaxMessageSize: { type: 'integer', minimum: 0 },
          },
        },
        debug: { type: 'boolean' },
      },
    },
    allowCommandOverride: { type: 'boolean' },
    volumes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'target'],
        properties: {
          name: { type: 'string', minLength: 1 },
          target: { type: 'string', pattern: '^/' },
          type: { enum: ['volume', 'bind'] },
          readOnly: { type: 'boolean' },
          deleteWithServer: { type: 'boolean' },
          shared: { type: 'boolean' },
          driver: { type: 'string', minLength: 1 },
          driverOptions: strMap,
        },
      },
    },
    homeDir: { type: 'string', pattern: '^/' },
    env: strMap,
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: {
        defaults: { type: 'object', additionalProperties: false, properties: { cpu: quantity, memory: quantity } },
        limits: { type: 'object', additionalProperties: false, properties: { cpu: quantity, memory: quantity } },
        requests: { type: 'object', additionalProperties: false, properties: { cpu: quantity, memory: quantity } },
      },
    },
    hardening: {
      type: 'object',
      additionalProperties: false,
      properties: {
        runAsUser: { type: 'string', pattern: '^(image|[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?)$' },
        noNewPrivileges: { type: 'boolean' },
        capDrop: strList,
        pidsLimit: { type: 'integer', minimum: 1 },
      },
    },
    systemUsers: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        homeTemplate: { type: 'string', pattern: '^/' },
        mountTarget: { type: 'string', pattern: '^/' },
        uidFloor: { type: 'integer', minimum: 0 },
        uidCeiling: { type: 'integer', minimum: 0 },
        allowedUsers: strList,
        allowedGroups: strList,
        users: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            required: ['uid', 'gid'],
            properties: { uid: { type: 'integer', minimum: 0 }, gid: { type: 'integer', minimum: 0 } },
          },
        },
      },
    },
    culling: {
      type: 'object',
      additionalProperties: false,
      properties: { enabled: { type: 'boolean' }, idleTimeoutSeconds: { type: 'integer', minimum: 1 }, probeIntervalSeconds: { type: 'integer', minimum: 1 } },
    },
    crashLoopBackOff: {
      type: 'object',
      additionalProperties: false,
      properties: {
        initialSeconds: { type: 'number', minimum: 0 },
        maxSeconds: { type: 'number', minimum: 0 },
        resetAfterSeconds: { type: 'number', minimum: 0 },
      },
    },
    sourceImages: {
      type: 'object',
      additionalProperties: false,
      properties: {
        repository: { type: 'string', minLength: 1 },
        registry: str,
        builderImage: { type: 'string', minLength: 1 },
        allowOtherUsers: { type: 'boolean' },
      },
    },
    resyncSeconds: { type: 'integer', minimum: 1 },
    concurrency: { type: 'integer', minimum: 1 },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validatePolicyDoc = ajv.compile(POLICY_SCHEMA);

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `candidates` to `word`, when close enough to be a typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = levenshtein(word, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function keyPath(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function schemaAt(instancePath: string): any {
  let s: any = POLICY_SCHEMA;
  for (const p of instancePath.split('/').slice(1)) {
    if (!s) return undefined;
    if (s.type === 'array') s = s.items;
    else s = s.properties?.[p] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
  }
  return s;
}

function describeAjvError(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    const key = keyPath(e.instancePath + '/' + extra);
    const known = Object.keys(schemaAt(e.instancePath)?.properties ?? {});
    const hint = didYouMean(extra, known);
    if (hint) return `${key}: unknown key (did you mean "${hint}"?)`;
    return `${key}: unknown key${known.length ? `; known keys: ${known.join(', ')}` : ''}`;
  }
  const key = keyPath(e.instancePath) || '(top level)';
  if (e.keyword === 'enum')
    return `${key}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${key}: ${e.message}`;
}

// ---- merging ----

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key; lists and scalars replace (so a file's allowedImages is the whole list). */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k], v) : v;
  }
  return out as T;
}

// ---- environment ----

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

function envOverrides(env: NodeJS.ProcessEnv): { doc: Record<string, unknown>; origin: Map<string, string> } {
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

// ---- semantic checks the schema cannot express ----

function semanticProblems(p: Policy): string[] {
  const errs: string[] = [];
  const unknown = (tpl: string, key: string, allowed: readonly string[]): void => {
    for (const u of unknownPlaceholders(tpl, allowed)) errs.push(`${key}: unknown placeholder ${u} (known: ${allowed.map((a) => `{${a}}`).join(' ')})`);
  };
  try {
    normaliseReference(p.defaultImage);
  } catch (err) {
    errs.push(`defaultImage: ${(err as Error).message}`);
  }
  unknown(p.nameTemplate, 'nameTemplate', NAME_PLACEHOLDERS);
  for (const must of ['{username}', '{servername}']) {
    if (!p.nameTemplate.includes(must)) errs.push(`nameTemplate: must contain ${must}, or two servers would get the same Docker name`);
  }
  p.volumes.forEach((v, i) => {
    unknown(v.name, `volumes[${i}].name`, NAME_PLACEHOLDERS);
    if (v.type === 'bind' && !v.name.startsWith('/')) errs.push(`volumes[${i}].name: a bind volume needs an absolute host path`);
    if (v.type === 'bind' && (v.driver !== undefined || v.driverOptions !== undefined))
      errs.push(`volumes[${i}]: driver and driverOptions apply to named volumes (type volume), not binds`);
    for (const [k, o] of Object.entries(v.driverOptions ?? {})) unknown(o, `volumes[${i}].driverOptions.${k}`, NAME_PLACEHOLDERS);
  });
  p.constraints.forEach((c, i) => {
    if (!isConstraint(c))
      errs.push(
        `constraints[${i}]: "${c}" is not a Swarm constraint like node.labels.gpu==true (node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY, engine.labels.KEY with == or !=)`,
      );
  });
  p.placementRules.forEach((r, i) => {
    r.constraints.forEach((c, j) => {
      if (!isConstraint(c)) errs.push(`placementRules[${i}].constraints[${j}]: "${c}" is not a Swarm constraint like node.labels.gpu==true`);
    });
  });
  p.probeNetworks.forEach((n, i) => {
    if (!parseCidr(n)) errs.push(`probeNetworks[${i}]: "${n}" is not an address or network like 10.0.0.0/24`);
  });
  unknown(p.systemUsers.homeTemplate, 'systemUsers.homeTemplate', ['username']);
  unknown(p.systemUsers.mountTarget, 'systemUsers.mountTarget', ['username']);
  const [lo, hi] = p.hostPortRange;
  if (lo > hi) errs.push(`hostPortRange: [${lo}, ${hi}] is empty (first must be <= second)`);
  if (isIP(p.publishHostIp) === 0) errs.push(`publishHostIp: "${p.publishHostIp}" is not an IP address`);
  const modeRe = new RegExp(MODE_PATTERN);
  for (const [mode, entry] of Object.entries(p.launchers)) {
    if (!modeRe.test(mode)) {
      const hint = didYouMean(mode, MODES);
      errs.push(`launchers.${mode}: a mode name must be a DNS label (lower-case letters, digits and "-")${hint ? `; did you mean "${hint}"?` : ''}`);
      continue;
    }
    if (!(MODES as readonly string[]).includes(mode) && !entry.args?.length) {
      // A new mode has nothing to merge over: without args it is most likely a misspelt built-in.
      const hint = didYouMean(mode, MODES);
      errs.push(
        `launchers.${mode}: "${mode}" is not a built-in mode, so it needs its own args${hint ? ` (did you mean "${hint}"?)` : ''}; built-in modes: ${MODES.join(', ')}`,
      );
      continue;
    }
    errs.push(...validateLauncher(mode, entry));
  }
  const dm = p.launchers[p.defaultMode];
  if (!dm) errs.push(`defaultMode: "${p.defaultMode}" has no launcher; modes: ${Object.keys(p.launchers).join(', ')}`);
  else if (dm.enabled === false) errs.push(`defaultMode: "${p.defaultMode}" is disabled in launchers.${p.defaultMode}.enabled`);
  const dir = p.dashboards.git.directory;
  if (!new RegExp(APP_PATH_PATTERN).test(dir) || dir.startsWith('/')) {
    errs.push(`dashboards.git.directory: "${dir}" must be relative to the home directory, without ".." segments`);
  }
  const tokenRe = new RegExp(TOKEN_PATTERN);
  p.dashboards.conda.envs.forEach((e, i) => {
    if (!tokenRe.test(e)) errs.push(`dashboards.conda.envs[${i}]: "${e}" is not a conda env name (letters, digits, "._+-", not starting with "-")`);
  });
  for (const kind of ['cpu', 'memory'] as const) {
    const d = p.resources.defaults[kind];
    const l = p.resources.limits[kind];
    const dq = d === undefined ? undefined : parseQuantity(d);
    const lq = l === undefined ? undefined : parseQuantity(l);
    if (d !== undefined && dq === undefined) errs.push(`resources.defaults.${kind}: "${d}" is not a quantity like "500m" or "2Gi"`);
    if (l !== undefined && lq === undefined) errs.push(`resources.limits.${kind}: "${l}" is not a quantity like "500m" or "2Gi"`);
    if (dq !== undefined && lq !== undefined && dq > lq) errs.push(`resources.defaults.${kind}: ${d} is above resources.limits.${kind} ${l}`);
    const r = p.resources.requests?.[kind];
    const rq = r === undefined ? undefined : parseQuantity(r);
    if (r !== undefined && (rq === undefined || rq <= 0)) errs.push(`resources.requests.${kind}: "${r}" is not a positive quantity like "500m" or "2Gi"`);
    if (rq !== undefined && lq !== undefined && rq > lq) errs.push(`resources.requests.${kind}: ${r} is above resources.limits.${kind} ${l}`);
  }
  const su = p.systemUsers;
  for (const [name, u] of Object.entries(su.users)) {
    if (u.uid < su.uidFloor) errs.push(`systemUsers.users.${name}.uid: ${u.uid} is below systemUsers.uidFloor ${su.uidFloor}`);
    if (u.uid > su.uidCeiling) errs.push(`systemUsers.users.${name}.uid: ${u.uid} is above systemUsers.uidCeiling ${su.uidCeiling}`);
  }
  if (su.uidFloor > su.uidCeiling) errs.push(`systemUsers.uidFloor: ${su.uidFloor} is above systemUsers.uidCeiling ${su.uidCeiling}`);
  // The hub picks spec.user: without a list, it could pick any login account of the host.
  if (su.enabled && !Object.keys(su.users).length && !su.allowedUsers?.length && !su.allowedGroups?.length) {
    errs.push(
      'systemUsers.enabled: name the host accounts servers may run as in systemUsers.allowedGroups (e.g. [jupyterhub-users]), systemUsers.allowedUsers (globs) or systemUsers.users',
    );
  }
  return errs;
}

/** A Swarm placement constraint: a node or engine attribute, == or !=, a value. */
const CONSTRAINT = /^\s*(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[^\s=!]+)|engine\.labels\.[^\s=!]+)\s*(==|!=)\s*[^\s=!][^=!]*$/;

export function isConstraint(text: string): boolean {
  return CONSTRAINT.test(text);
}

export interface LoadPolicyOptions {
  /** YAML policy file; defaults to $NBSWARM_POLICY when set. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Partial<Policy>;
}

/** defaults ← file ← env ← overrides, validated. Throws PolicyError naming each bad key and its source. */
export function loadPolicy(opts: LoadPolicyOptions = {}): Policy {
  const env = opts.env ?? {};
  const file = opts.file ?? env.NBSWARM_POLICY;
  let fileDoc: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new PolicyError(`policy file ${file}: cannot read it (${(e as Error).message})`, [file]);
    }
    try {
      fileDoc = YAML.parse(text) ?? {};
    } catch (e) {
      throw new PolicyError(`policy file ${file}: not valid YAML: ${(e as Error).message}`, [file]);
    }
    if (!isPlainObject(fileDoc)) throw new PolicyError(`policy file ${file}: the top level must be a mapping of policy keys`, [file]);
  }
  const { doc: envDoc, origin } = envOverrides(env);
  for (const key of Object.keys(opts.overrides ?? {})) origin.set(key, 'command-line options');
  const merged = deepMerge(deepMerge(deepMerge(defaultPolicy(), fileDoc), envDoc), opts.overrides ?? {});
  const where = (problem: string): string => {
    const key = problem.split(':')[0]!;
    const src = [...origin.entries()].find(([k]) => key === k || key.startsWith(k + '.') || key.startsWith(k + '['));
    if (src) return `${problem} (from ${src[1]})`;
    return file ? `${problem} (in ${file})` : problem;
  };
  let problems: string[] = [];
  if (!validatePolicyDoc(merged)) problems = (validatePolicyDoc.errors ?? []).map(describeAjvError);
  else problems = semanticProblems(merged);
  if (problems.length) {
    const lines = [...new Set(problems)].map(where);
    throw new PolicyError(`invalid nbswarm policy${file ? ` (file ${file})` : ''}:\n  - ${lines.join('\n  - ')}`, lines);
  }
  return merged;
}

/** The launcher of `mode`, or undefined when the policy has none. */
export function launcherFor(policy: Policy, mode: Mode | string): LauncherEntry | undefined {
  return Object.prototype.hasOwnProperty.call(policy.launchers, mode) ? policy.launchers[mode] : undefined;
}

/** The modes servers may use under this policy (built-in and added, minus disabled ones), sorted. */
export function enabledModes(policy: Pick<Policy, 'launchers'>): string[] {
  return Object.keys(policy.launchers)
    .filter((m) => policy.launchers[m]?.enabled !== false)
    .sort();
}
