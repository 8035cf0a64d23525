import { expect } from 'chai';
import { defaultPolicy, loadPolicy, PolicyError } from '../../src/config/policy.js';
import { getentPasswd, lookupSystemUser, SystemUserError } from '../../src/config/system-users.js';
import type { Policy } from '../../src/config/types.js';

function policy(su: Partial<Policy['systemUsers']> = {}): Policy {
  const p = defaultPolicy();
  p.systemUsers = { ...p.systemUsers, enabled: true, ...su };
  return p;
}

async function rejection(p: Promise<unknown>): Promise<SystemUserError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(SystemUserError);
    return e as SystemUserError;
  }
  throw new Error('expected a rejection');
}

describe('system users', () => {
  it('getent passwd root is uid 0 on this host (real getent)', async () => {
    expect(await getentPasswd('root')).to.deep.include({ uid: 0, gid: 0 });
  });

  it('getent passwd of a user that does not exist is undefined (real getent)', async () => {
    expect(await getentPasswd('nbswarm-no-such-user-x9')).to.equal(undefined);
  });

  it('root is refused: below the uid floor, and the message names systemUsers.uidFloor', async () => {
    const e = await rejection(lookupSystemUser('root', policy()));
    expect(e.reason).to.equal('SystemUserBelowFloor');
    expect(e.message).to.contain('uid 0').and.to.contain('systemUsers.uidFloor (1000)');
  });

  it('a nonexistent user is refused, naming systemUsers.users', async () => {
    const e = await rejection(lookupSystemUser('nbswarm-no-such-user-x9', policy()));
    expect(e.reason).to.equal('SystemUserNotFound');
    expect(e.message).to.contain('does not exist on this host').and.to.contain('systemUsers.users');
  });

  it('with a floor of 0, root resolves through getent with the home from homeTemplate', async () => {
    expect(await lookupSystemUser('root', policy({ uidFloor: 0, homeTemplate: '/srv/homes/{username}', allowedUsers: ['root'] }))).to.deep.equal({
      uid: 0,
      gid: 0,
      home: '/srv/homes/root',
    });
  });

  it('the policy map wins over getent (no lookup needed)', async () => {
    let called = false;
    const lookup = async () => {
      called = true;
      return undefined;
    };
    const u = await lookupSystemUser('carol', policy({ users: { carol: { uid: 1500, gid: 1600 } } }), lookup);
    expect(u).to.deep.equal({ uid: 1500, gid: 1600, home: '/home/carol' });
    expect(called).to.equal(false);
  });

  it('refuses when the policy has system users disabled', async () => {
    const p = defaultPolicy();
    const e = await rejection(lookupSystemUser('carol', p));
    expect(e.reason).to.equal('SystemUsersDisabled');
    expect(e.message).to.contain('systemUsers.enabled');
  });

  it('nobody (uid 65534) is above the uid ceiling, even when a glob allows every name (real getent)', async () => {
    const e = await rejection(lookupSystemUser('nobody', policy({ allowedUsers: ['*'] })));
    expect(e.reason).to.equal('SystemUserOutOfRange');
    expect(e.message).to.contain('uid 65534').and.to.contain('systemUsers.uidCeiling (60000)');
  });

  it('only accounts the policy names: users map, allowedUsers globs, or members of allowedGroups', async () => {
    const passwd = async (name: string) =>
      ({ alice: { uid: 1001, gid: 1001, home: '' }, bob: { uid: 1002, gid: 2000, home: '' }, eve: { uid: 1003, gid: 1003, home: '' } })[name];
    const groups = async (name: string) => (name === 'jupyter' ? { gid: 2000, members: ['alice'] } : undefined);
    const p = policy({ allowedGroups: ['jupyter', 'no-such-group'], allowedUsers: ['lab-*'] });
    // alice is a supplementary member, bob's primary group is it.
    expect((await lookupSystemUser('alice', p, passwd, groups)).uid).to.equal(1001);
    expect((await lookupSystemUser('bob', p, passwd, groups)).uid).to.equal(1002);
    const e = await rejection(lookupSystemUser('eve', p, passwd, groups));
    expect(e.reason).to.equal('SystemUserNotAllowed');
    expect(e.message).to.contain('systemUsers.allowedGroups (jupyter, no-such-group)');
    expect((await lookupSystemUser('lab-1', policy({ allowedUsers: ['lab-*'] }), async () => ({ uid: 1500, gid: 1500, home: '' }), groups)).uid).to.equal(1500);
  });

  it('the policy refuses system users without a list of the accounts they may be', () => {
    expect(() => loadPolicy({ env: { NBSWARM_SYSTEM_USERS: 'true' } })).to.throw(PolicyError, /systemUsers\.enabled: name the host accounts/);
    expect(loadPolicy({ env: { NBSWARM_SYSTEM_USERS: 'true', NBSWARM_SYSTEM_USER_GROUPS: 'jupyter' } }).systemUsers.allowedGroups).to.deep.equal(['jupyter']);
    expect(() => loadPolicy({ overrides: { systemUsers: { ...defaultPolicy().systemUsers, users: { x: { uid: 65534, gid: 65534 } } } } })).to.throw(
      PolicyError,
      /above systemUsers\.uidCeiling 60000/,
    );
  });

  it('names that cannot be accounts are refused before running getent', async () => {
    const e = await rejection(
      lookupSystemUser('alice@example.com', policy(), async () => {
        throw new Error('must not be called');
      }),
    );
    expect(e.reason).to.equal('SystemUserInvalid');
  });
});
