/**
 * The operator's policy: what an admin grants. A NotebookServer never
 * carries host paths, privileged flags or Docker options; only this does.
 * Loaded by ./policy.ts from YAML + env + flags, with defaults.
 */
import type { BackendKind, PullPolicy } from '../backends/types.js';
import type { Mode } from '../api/types.js';

export interface LauncherEntry {
  /** argv template; placeholders {port} {base_url} {presentation_path} {username} {servername} {-} {--} {home} {args}. */
  args: string[];
  /** Extra environment (templated the same way). */
  env?: Record<string, string>;
  /** Whether the mode needs spec.app.path. */
  requiresPath?: boolean;
  /** Disabled modes are refused with a message naming the field. */
  enabled?: boolean;
  /**
   * true: `args` is the whole argv and the operator fills every placeholder ({port} is the
   * container port). false/unset: `args` go to jhsingle-native-proxy (cdsdashboards' contract),
   * which fills {port} {base_url} {origin_host} {presentation_*} {-} {--} itself at run time.
   * (Added by the resource/policy helper; see src/config/launchers.ts.)
   */
  direct?: boolean;
  /** argv used instead of `args` when JupyterHub spawned the server (spec.env has JUPYTERHUB_API_TOKEN). */
  hubArgs?: string[];
  /** Proxied launchers only: the proxy command (default Policy.proxyCommand), like cdsdashboards' launcher 'cmd'. */
  cmd?: string[];
}

export interface VolumeTemplate {
  /** Named volume name template, e.g. "nbswarm-{username}-home" (or host path when type is bind). */
  name: string;
  /** Mount point inside the container, e.g. "/home/jovyan/work". */
  target: string;
  type?: 'volume' | 'bind';
  readOnly?: boolean;
  /** Delete the volume with the server (default false: users' files are never lost). */
  deleteWithServer?: boolean;
}

export interface Policy {
  /** Docker object name prefix ({prefix} in nameTemplate). */
  prefix: string;
  /** Default "{prefix}-{username}-{servername}"; an empty servername drops its separator. */
  nameTemplate: string;
  /** Glob allowlist of image references (picomatch). Empty list = only defaultImage. */
  allowedImages: string[];
  defaultImage: string;
  /**
   * Globs of images built on this host (no registry serves them): never pulled, whatever
   * pullPolicy says. Matched like allowedImages, on normalised references.
   */
  localImages: string[];
  pullPolicy: PullPolicy;
  /**
   * When a running server moves to a newer image of its tag (re-pushed, or pulled by
   * pullPolicy always): "onStart" (its next start; a running server is never restarted for it) or
   * "immediate". The annotation nbswarm.io/image-updates overrides it per server.
   */
  imageUpdates: 'onStart' | 'immediate';
  /** 'auto' reads docker info (Swarm active → services). */
  backend: 'auto' | BackendKind;
  /** Port the server listens on inside the container (bridge networking). */
  port: number;
  /** 'bridge' publishes the port on publishHostIp; 'host' shares the host network with ports from hostPortRange. */
  networkMode: 'bridge' | 'host';
  hostPortRange: [number, number];
  publishHostIp: string;
  /** Optional overlay (Swarm) or bridge network to attach servers to; endpoint.url uses the object name on it. */
  network?: string;
  /** Swarm placement constraints. */
  constraints: string[];
  /** Command that runs proxied launchers (cdsdashboards' default_presentation_cmd); default start.sh python3 -m jhsingle_native_proxy.main. */
  proxyCommand?: string[];
  /** Mode → launcher. Merged over the built-in table (cdsdashboards' launchers). */
  launchers: Record<Mode | string, LauncherEntry>;
  defaultMode: Mode;
  /** Allow spec.command outside mode custom. */
  allowCommandOverride: boolean;
  volumes: VolumeTemplate[];
  /** Home directory inside the image (templated into launchers as {home}). */
  homeDir: string;
  /** Extra environment for every server. */
  env: Record<string, string>;
  resources: {
    defaults: { cpu?: string; memory?: string };
    limits: { cpu?: string; memory?: string };
  };
  /**
   * runAsUser: "uid[:gid]" (or a name the image knows) every server runs as; "image" keeps the
   * image's USER, which may be root. Default 1000:100.
   */
  hardening: { runAsUser?: string; noNewPrivileges: boolean; capDrop: string[]; pidsLimit?: number };
  systemUsers: {
    enabled: boolean;
    /** Host home template, like DockerSpawner's host_homedir_format_string. */
    homeTemplate: string;
    /** Where the host home is mounted in the container. */
    mountTarget: string;
    uidFloor: number;
    /** Accounts above this uid are system accounts too (nobody is 65534); login.defs' UID_MAX. */
    uidCeiling: number;
    /** Explicit user → {uid,gid}; otherwise `getent passwd`. Listed users are allowed. */
    users: Record<string, { uid: number; gid: number }>;
    /** Globs of host account names servers may run as. */
    allowedUsers?: string[];
    /** Host groups whose members (primary or supplementary) servers may run as. */
    allowedGroups?: string[];
  };
  culling: { enabled: boolean; idleTimeoutSeconds: number; probeIntervalSeconds: number };
  sourceImages: {
    repository: string;
    registry?: string;
    /** Let spec.source.server name another user's server in the namespace (default: the same user's only). */
    allowOtherUsers?: boolean;
  };
  /** Seconds between full resyncs. */
  resyncSeconds: number;
  /** Max reconciles running at once (across keys). */
  concurrency: number;
}
