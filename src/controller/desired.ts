/**
 * NotebookServer + policy → DesiredServer, the one description of the Docker object a backend
 * converges to. Pure: everything that needs I/O (Secrets, a host port, the system user's
 * passwd entry, a built source image) is resolved by the caller and passed in `ctx`.
 *
 * A spec the policy refuses gives {ok: false, field, reason, message}: `field` is the spec path
 * to fix (it goes into the Failed condition), `message` says what the policy allows.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ANNOTATIONS, LABELS, MANAGED_BY } from '../api/names.js';
import type { EnvVar, NotebookServer } from '../api/types.js';
import type { DesiredServer, ObservedServer, SecretFile, VolumeMount } from '../backends/types.js';
import type { Policy } from '../config/types.js';
import { imageMatchesGlobs, InvalidImageReference, sameReference } from '../config/image-refs.js';
import { buildLaunch, fill } from '../config/launchers.js';
import { enabledModes } from '../config/policy.js';
import { cloneFolder, gitCredentialFiles, gitUrlAllowed, parseGitUrl } from '../config/git-source.js';
import { withPrelude } from '../config/start-prelude.js';
import { parseQuantity } from '../config/quantity.js';
import { dockerName, renderTemplate, volumeName } from '../config/templates.js';
import { canonicalJson } from '../util/json.js';

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
 * Whether the policy lets servers run `image`: defaultImage always, else a glob of allowedImages,
 * both sides normalised the way Docker reads them (see image-refs.ts). Throws InvalidImageReference.
 */
export function imageAllowed(image: string, policy: Pick<Policy, 'allowedImages' | 'defaultImage'>): boolean {
  if (sameReference(image, policy.defaultImage)) return true;
  return imageMatchesGlobs(image, policy.allowedImages);
}

/** Whether one of `globs` matches `image`, both normalised the way Docker reads them. */
function imageMatches(image: string, globs: readonly string[]): boolean {
  return imageMatchesGlobs(image, globs);
}

/**
 * The pull policy for `image`: never for images the policy says are built on this host
 * (localImages), whatever pullPolicy says, so a missing `local/…` image is reported instead of
 * being pulled from Docker Hub, where that name resolves.
 */
export function pullPolicyFor(image: string, policy: Pick<Policy, 'pullPolicy' | 'localImages'>): Policy['pullPolicy'] {
  return imageMatchesGlobs(image, policy.localImages ?? []) ? 'never' : policy.pullPolicy;
}

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

/** When a running server takes a newer image of its tag: the annotation, else the policy. */
function imageUpdatesFor(nbs: NotebookServer, policy: Pick<Policy, 'imageUpdates'>): 'onStart' | 'immediate' {
  const a = nbs.metadata.annotations?.[ANNOTATIONS.imageUpdates];
  return a === 'immediate' || a === 'onStart' ? a : (policy.imageUpdates ?? 'onStart');
}

/** The policy's constraints, then those of every placement rule matching the image and mode (each once). */
export function placementConstraints(image: string, mode: string, policy: Pick<Policy, 'constraints' | 'placementRules'>): string[] {
  const out = [...policy.constraints];
  for (const r of policy.placementRules ?? []) {
    if (r.images && !imageMatches(image, r.images)) continue;
    if (r.modes && !r.modes.includes(mode)) continue;
    for (const c of r.constraints) if (!out.includes(c)) out.push(c);
  }
  return out;
}

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

export interface PinInput {
  /** More than one Swarm node (pinning means nothing on one). */
  multiNode: boolean;
  /** The server's node-local volumes; none → no pin. */
  volumes: string[];
  /** ANNOTATIONS.node: an admin says where the volumes are. */
  annotation?: string;
  /** The pin its service carries now. */
  current?: string;
  /** status.node: where it ran or was pinned last. */
  recorded?: string;
  /** Where other servers that mount one of the same volumes are pinned (e.g. the user's other named servers). */
  siblings?: string[];
  /** Where Swarm placed its task, when it has no pin yet (a first start). */
  running?: string;
}

/**
 * Which node a server with node-local volumes is pinned to: where its volumes were last seen, or,
 * for volumes that exist nowhere yet, where Swarm placed its first task (a placement-only update:
 * the task keeps running). Undefined: no pin (one node, shared storage, or not placed yet).
 */
export function pinFor(i: PinInput): string | undefined {
  if (!i.multiNode || i.volumes.length === 0) return undefined;
  return i.annotation || i.current || i.recorded || i.siblings?.find(Boolean) || i.running || undefined;
}

/** spec.app.path must stay inside the home: relative, no "..". */
export function appPathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (path.startsWith('/')) return 'must be relative to the home directory (no leading "/")';
  if (path.split('/').some((seg) => seg === '..')) return 'must not contain ".." segments';
  if (path.includes('\0')) return 'must not contain NUL';
  return undefined;
}

/** Spec hashes by a digest of their input's JSON text (see computeSpecHash). */
const specHashes = new Map<string, string>();

/**
 * sha256 of everything that shapes the Docker object. Left out: generation (a spec change that
 * renders the same object must not cause a write), the generation/spec-hash labels, the host-IP
 * label (it only restates networkMode and publishHostIp, which are hashed; leaving it out keeps
 * the hashes of objects written before it was part of the desired labels), stopped
 * (scaling/starting is not a re-create), pullPolicy (it governs how the image is fetched, not
 * what runs) and imageUpdates (when a newer image of the tag is taken, not which tag).
 */
export function computeSpecHash(d: Omit<DesiredServer, 'specHash'>): string {
  const { generation: _g, stopped: _s, pullPolicy: _p, pinNode: _pin, imageUpdates: _iu, labels, ...rest } = d;
  const { [LABELS.generation]: _lg, [LABELS.specHash]: _lh, [LABELS.hostIp]: _ip, ...hashedLabels } = labels;
  const hashed = { ...rest, labels: hashedLabels };
  // The same JSON text is the same value, so the same hash: a digest of the plain text (a third of
  // the cost of the canonical one) finds a hash already computed for a server polled while it starts.
  const text = createHash('sha1').update(JSON.stringify(hashed)).digest('base64');
  let hash = specHashes.get(text);
  if (hash === undefined) {
    hash = createHash('sha256').update(canonicalJson(hashed)).digest('hex');
    if (specHashes.size >= 10_000) specHashes.clear();
    specHashes.set(text, hash);
  }
  return hash;
}

type EnvResult = { ok: true; env: Record<string, string> } | { ok: false; field: string; reason: string; message: string };

/** spec.env as name → value, Secret references resolved through `secrets` (optional ones may be absent). */
export function resolveEnv(env: EnvVar[], namespace: string, secrets: RenderContext['secrets'], secretsOptional = false): EnvResult {
  const out: Record<string, string> = {};
  for (let i = 0; i < env.length; i++) {
    const e = env[i]!;
    if (e.value !== undefined && e.valueFrom) {
      return { ok: false, field: `spec.env[${i}]`, reason: 'InvalidEnv', message: `spec.env[${i}] (${e.name}) sets both value and valueFrom; use one` };
    }
    const ref = e.valueFrom?.secretKeyRef;
    if (!e.valueFrom) {
      out[e.name] = e.value ?? '';
      continue;
    }
    const field = `spec.env[${i}].valueFrom.secretKeyRef`;
    const data = ref ? secrets(ref.name) : undefined;
    const value = ref ? data?.[ref.key] : undefined;
    if (value !== undefined) out[e.name] = value;
    else if (!ref?.optional && !secretsOptional) {
      return data === undefined
        ? {
            ok: false,
            field,
            reason: 'SecretNotFound',
            message: `${field}: secret ${namespace}/${ref?.name} not found; create it or mark the reference optional`,
          }
        : { ok: false, field, reason: 'SecretKeyMissing', message: `${field}: secret ${namespace}/${ref?.name} has no key "${ref?.key}"` };
    }
  }
  return { ok: true, env: out };
}

function hubBaseUrl(env: Record<string, string>): string {
  return (env.JUPYTERHUB_SERVICE_PREFIX ?? '').replace(/\/+$/, '');
}

type GitResult = { ok: true; root?: string; env: Record<string, string>; files: SecretFile[] } | { ok: false; field: string; reason: string; message: string };

/**
 * spec.git → where the presentation lives (the clone), the prelude's environment and the
 * credential files. Refused: git sources off in the policy, a URL that is not https/ssh or that
 * the policy's allowedUrls do not match, a missing or unusable credentials Secret.
 */
export function renderGit(git: NonNullable<NotebookServer['spec']>['git'], namespace: string, home: string, policy: Policy, ctx: RenderContext): GitResult {
  if (!git) return { ok: true, env: {}, files: [] };
  const settings = policy.dashboards.git;
  if (!settings.enabled)
    return {
      ok: false,
      field: 'spec.git',
      reason: 'GitSourcesDisabled',
      message: 'spec.git is set but git sources are disabled by the operator policy (dashboards.git.enabled: false)',
    };
  const parsed = parseGitUrl(git.url ?? '');
  if ('problem' in parsed) return { ok: false, field: 'spec.git.url', reason: 'InvalidGitUrl', message: `spec.git.url "${git.url}" ${parsed.problem}` };
  if (!gitUrlAllowed(git.url, settings.allowedUrls)) {
    return {
      ok: false,
      field: 'spec.git.url',
      reason: 'GitUrlNotAllowed',
      message: `spec.git.url "${git.url}" is not allowed by the operator policy (dashboards.git.allowedUrls: ${settings.allowedUrls.map((g) => `"${g}"`).join(', ')}); ask an admin to add a matching glob`,
    };
  }
  const folder = cloneFolder(git.url, git.folder, settings.directory);
  const folderProblem = appPathProblem(folder);
  if (folderProblem || !folder)
    return { ok: false, field: 'spec.git.folder', reason: 'InvalidGitFolder', message: `spec.git.folder "${folder}" ${folderProblem ?? 'must not be empty'}` };
  let files: SecretFile[] = [];
  if (git.secretName) {
    const field = 'spec.git.secretName';
    const values = ctx.secrets(git.secretName);
    if (!values)
      return {
        ok: false,
        field,
        reason: 'SecretNotFound',
        message: `${field}: secret ${namespace}/${git.secretName} not found; create it (keys username and password, or identity)`,
      };
    const made = gitCredentialFiles(values, `${namespace}/${git.secretName}`);
    if ('problem' in made) return { ok: false, field, reason: 'InvalidGitSecret', message: `${field}: ${made.problem}` };
    files = made;
  }
  const root = posix.join(home, folder);
  const env: Record<string, string> = { NBSWARM_GIT_URL: git.url, NBSWARM_GIT_DIR: root, NBSWARM_GIT_FOLDER: folder };
  if (git.branch) env.NBSWARM_GIT_BRANCH = git.branch;
  if (parsed.credentialScope && files.length) env.NBSWARM_GIT_CREDENTIAL_SCOPE = parsed.credentialScope;
  return { ok: true, root, env, files };
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
  const resources: DesiredServer['resources'] = {};
  for (const kind of ['cpu', 'memory'] as const) {
    const given = spec.resources?.[kind] as string | number | undefined;
    const raw = given ?? policy.resources.defaults[kind];
    const hint = kind === 'cpu' ? '"500m" or "2"' : '"512Mi" or "2Gi"';
    let q: number | undefined;
    if (raw !== undefined) {
      q = parseQuantity(raw);
      const field = `spec.resources.${kind}`;
      if (q === undefined || q <= 0) return fail(field, 'InvalidQuantity', `${field} "${raw}" is not a positive quantity like ${hint}`);
      const cap = policy.resources.limits[kind];
      const capQ = cap === undefined ? undefined : parseQuantity(cap);
      if (capQ !== undefined && q > capQ) {
        return fail(field, 'ResourceOverLimit', `${field} ${raw} is above the operator policy's cap resources.limits.${kind} ${cap}`);
      }
      if (kind === 'cpu') resources.nanoCpus = Math.round(q * 1e9);
      else resources.memoryBytes = Math.round(q);
    }
    const reqRaw = (spec.resources?.requests?.[kind] as string | number | undefined) ?? policy.resources.requests?.[kind];
    if (reqRaw === undefined) continue;
    const rq = parseQuantity(reqRaw);
    const field = `spec.resources.requests.${kind}`;
    if (rq === undefined || rq <= 0) return fail(field, 'InvalidQuantity', `${field} "${reqRaw}" is not a positive quantity like ${hint}`);
    if (q !== undefined && rq > q) return fail(field, 'ResourceOverLimit', `${field} ${reqRaw} is above the server's ${kind} limit ${raw}`);
    if (kind === 'cpu') resources.reserveNanoCpus = Math.round(rq * 1e9);
    else resources.reserveMemoryBytes = Math.round(rq);
  }

  // Volumes from templates; the host home replaces volumes inside the image home for system users.
  const tplVars = { prefix: policy.prefix, namespace: namespacePart(namespace), username: user, servername };
  const volumes: VolumeMount[] = [...systemMounts];
  for (const v of policy.volumes) {
    const target = renderTemplate(v.target, tplVars);
    if (spec.systemUser && (target === policy.homeDir || target.startsWith(policy.homeDir.replace(/\/+$/, '') + '/'))) continue;
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
    const source = ctx.keep?.volumes?.[target] ?? volumeName(renderTemplate(v.name, tplVars));
    const mount: VolumeMount = { source, target, type: 'volume', readOnly: v.readOnly, labels };
    if (v.driver) mount.driver = v.driver;
    if (driverOptions) mount.driverOptions = driverOptions;
    volumes.push(mount);
  }

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

export interface Endpoint {
  url?: string;
  hostUrl?: string;
  host?: string;
  port?: number;
}

const hostPart = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/**
 * status.endpoint for an observed server. hostUrl is where the host reaches it (published port on
 * publishHostIp, or the port itself with host networking); url is what other containers on the
 * policy's network use (the Docker name resolves there), else the hostUrl.
 */
export function endpointFor(desired: DesiredServer, observed: ObservedServer | undefined, policy: Pick<Policy, 'publishHostIp'>): Endpoint {
  const hostPort = desired.networkMode === 'host' ? desired.port : observed?.hostPort;
  let host = observed?.hostIp && observed.hostIp !== '0.0.0.0' && observed.hostIp !== '::' ? observed.hostIp : policy.publishHostIp;
  if (host === '0.0.0.0') host = '127.0.0.1';
  const out: Endpoint = {};
  if (hostPort) {
    out.hostUrl = `http://${hostPart(host)}:${hostPort}`;
    out.host = host;
    out.port = hostPort;
  }
  if (desired.network) out.url = `http://${desired.dockerName}:${desired.port}`;
  else if (out.hostUrl) out.url = out.hostUrl;
  return out;
}
