/**
 * The JSON schema of the policy document, and its violations as one line per key that names the
 * key path (with "did you mean" for an unknown key).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { MODES } from '../api/types.js';
import { didYouMean } from './did-you-mean.js';
import { fieldPathOf } from '../util/json-pointer.js';

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
export const validatePolicyDoc = ajv.compile(POLICY_SCHEMA);

function schemaAt(instancePath: string): any {
  let s: any = POLICY_SCHEMA;
  for (const p of instancePath.split('/').slice(1)) {
    if (!s) return undefined;
    if (s.type === 'array') s = s.items;
    else s = s.properties?.[p] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
  }
  return s;
}

export function describeAjvError(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    const key = fieldPathOf(e.instancePath + '/' + extra);
    const known = Object.keys(schemaAt(e.instancePath)?.properties ?? {});
    const hint = didYouMean(extra, known);
    if (hint) return `${key}: unknown key (did you mean "${hint}"?)`;
    return `${key}: unknown key${known.length ? `; known keys: ${known.join(', ')}` : ''}`;
  }
  const key = fieldPathOf(e.instancePath) || '(top level)';
  if (e.keyword === 'enum')
    return `${key}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${key}: ${e.message}`;
}
