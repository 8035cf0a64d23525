/**
 * The operator's policy: what an admin grants. A NotebookServer never
 * carries host paths, privileged flags or Docker options; only this does.
 * Loaded by ./policy.ts from YAML + env + flags, with defaults (./policy-defaults.ts).
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
  /**
   * Added when dashboards.debug is on (cdsdashboards' 'debug_args'): appended after the launcher's
   * command line; default for proxied launchers ["{--}debug"]. With debugArgsAfter they are
   * inserted right after the first argument equal to it instead (how cdsdashboards puts
   * streamlit's {--}log_level=debug before `run`).
   */
  debugArgs?: string[];
  debugArgsAfter?: string;
  /** Appended last when the server has a template (spec.app.template, else `template`); {template} is the name. */
  templateArgs?: string[];
  /** Default template (cdsdashboards' voila_template); unset: none. */
  template?: string;
}

/** cdsdashboards' dashboard settings that are not per launcher. */
export interface DashboardSettings {
  /** Git sources (spec.git), cdsdashboards' show_source_git. */
  git: {
    enabled: boolean;
    /** Globs (picomatch) a spec.git.url must match; empty: any https or ssh URL. */
    allowedUrls: string[];
    /** Where clones go by default, relative to the home ({folder} of the URL appended). */
    directory: string;
  };
  /** cdsdashboards' conda_envs and allow_custom_conda_env. */
  conda: { envs: string[]; allowCustom: boolean };
  /** jhsingle-native-proxy settings cdsdashboards exposes; 0 / defaults add no flag (the proxy's own default). */
  proxy: {
    requestTimeout: number;
    readyTimeout: number;
    forceAlive: boolean;
    lastActivityInterval: number;
    websocketMaxMessageSize: number;
  };
  /** cdsdashboards' Spawner.debug for dashboards: launcher debugArgs plus the proxy's --debug. */
  debug: boolean;
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
  /**
   * On a multi-node Swarm: whether every node sees the same data under this volume (NFS, a cluster
   * volume plugin, a bind of a path mounted on every node). Default: false for named volumes
   * (Docker's local driver keeps them on one node, so the server is pinned to that node), true for
   * binds (the path must exist on every node).
   */
  shared?: boolean;
  /** Volume driver for named volumes (Docker's default: local). */
  driver?: string;
  /** Driver options, templated like name (e.g. local driver: {type: nfs, o: "addr=…", device: ":/export/{username}"}). */
  driverOptions?: Record<string, string>;
}

/** Extra Swarm placement constraints for servers of matching images and/or modes. */
export interface PlacementRule {
  /** Image globs (as allowedImages); unset matches every image. */
  images?: string[];
  /** Modes; unset matches every mode. */
  modes?: string[];
  /** Swarm constraint expressions, e.g. "node.labels.gpu==true". */
  constraints: string[];
}

/** The registry every Swarm node pulls from. */
export interface RegistryPolicy {
  /** host[:port] of the registry. Images named by tag without a registry are looked up here. */
  address?: string;
  /** A Secret of type kubernetes.io/dockerconfigjson (or with username/password keys) holding the credentials. */
  credentialsSecret?: { name: string; namespace: string };
  /** Push an image that exists only on the manager to the registry instead of refusing it (multi-node Swarm). */
  pushLocalImages: boolean;
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
  /** More constraints for some images or modes (e.g. node.labels.gpu==true for GPU images). */
  placementRules: PlacementRule[];
  /** Images by tag resolve to this registry's digests; source-server images are pushed there. */
  registry: RegistryPolicy;
  /**
   * Networks (CIDR) whose addresses the operator may probe for "the server answers". Default
   * loopback only; on a multi-node Swarm add the nodes' network (never Docker's bridge networks).
   * A server whose endpoint is outside these is reported Ready as soon as its task runs.
   */
  probeNetworks: string[];
  /** Command that runs proxied launchers (cdsdashboards' default_presentation_cmd); default start.sh python3 -m jhsingle_native_proxy.main. */
  proxyCommand?: string[];
  /** Mode → launcher. Merged over the built-in table (cdsdashboards' launchers). */
  launchers: Record<Mode | string, LauncherEntry>;
  /** A mode of `launchers` (built-in or added by the policy). */
  defaultMode: string;
  dashboards: DashboardSettings;
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
    /** Reserved per server (Swarm reservations: a node without that much free is not chosen). */
    requests?: { cpu?: string; memory?: string };
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
  /**
   * A server whose spec says running but that Docker stopped restarting (Swarm's restart policy gave
   * up) is started again after initialSeconds, doubling per attempt up to maxSeconds (Kubernetes'
   * CrashLoopBackOff); a spec change, or a failure after resetAfterSeconds of running, starts over.
   */
  crashLoopBackOff: { initialSeconds: number; maxSeconds: number; resetAfterSeconds: number };
  sourceImages: {
    repository: string;
    registry?: string;
    /**
     * Multi-node Swarm: an image with the docker CLI (e.g. docker:cli) run as a one-off job on the
     * source server's node to commit its container and push the result to the registry.
     */
    builderImage?: string;
    /** Let spec.source.server name another user's server in the namespace (default: the same user's only). */
    allowOtherUsers?: boolean;
  };
  /** Seconds between full resyncs. */
  resyncSeconds: number;
  /** Max reconciles running at once (across keys). */
  concurrency: number;
}
