/**
 * A dashboard's git source (spec.git, cdsdashboards' "Git Repo" tab): which URLs are accepted,
 * where the clone goes, and how the credentials Secret becomes files in the container. Pure.
 *
 * Only https and ssh are accepted: plain http and git:// carry neither the credentials nor the
 * content safely, and a local path or file:// would read the container's own filesystem.
 * Credentials never travel in the URL (it is in the spec, the Docker env and every log line);
 * they come from a Secret and reach the container as files, which git reads through a credential
 * helper (https) or ssh's -i (ssh).
 */
import picomatch from 'picomatch';
import { posix } from 'node:path';

export interface GitUrl {
  scheme: 'https' | 'ssh';
  host: string;
  /** https://HOST[:PORT]: the scope git's credential helper is configured for. */
  credentialScope?: string;
}

/** scp-like ssh address: USER@HOST:PATH (git treats it as ssh://USER@HOST/PATH). */
const SCP_LIKE = /^([A-Za-z0-9][A-Za-z0-9._-]*)@([A-Za-z0-9][A-Za-z0-9.-]*):([^/].*)$/;

/** The URL parsed, or the sentence saying why it is refused (for spec.git.url). */
export function parseGitUrl(url: string): GitUrl | { problem: string } {
  if (/\s/.test(url) || url.startsWith('-')) return { problem: 'must be one word and must not start with "-"' };
  const scp = SCP_LIKE.exec(url);
  if (scp) return { scheme: 'ssh', host: scp[2]! };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { problem: 'is not an https or ssh URL (https://HOST/PATH, ssh://[USER@]HOST/PATH or USER@HOST:PATH)' };
  }
  if (u.protocol === 'https:') {
    if (u.username || u.password) {
      return { problem: 'must not carry credentials: put them in a Secret (keys username and password) and name it in spec.git.secretName' };
    }
    if (!u.hostname) return { problem: 'has no host' };
    return { scheme: 'https', host: u.hostname, credentialScope: `https://${u.host}` };
  }
  if (u.protocol === 'ssh:') {
    if (u.password) return { problem: 'must not carry a password: put an ssh key in a Secret (key identity) and name it in spec.git.secretName' };
    if (!u.hostname) return { problem: 'has no host' };
    return { scheme: 'ssh', host: u.hostname };
  }
  return {
    problem: `uses ${u.protocol.replace(/:$/, '')}://, which nbswarm does not clone from: use https (credentials: username and password in spec.git.secretName) or ssh (an ssh key)`,
  };
}

/** Whether the policy's dashboards.git.allowedUrls (globs; empty = all) let this URL through. */
export function gitUrlAllowed(url: string, globs: readonly string[]): boolean {
  if (globs.length === 0) return true;
  return globs.some((g) => picomatch(g, { dot: true })(url));
}

/**
 * The clone's folder name from its URL, as cdsdashboards names it (VariableMixin._calc_repo_folder):
 * lower case, without http(s), every other character a dash, runs of dashes made one.
 */
export function repoFolderName(url: string): string {
  return url
    .toLowerCase()
    .replace(/^https?/, '')
    .replace(/[^a-z0-9]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Where the clone goes, relative to the home: spec.git.folder, else the policy's directory + the URL's folder name. */
export function cloneFolder(url: string, folder: string | undefined, directory: string): string {
  if (folder) return folder.replace(/\/+$/, '');
  return posix.join(directory || '.', repoFolderName(url)).replace(/^\.\//, '');
}

/** Names of the files the credentials become, under /run/secrets in the container. */
export const GIT_SECRET_FILES = {
  credentials: 'nbswarm-git-credentials',
  identity: 'nbswarm-git-identity',
  knownHosts: 'nbswarm-git-known_hosts',
  ca: 'nbswarm-git-ca.crt',
} as const;

export const SECRETS_DIR = '/run/secrets';

/** Secret keys read, Flux's GitRepository names first (kubernetes.io/ssh-auth's name for the key too). */
const KEYS = {
  username: ['username'],
  password: ['password'],
  identity: ['identity', 'ssh-privatekey'],
  knownHosts: ['known_hosts'],
  ca: ['ca.crt', 'caFile'],
};

export interface SecretFileContent {
  name: string;
  data: string;
}

/**
 * The credential files for a Secret's decoded values, or the sentence saying what is wrong.
 * git's credential helper format is line-based, so a username or password with a line break would
 * let the Secret inject other fields: refused.
 */
export function gitCredentialFiles(values: Record<string, string>, secretName: string): SecretFileContent[] | { problem: string } {
  const pick = (keys: string[]): string | undefined => keys.map((k) => values[k]).find((v) => v !== undefined && v !== '');
  const files: SecretFileContent[] = [];
  const password = pick(KEYS.password);
  const username = pick(KEYS.username);
  if (password !== undefined) {
    const user = username ?? 'git';
    if (/[\r\n\0]/.test(user) || /[\r\n\0]/.test(password)) return { problem: `secret ${secretName}: username and password must be one line each` };
    files.push({ name: GIT_SECRET_FILES.credentials, data: `username=${user}\npassword=${password}\n` });
  } else if (username !== undefined) {
    return { problem: `secret ${secretName} has a username but no password (for a token, put the token in password)` };
  }
  const identity = pick(KEYS.identity);
  if (identity !== undefined) files.push({ name: GIT_SECRET_FILES.identity, data: identity.endsWith('\n') ? identity : identity + '\n' });
  const knownHosts = pick(KEYS.knownHosts);
  if (knownHosts !== undefined) files.push({ name: GIT_SECRET_FILES.knownHosts, data: knownHosts });
  const ca = pick(KEYS.ca);
  if (ca !== undefined) files.push({ name: GIT_SECRET_FILES.ca, data: ca });
  if (files.length === 0) {
    return { problem: `secret ${secretName} has none of the keys nbswarm reads for git: username+password, identity (or ssh-privatekey), known_hosts, ca.crt` };
  }
  return files;
}
