/**
 * System users (DockerSpawner's SystemUserSpawner): a server runs as the host account's uid:gid
 * with the host home bound in. The account comes from policy.systemUsers.users or, failing that,
 * the host's passwd database through `getent passwd` (run without a shell).
 */
import { execFile } from 'node:child_process';
import picomatch from 'picomatch';
import type { Policy } from './types.js';
import { renderTemplate } from './templates.js';

export interface SystemUser {
  uid: number;
  gid: number;
  /** Host path bound into the server: policy.systemUsers.homeTemplate for this user. */
  home: string;
}

export class SystemUserError extends Error {
  constructor(
    message: string,
    readonly reason:
      'SystemUsersDisabled' | 'SystemUserNotFound' | 'SystemUserBelowFloor' | 'SystemUserInvalid' | 'SystemUserNotAllowed' | 'SystemUserOutOfRange',
  ) {
    super(message);
    this.name = 'SystemUserError';
  }
}

/** POSIX-ish account names (shadow-utils' default NAME_REGEX, plus upper case and dots). */
const ACCOUNT = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

export type PasswdLookup = (username: string) => Promise<{ uid: number; gid: number; home: string } | undefined>;

/** `getent passwd NAME`: undefined when the user does not exist (exit status 2). */
export const getentPasswd: PasswdLookup = (username) =>
  new Promise((resolve, reject) => {
    execFile('getent', ['passwd', username], { timeout: 10_000 }, (err, stdout) => {
      if (err) {
        if ((err as { code?: unknown }).code === 2) return resolve(undefined);
        return reject(new Error(`getent passwd ${username} failed: ${err.message}`));
      }
      const line = stdout.split('\n').find((l) => l.startsWith(username + ':'));
      if (!line) return resolve(undefined);
      const f = line.split(':');
      resolve({ uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' });
    });
  });

export type GroupLookup = (group: string) => Promise<{ gid: number; members: string[] } | undefined>;

/** `getent group NAME`: undefined when the group does not exist (exit status 2). */
export const getentGroup: GroupLookup = (group) =>
  new Promise((resolve, reject) => {
    execFile('getent', ['group', group], { timeout: 10_000 }, (err, stdout) => {
      if (err) {
        if ((err as { code?: unknown }).code === 2) return resolve(undefined);
        return reject(new Error(`getent group ${group} failed: ${err.message}`));
      }
      const line = stdout.split('\n').find((l) => l.startsWith(group + ':'));
      if (!line) return resolve(undefined);
      const f = line.split(':');
      resolve({ gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) });
    });
  });

/**
 * Whether the policy lets servers run as `username`: listed in systemUsers.users, matching a glob
 * of systemUsers.allowedUsers, or a member (primary or supplementary) of a group in
 * systemUsers.allowedGroups. The hub chooses spec.user; this is what keeps it to the accounts an
 * admin meant.
 */
async function allowedAccount(username: string, gid: number, su: Policy['systemUsers'], groups: GroupLookup): Promise<boolean> {
  if (Object.prototype.hasOwnProperty.call(su.users, username)) return true;
  if ((su.allowedUsers ?? []).some((g) => picomatch(g, { dot: true })(username))) return true;
  for (const name of su.allowedGroups ?? []) {
    const g = await groups(name);
    if (g && (g.gid === gid || g.members.includes(username))) return true;
  }
  return false;
}

export async function lookupSystemUser(
  username: string,
  policy: Policy,
  lookup: PasswdLookup = getentPasswd,
  groups: GroupLookup = getentGroup,
): Promise<SystemUser> {
  const su = policy.systemUsers;
  if (!su.enabled) {
    throw new SystemUserError('system users are disabled by the operator policy (systemUsers.enabled: false)', 'SystemUsersDisabled');
  }
  const home = renderTemplate(su.homeTemplate, { username }, { escape: false });
  const listed = Object.prototype.hasOwnProperty.call(su.users, username) ? su.users[username] : undefined;
  let ids: { uid: number; gid: number } | undefined = listed;
  if (!ids) {
    if (!ACCOUNT.test(username)) {
      throw new SystemUserError(`"${username}" is not a valid system account name and is not listed in the policy's systemUsers.users`, 'SystemUserInvalid');
    }
    ids = await lookup(username);
    if (!ids) {
      throw new SystemUserError(
        `system user "${username}" does not exist on this host (getent passwd found nothing) and is not listed in the policy's systemUsers.users`,
        'SystemUserNotFound',
      );
    }
  }
  if (ids.uid < su.uidFloor) {
    throw new SystemUserError(
      `system user "${username}" has uid ${ids.uid}, below the policy's systemUsers.uidFloor (${su.uidFloor}); servers never run as system accounts`,
      'SystemUserBelowFloor',
    );
  }
  // Above the range of login accounts sit system accounts again (nobody is 65534).
  if (ids.uid > su.uidCeiling) {
    throw new SystemUserError(
      `system user "${username}" has uid ${ids.uid}, above the policy's systemUsers.uidCeiling (${su.uidCeiling}); servers never run as system accounts such as nobody`,
      'SystemUserOutOfRange',
    );
  }
  if (!(await allowedAccount(username, ids.gid, su, groups))) {
    throw new SystemUserError(
      `system user "${username}" is not one the policy lets servers run as: not in systemUsers.users, not matched by systemUsers.allowedUsers, not a member of systemUsers.allowedGroups (${(su.allowedGroups ?? []).join(', ') || 'none'})`,
      'SystemUserNotAllowed',
    );
  }
  return { uid: ids.uid, gid: ids.gid, home };
}
