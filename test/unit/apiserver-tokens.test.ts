import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseTokenLines, TokenAuth, type User } from '../../src/apiserver/auth/tokens.js';
import type { Logger } from '../../src/log.js';

/** A logger that keeps what it was told (TokenAuth only calls warn and info). */
function recordingLogger(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = {
    warn: (msg: string, f: { problem?: string }) => warnings.push(`${msg}${f?.problem ? `: ${f.problem}` : ''}`),
    info: () => {},
  } as unknown as Logger;
  return { log, warnings };
}

// The file is looked at every 2 s at most.
const nextCheck = () => new Promise((r) => setTimeout(r, 2100));

describe('API server token file', function () {
  this.timeout(20_000);
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-tokens-'));
    file = join(dir, 'tokens.csv');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('skips unreadable lines and reports each, keeping the readable ones', () => {
    const { users, problems } = parseTokenLines('a,alice,admin\nnonsense\nb,bob,root\nc,carol,hub,ns1;ns2\n');
    expect([...users.keys()]).to.deep.equal(['a', 'c']);
    expect(users.get('c')).to.deep.equal({ name: 'carol', role: 'hub', namespaces: ['ns1', 'ns2'] });
    expect(problems).to.deep.equal([
      'token file line 2: expected token,user,role[,namespaces]',
      'token file line 3: role must be admin, hub or viewer, got "root"',
    ]);
  });

  it('a revoked token stops working even when the edited file has a bad line, which is logged', async () => {
    writeFileSync(file, 'admintok,root,admin\nhubtok,jupyterhub,hub,jupyter\n');
    const { log, warnings } = recordingLogger();
    const auth = new TokenAuth(file, new Map<string, User>(), log);
    expect(auth.authenticate('Bearer admintok')?.name).to.equal('root');
    writeFileSync(file, 'hubtok,jupyterhub,hub,jupyter\nthis line is broken\n');
    await nextCheck();
    expect(auth.authenticate('Bearer admintok')).to.equal(null);
    expect(auth.authenticate('Bearer hubtok')?.name).to.equal('jupyterhub');
    expect(warnings).to.deep.equal(['token file line skipped: token file line 2: expected token,user,role[,namespaces]']);
  });

  it('a file moved away locks its users out, and moved back lets them in without a touch', async () => {
    writeFileSync(file, 'hubtok,jupyterhub,hub,jupyter\n');
    const extra = new Map<string, User>([['own', { name: 'admin', role: 'admin', namespaces: null }]]);
    const { log, warnings } = recordingLogger();
    const auth = new TokenAuth(file, extra, log);
    expect(auth.authenticate('Bearer hubtok')?.name).to.equal('jupyterhub');
    renameSync(file, `${file}.bak`);
    await nextCheck();
    expect(auth.authenticate('Bearer hubtok')).to.equal(null);
    expect(auth.authenticate('Bearer own')?.name).to.equal('admin');
    expect(warnings.some((w) => w.startsWith('the token file is gone'))).to.equal(true);
    // Back with the inode, size and mtime it had before it went away.
    renameSync(`${file}.bak`, file);
    await nextCheck();
    expect(auth.authenticate('Bearer hubtok')?.name).to.equal('jupyterhub');
  });
});
