/**
 * What a spec draws from outside itself: environment values from Secrets, a git source (its
 * clone folder and credentials), and the app path inside the home. Pure: Secrets come through
 * the render context.
 */
import { posix } from 'node:path';
import type { EnvVar, NotebookServer } from '../api/types.js';
import type { SecretFile } from '../backends/types.js';
import { cloneFolder, gitCredentialFiles, gitUrlAllowed, parseGitUrl } from '../config/git-source.js';
import type { Policy } from '../config/types.js';
import type { RenderContext } from './desired.js';

/** spec.app.path must stay inside the home: relative, no "..". */
export function appPathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (path.startsWith('/')) return 'must be relative to the home directory (no leading "/")';
  if (path.split('/').some((seg) => seg === '..')) return 'must not contain ".." segments';
  if (path.includes('\0')) return 'must not contain NUL';
  return undefined;
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
