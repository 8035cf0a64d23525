import { expect } from 'chai';
import { defaultPolicy } from '../../src/config/policy.js';
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
    expect(await lookupSystemUser('root', policy({ uidFloor: 0, homeTemplate: '/srv/homes/{username}' })))
      .to.deep.equal({ uid: 0, gid: 0, home: '/srv/homes/root' });
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

  it('names that cannot be accounts are refused before running getent', async () => {
    const e = await rejection(lookupSystemUser('alice@example.com', policy(), async () => {
      throw new Error('must not be called');
    }));
    expect(e.reason).to.equal('SystemUserInvalid');
  });
});
