/** The built-in policy every policy file, NBSWARM_* variable and flag is merged over. */
import type { LauncherEntry, Policy } from './types.js';
import { BUILTIN_LAUNCHERS, PROXY_DEFAULTS } from './launchers.js';

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
