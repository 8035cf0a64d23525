/**
 * System users (DockerSpawner's SystemUserSpawner). A real host account made
 * with useradd for this run (found by the operator through `getent passwd`), its home a temp dir
 * bound in from policy.systemUsers.homeTemplate: a file created in the server belongs to that
 * uid:gid on the host. Accounts below the uid floor or missing are refused, and with system users
 * disabled by policy the resource fails with a message naming spec.systemUser.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BackendKind } from '../../src/backends/types.js';
import { httpGet } from '../helpers/docker.js';
import { HTTPD, NS, dockerExec, getNbs, nbsYaml, setupEnv, waitPhase, waitReady, type Env } from './operator-harness.js';

function hostAccount(name: string): { uid: number; gid: number } {
  const f = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

describe('system users enabled by policy (service backend)', function () {
  this.timeout(120_000);
  const kind: BackendKind = 'service';
  const tag = randomBytes(3).toString('hex');
  const account = `nbsu${tag}`;
  /** A login account (uid ≥ the floor) outside the policy's allowed group. */
  const outsider = `nbso${tag}`;
  const group = `nbsg${tag}`;
  let ids: { uid: number; gid: number };
  let homes: string;
  let env: Env;

  before(async () => {
    execFileSync('groupadd', [group]);
    execFileSync('useradd', [
      '--no-create-home',
      '--user-group',
      '--groups',
      group,
      '--shell',
      '/usr/sbin/nologin',
      '--comment',
      'nbswarm system-user test',
      account,
    ]);
    execFileSync('useradd', ['--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', '--comment', 'nbswarm system-user test', outsider]);
    ids = hostAccount(account);
    homes = mkdtempSync(join(tmpdir(), 'nbswarm-homes-'));
    // The host home exists and belongs to the account, as on a real multi-user host.
    mkdirSync(join(homes, account), { mode: 0o700 });
    chownSync(join(homes, account), ids.uid, ids.gid);
    env = await setupEnv(kind, {
      systemUsers: {
        enabled: true,
        homeTemplate: `${homes}/{username}`,
        mountTarget: '/home/{username}',
        uidFloor: 1000,
        uidCeiling: 60000,
        users: {},
        allowedGroups: [group],
      },
    });
  });
  after(async () => {
    await env?.close();
    if (homes) rmSync(homes, { recursive: true, force: true });
    for (const [cmd, name] of [
      ['userdel', account],
      ['userdel', outsider],
      ['groupdel', group],
    ]) {
      try {
        execFileSync(cmd!, [name!]);
      } catch {
        // never created
      }
    }
  });

  it("runs as the host account's uid:gid with the host home bound in; files it creates are the user's on the host", async () => {
    expect(ids.uid).to.be.at.least(1000);
    await env.kubectl(['apply', '-f', '-'], nbsYaml('sys', { user: account, mode: 'custom', command: HTTPD, systemUser: true }));
    const o = await waitReady(env, 'sys');
    expect((await httpGet(o.status!.endpoint!.hostUrl!)).status).to.equal(200);
    const [obj] = await env.backend.find(o.metadata.uid!);
    const c: any = await env.docker.getContainer(obj!.containerId!).inspect();
    expect(c.Config.User).to.equal(`${ids.uid}:${ids.gid}`);
    const mounts = (c.Mounts as any[]).map((m) => [m.Type, m.Source, m.Destination]);
    // The host home replaces the policy's named home volume (/home/jovyan) for system users.
    expect(mounts).to.deep.equal([['bind', join(homes, account), `/home/${account}`]]);
    expect((await dockerExec(env.docker, obj!.containerId!, ['id', '-u'])).trim()).to.equal(String(ids.uid));
    expect(c.Config.Env).to.include(`HOME=/home/${account}`);

    await dockerExec(env.docker, obj!.containerId!, ['sh', '-c', 'echo from-the-server > "$HOME/made-in-server.txt"']);
    const st = statSync(join(homes, account, 'made-in-server.txt'));
    expect([st.uid, st.gid]).to.deep.equal([ids.uid, ids.gid]);
  });

  it('refuses accounts below the uid floor and accounts that do not exist, naming spec.systemUser', async () => {
    // daemon (uid 1) exists on every Debian host.
    await env.kubectl(['apply', '-f', '-'], nbsYaml('sys-daemon', { user: 'daemon', mode: 'custom', command: HTTPD, systemUser: true }));
    await env.kubectl(['apply', '-f', '-'], nbsYaml('sys-ghost', { user: `${account}x`, mode: 'custom', command: HTTPD, systemUser: true }));
    const low = await waitPhase(env, 'sys-daemon', 'Failed');
    expect(low.status?.message).to.match(/^spec\.systemUser: .*uid 1, below the policy's systemUsers\.uidFloor \(1000\)/);
    expect(low.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('SystemUserBelowFloor');
    const ghost = await waitPhase(env, 'sys-ghost', 'Failed');
    expect(ghost.status?.message).to.match(/^spec\.systemUser: system user ".*" does not exist on this host/);
    expect(ghost.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('SystemUserNotFound');
    for (const o of [low, ghost]) expect(await env.backend.find(o.metadata.uid!)).to.deep.equal([]);
    expect(await env.kubectl(['describe', 'nbs', 'sys-daemon', '-n', NS])).to.match(/Warning\s+SystemUserBelowFloor\s/);
  });

  it('the hub cannot pick any account: nobody is above the uid ceiling, a login account outside the allowed group is refused', async () => {
    expect(hostAccount(outsider).uid).to.be.within(1000, 60000);
    await env.kubectl(['apply', '-f', '-'], nbsYaml('sys-nobody', { user: 'nobody', mode: 'custom', command: HTTPD, systemUser: true }));
    await env.kubectl(['apply', '-f', '-'], nbsYaml('sys-outsider', { user: outsider, mode: 'custom', command: HTTPD, systemUser: true }));
    const nobody = await waitPhase(env, 'sys-nobody', 'Failed');
    expect(nobody.status?.message).to.match(/uid 65534, above the policy's systemUsers\.uidCeiling \(60000\)/);
    expect(nobody.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('SystemUserOutOfRange');
    const out = await waitPhase(env, 'sys-outsider', 'Failed');
    expect(out.status?.message).to.contain(`not a member of systemUsers.allowedGroups (${group})`);
    expect(out.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('SystemUserNotAllowed');
    for (const o of [nobody, out]) expect(await env.backend.find(o.metadata.uid!)).to.deep.equal([]);
  });
});

describe('system users disabled by policy (container backend)', function () {
  this.timeout(60_000);
  let env: Env;
  before(async () => {
    env = await setupEnv('container');
  });
  after(async () => {
    await env?.close();
  });

  it('a server asking for spec.systemUser fails with a message naming the field and the policy switch; nothing runs', async () => {
    expect(env.policy.systemUsers.enabled).to.equal(false);
    await env.kubectl(['apply', '-f', '-'], nbsYaml('want-sys', { user: 'root', mode: 'custom', command: HTTPD, systemUser: true }));
    const o = await waitPhase(env, 'want-sys', 'Failed');
    expect(o.status?.message).to.equal('spec.systemUser is true but system users are disabled by the operator policy (systemUsers.enabled: false)');
    const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
    expect([ready?.status, ready?.reason]).to.deep.equal(['False', 'SystemUsersDisabled']);
    expect(await env.backend.find(o.metadata.uid!)).to.deep.equal([]);
    const described = await env.kubectl(['describe', 'nbs', 'want-sys', '-n', NS]);
    expect(described).to.match(/Warning\s+SystemUsersDisabled\s.*spec\.systemUser/);
    // Turning the flag off brings the server up as an ordinary (non-system) server.
    await env.kubectl(['patch', 'nbs', 'want-sys', '-n', NS, '--type=merge', '-p', '{"spec":{"systemUser":false}}']);
    const ok = await waitReady(env, 'want-sys');
    expect((await getNbs(env, 'want-sys')).status?.phase).to.equal('Running');
    expect(ok.status?.endpoint?.hostUrl).to.be.a('string');
  });
});
