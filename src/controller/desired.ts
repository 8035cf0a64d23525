/**
 * NotebookServer + policy → DesiredServer, the one description of the Docker object a backend
 * converges to. Pure: everything that needs I/O (Secrets, a host port, the system user's
 * passwd entry, a built source image) is resolved by the caller and passed in `ctx`.
 *
 * A spec the policy refuses gives {ok: false, field, reason, message}: `field` is the spec path
 * to fix (it goes into the Failed condition), `message` says what the policy allows.
 */
import { createHash } from 'node:crypto';
import { ANNOTATIONS, LABELS, MANAGED_BY } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { DesiredServer, VolumeMount } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { InvalidImageReference } from '../config/image-refs.js';
import { buildLaunch, fill } from '../config/launchers.js';
import { enabledModes } from '../config/policy.js';
import { withPrelude } from '../config/start-prelude.js';
import { dockerName, renderTemplate } from '../config/templates.js';
import { imageAllowed, imageUpdatesFor, pullPolicyFor } from './image-policy.js';
import { placementConstraints } from './placement.js';
import { renderResources } from './server-resources.js';
import { templateVolumes } from './server-volumes.js';
import { computeSpecHash } from './spec-hash.js';
import { appPathProblem, renderGit, resolveEnv } from './spec-sources.js';

/** Whether the server should not run: spec.stopped, or stopped by annotation (the culler) without touching spec. */
export function isStopped(obj: NotebookServer): boolean {
  return obj.spec?.stopped === true || obj.metadata.annotations?.[ANNOTATIONS.stopped] !== undefined;
}

/** The mode a server runs: spec.mode, else the policy's defaultMode. */
export function effectiveMode(nbs: NotebookServer, policy: Pick<Policy, 'defaultMode'>): string {
  return nbs.spec?.mode ?? policy.defaultMode;
}

export interface RenderContext {
  /** The decoded data of Secret `name` in the resource's namespace, undefined when there is no such Secret. */
  secrets: (name: string) => Record<string, string> | undefined;
  /** Host port allocated by the controller when policy.networkMode is host. */
  hostPort?: number;
  /** From lookupSystemUser when spec.systemUser is true. */
  systemUser?: { uid: number; gid: number; home: string };
  /** Image built from spec.source.server (replaces spec.image; operator-built, so not allowlisted). */
  sourceImage?: string;
  /**
   * Leave out references to Secrets (or keys) that do not exist instead of refusing the spec: a
   * stopped server runs nothing, so it needs none (a hub deletes its token Secret on stop).
   */
  secretsOptional?: boolean;
  /** Multi-node Swarm: the node holding the server's node-local volumes (see pinFor). */
  pinNode?: string;
  /**
   * What the server's existing Docker object was created with: its name and its named volumes by
   * mount target. Both stay for the object's life (Swarm cannot rename a service, and a user's
   * files stay where they are), so an upgrade or a template change renames nothing and moves no
   * home; a new object gets the names the templates give now.
   */
  keep?: { name?: string; volumes?: Record<string, string> };
}

export type RenderResult = { ok: true; desired: DesiredServer } | { ok: false; field: string; reason: string; message: string };

const fail = (field: string, reason: string, message: string): RenderResult => ({ ok: false, field, reason, message });

/**
 * {namespace} in name and volume templates: the namespace, except "" for "default" (the empty
 * value drops its separator), so servers of the default namespace keep the names every earlier
 * version gave them and servers of other namespaces never meet them.
 */
export function namespacePart(namespace: string): string {
  return namespace === 'default' ? '' : namespace;
}

/**
 * The name a new object gets when the template's name is held by an object that is not this
 * server's (another tenant's server whose names happen to render the same, or something made by
 * hand): the template's name with a hash of the resource UID.
 */
export function fallbackDockerName(name: string, uid: string): string {
  return dockerName(`${name}-${createHash('sha256').update(uid).digest('hex').slice(0, 8)}`, { uniqueBy: uid });
}

function hubBaseUrl(env: Record<string, string>): string {
  return (env.JUPYTERHUB_SERVICE_PREFIX ?? '').replace(/\/+$/, '');
}

export function renderDesired(nbs: NotebookServer, policy: Policy, ctx: RenderContext): RenderResult {
  const meta = nbs.metadata ?? {};
  const spec = nbs.spec ?? ({} as NotebookServer['spec']);
  const namespace = meta.namespace ?? 'default';
  const name = meta.name ?? '';
  const uid = meta.uid ?? '';
  if (!name || !uid) return fail('metadata', 'InvalidObject', 'the object has no metadata.name or metadata.uid');
  const user = spec.user;
  if (!user) return fail('spec.user', 'UserRequired', 'spec.user is required: the JupyterHub user this server belongs to');
  const servername = spec.servername ?? '';

  // Image: a built source image replaces spec.image; anything else must be allowed by the policy.
  const requested = spec.image || policy.defaultImage;
  let allowed: boolean;
  let pullPolicy: Policy['pullPolicy'];
  try {
    allowed = !!ctx.sourceImage || imageAllowed(requested, policy);
    pullPolicy = ctx.sourceImage ? 'never' : pullPolicyFor(requested, policy);
  } catch (err) {
    if (!(err instanceof InvalidImageReference)) throw err;
    return fail('spec.image', 'InvalidImage', `spec.image ${err.message}`);
  }
  if (!allowed) {
    const allowed = policy.allowedImages.length ? policy.allowedImages.map((g) => `"${g}"`).join(', ') : `only defaultImage "${policy.defaultImage}"`;
    return fail(
      'spec.image',
      'ImageNotAllowed',
      `image "${requested}" is not allowed by the operator policy (allowedImages: ${allowed}); use an allowed image or ask an admin to add a matching glob to allowedImages`,
    );
  }
  const image = ctx.sourceImage ?? requested;

  // Mode and launcher.
  const mode = effectiveMode(nbs, policy);
  const launcher = Object.prototype.hasOwnProperty.call(policy.launchers, mode) ? policy.launchers[mode] : undefined;
  if (!launcher) {
    return fail('spec.mode', 'UnknownMode', `mode "${mode}" has no launcher in the operator policy; its modes: ${enabledModes(policy).join(', ')}`);
  }
  if (launcher.enabled === false) {
    return fail('spec.mode', 'ModeDisabled', `mode "${mode}" is disabled by the operator policy (launchers.${mode}.enabled: false)`);
  }
  const appPath = spec.app?.path ?? '';
  const pathProblem = appPathProblem(appPath);
  if (pathProblem) return fail('spec.app.path', 'InvalidAppPath', `spec.app.path "${appPath}" ${pathProblem}`);
  if (launcher.requiresPath && !appPath) {
    return fail(
      'spec.app.path',
      'AppPathRequired',
      `mode "${mode}" needs spec.app.path: the notebook, script or folder to present, relative to the home directory`,
    );
  }
  const command = spec.command ?? [];
  if (mode === 'custom' && command.length === 0) {
    return fail(
      'spec.command',
      'CommandRequired',
      'mode "custom" needs spec.command: the argv to run (placeholders {port} {ip} {home} {username} {servername} are filled)',
    );
  }
  if (mode !== 'custom' && command.length > 0 && !policy.allowCommandOverride) {
    return fail(
      'spec.command',
      'CommandNotAllowed',
      `spec.command is only used with mode "custom"; the operator policy does not allow overriding the "${mode}" launcher (allowCommandOverride: false)`,
    );
  }

  const template = spec.app?.template;
  if (template !== undefined && !launcher.templateArgs?.length) {
    return fail('spec.app.template', 'TemplateNotSupported', `mode "${mode}" takes no template (its launcher has no templateArgs; voila does)`);
  }
  const condaEnv = spec.app?.condaEnv || undefined;
  if (condaEnv && !policy.dashboards.conda.allowCustom && !policy.dashboards.conda.envs.includes(condaEnv)) {
    const envs = policy.dashboards.conda.envs;
    return fail(
      'spec.app.condaEnv',
      'CondaEnvNotAllowed',
      `conda env "${condaEnv}" is not offered by the operator policy (dashboards.conda.envs: ${envs.length ? envs.join(', ') : 'none'}; dashboards.conda.allowCustom: false)`,
    );
  }
  const viewers = spec.viewers;
  if ((viewers?.allUsers || viewers?.users?.length || viewers?.groups?.length) && launcher.direct && !launcher.hubArgs) {
    return fail(
      'spec.viewers',
      'ViewersNotEnforced',
      `mode "${mode}" runs its app directly, with no JupyterHub OAuth check in front of it, so spec.viewers could not be enforced; use a proxied launcher (or one with hubArgs) for dashboards with viewers`,
    );
  }

  // System user.
  let runAs = policy.hardening.runAsUser === 'image' ? undefined : policy.hardening.runAsUser;
  let home = policy.homeDir;
  const systemMounts: VolumeMount[] = [];
  if (spec.systemUser) {
    if (!policy.systemUsers.enabled) {
      return fail(
        'spec.systemUser',
        'SystemUsersDisabled',
        'spec.systemUser is true but system users are disabled by the operator policy (systemUsers.enabled: false)',
      );
    }
    const su = ctx.systemUser;
    if (!su) return fail('spec.systemUser', 'SystemUserNotFound', `system user "${user}" could not be resolved`);
    if (su.uid < policy.systemUsers.uidFloor || su.uid > policy.systemUsers.uidCeiling) {
      return fail(
        'spec.systemUser',
        su.uid < policy.systemUsers.uidFloor ? 'SystemUserBelowFloor' : 'SystemUserOutOfRange',
        `system user "${user}" has uid ${su.uid}, outside the policy's systemUsers.uidFloor..uidCeiling (${policy.systemUsers.uidFloor}..${policy.systemUsers.uidCeiling})`,
      );
    }
    runAs = `${su.uid}:${su.gid}`;
    home = renderTemplate(policy.systemUsers.mountTarget, { username: user }, { escape: false });
    systemMounts.push({ source: su.home, target: home, type: 'bind' });
  }

  // Environment: launcher < policy < spec (the hub's JUPYTERHUB_* come through spec.env).
  const resolvedEnv = resolveEnv(spec.env ?? [], namespace, ctx.secrets, ctx.secretsOptional);
  if (!resolvedEnv.ok) return resolvedEnv;
  const specEnv = resolvedEnv.env;

  const git = renderGit(spec.git, namespace, home, policy, ctx);
  if (!git.ok) return git;

  // Networking and port.
  let port = policy.port;
  let ip = '0.0.0.0';
  if (policy.networkMode === 'host') {
    if (!ctx.hostPort) return fail('spec', 'HostPortUnavailable', `no free host port in the policy's hostPortRange ${policy.hostPortRange.join('-')}`);
    port = ctx.hostPort;
    ip = policy.publishHostIp;
  }

  const launchInput = {
    port,
    ip,
    home,
    username: user,
    servername,
    appPath,
    appArgs: spec.app?.args ?? [],
    command,
    hub: specEnv.JUPYTERHUB_API_TOKEN !== undefined,
    baseUrl: hubBaseUrl(specEnv),
    presentationRoot: git.root,
    template,
    condaEnv: launcher.direct ? undefined : condaEnv,
    debug: policy.dashboards.debug,
    proxy: policy.dashboards.proxy,
  };
  const launch = buildLaunch(launcher, launchInput, policy.proxyCommand);
  let argv = launch.command;
  if (mode !== 'custom' && command.length > 0) {
    const vars = { port: String(port), ip, home, username: user, servername, '-': '-', '--': '--' };
    argv = command.map((c) => fill(c, vars));
  }
  // The prelude clones/pulls the git source and activates a direct launcher's conda env, in the container.
  const preludeEnv: Record<string, string> = { ...git.env };
  if (condaEnv && launcher.direct) preludeEnv.NBSWARM_CONDA_ENV = condaEnv;
  if (Object.keys(preludeEnv).length) argv = withPrelude(argv);
  const env: Record<string, string> = { ...launch.env, ...policy.env, ...specEnv, ...preludeEnv };
  if (spec.systemUser) {
    env.HOME ??= home;
    env.USER ??= user;
  }

  // Resources, capped by the policy; reservations (requests) at most the limit.
  const renderedResources = renderResources(spec.resources, policy);
  if (!renderedResources.ok) return renderedResources;
  const resources = renderedResources.resources;

  // Volumes from templates; the host home replaces volumes inside the image home for system users.
  const tplVars = { prefix: policy.prefix, namespace: namespacePart(namespace), username: user, servername };
  const volumes: VolumeMount[] = [
    ...systemMounts,
    ...templateVolumes(policy, tplVars, { namespace, user, servername, uid, systemUser: spec.systemUser }, ctx.keep?.volumes),
  ];

  const dockerObjName = ctx.keep?.name ?? dockerName(renderTemplate(policy.nameTemplate, tplVars), { uniqueBy: uid });
  const constraints = placementConstraints(requested, mode, policy);
  // Every label of the Docker object; backends write them as they are and read back uid, port,
  // host IP and spec hash when they observe it.
  const labels: Record<string, string> = {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.uid]: uid,
    [LABELS.namespace]: namespace,
    [LABELS.name]: name,
    [LABELS.user]: user,
    [LABELS.servername]: servername,
    [LABELS.generation]: String(meta.generation ?? 0),
    [LABELS.image]: image,
    [LABELS.port]: String(port),
    [LABELS.hostIp]: policy.networkMode === 'host' ? '' : policy.publishHostIp,
    [LABELS.mode]: mode,
  };

  const base: Omit<DesiredServer, 'specHash'> = {
    namespace,
    name,
    uid,
    generation: meta.generation ?? 0,
    dockerName: dockerObjName,
    labels,
    image,
    pullPolicy,
    imageUpdates: imageUpdatesFor(nbs, policy),
    command: argv,
    env,
    workdir: mode === 'custom' ? undefined : home,
    user: runAs,
    port,
    networkMode: policy.networkMode,
    publishHostIp: policy.publishHostIp,
    network: policy.network,
    volumes,
    resources,
    hardening: {
      noNewPrivileges: policy.hardening.noNewPrivileges,
      capDrop: [...policy.hardening.capDrop],
      pidsLimit: policy.hardening.pidsLimit,
    },
    constraints: constraints.length ? constraints : undefined,
    stopped: spec.stopped === true,
  };
  if (git.files.length) base.secretFiles = git.files;
  const specHash = computeSpecHash(base);
  labels[LABELS.specHash] = specHash;
  // Outside the hash: pinning a server where it runs must not count as a change of its spec.
  return { ok: true, desired: { ...base, specHash, pinNode: ctx.pinNode } };
}
