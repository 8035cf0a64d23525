/**
 * The start prelude's git logic, run by the real `sh` (dash) with the real `git` against a local
 * repository: clone on the first start, fast-forward on the next, local work never overwritten,
 * wrong folders refused with a message and an exit code. (The container runs the same script;
 * https with credentials and the Docker side are in test/integration/dashboards.test.ts.)
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGitUrl, repoFolderName } from '../../src/config/git-source.js';
import { START_PRELUDE, withPrelude } from '../../src/config/start-prelude.js';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' },
  });

describe('start prelude (git source)', () => {
  let root: string;
  let origin: string;
  let work: string;
  let home: string;

  function commit(file: string, content: string, branch = 'main'): void {
    git(work, 'checkout', '-q', branch);
    writeFileSync(join(work, file), content);
    git(work, 'add', file);
    git(work, 'commit', '-qm', `${file}: ${content}`);
    git(work, 'push', '-q', 'origin', branch);
  }

  /** Run the prelude like the container does, then `cat FILE` in the clone as the "app". */
  function start(env: Record<string, string>, file = 'app.txt'): { code: number; out: string; err: string } {
    const dir = join(home, env.NBSWARM_GIT_FOLDER ?? 'work/repo');
    const [cmd, ...args] = withPrelude(['cat', join(dir, file)]);
    const r = spawnSync(cmd!, args, {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: home, NBSWARM_GIT_URL: origin, NBSWARM_GIT_FOLDER: 'work/repo', NBSWARM_GIT_DIR: dir, ...env },
    });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'nbs-prelude-'));
    origin = join(root, 'origin.git');
    work = join(root, 'author');
    home = join(root, 'home');
    mkdirSync(home);
    git(root, 'init', '-q', '--bare', '-b', 'main', origin);
    git(root, 'init', '-q', '-b', 'main', work);
    git(work, 'remote', 'add', 'origin', origin);
    writeFileSync(join(work, 'app.txt'), 'v1');
    git(work, 'add', 'app.txt');
    git(work, 'commit', '-qm', 'v1');
    git(work, 'push', '-q', 'origin', 'main');
    git(work, 'checkout', '-q', '-b', 'beta');
    git(work, 'push', '-q', 'origin', 'beta');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('clones on the first start, then runs the launcher in place of itself', () => {
    const r = start({});
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.equal('v1');
    expect(r.err).to.match(/nbswarm-start: cloned .*origin\.git into work\/repo \([0-9a-f]+\)/);
  });

  it('pulls on a later start (fast-forward)', () => {
    expect(start({}).out).to.equal('v1');
    commit('app.txt', 'v2');
    const r = start({});
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.equal('v2');
    expect(r.err).to.match(/pulled .* into work\/repo/);
  });

  it('checks out spec.git.branch, and switches when the branch changes', () => {
    commit('app.txt', 'beta-1', 'beta');
    expect(start({ NBSWARM_GIT_BRANCH: 'beta' }).out).to.equal('beta-1');
    expect(start({ NBSWARM_GIT_BRANCH: 'main' }).out).to.equal('v1');
    commit('app.txt', 'beta-2', 'beta');
    expect(start({ NBSWARM_GIT_BRANCH: 'beta' }).out).to.equal('beta-2');
  });

  it('serves local changes as they are instead of pulling over them', () => {
    start({});
    writeFileSync(join(home, 'work/repo/app.txt'), 'edited by the user');
    commit('app.txt', 'v2');
    const r = start({});
    expect(r.code).to.equal(0);
    expect(r.out).to.equal('edited by the user');
    expect(r.err).to.contain('work/repo has local changes: serving them without pulling');
  });

  it('serves the last clone when the pull fails', () => {
    start({});
    rmSync(origin, { recursive: true, force: true });
    const r = start({});
    expect(r.code).to.equal(0);
    expect(r.out).to.equal('v1');
    expect(r.err).to.contain('serving the last clone in work/repo');
  });

  it('refuses a folder that is not a clone, or a clone of another repository, and a failed clone', () => {
    mkdirSync(join(home, 'work/repo'), { recursive: true });
    writeFileSync(join(home, 'work/repo/notes.txt'), 'mine');
    const notClone = start({});
    expect(notClone.code).to.equal(65);
    expect(notClone.err).to.contain('spec.git.folder work/repo exists and is not a git clone');
    expect(readFileSync(join(home, 'work/repo/notes.txt'), 'utf8')).to.equal('mine');

    rmSync(join(home, 'work/repo'), { recursive: true });
    start({});
    const other = start({ NBSWARM_GIT_URL: join(root, 'other.git') });
    expect(other.code).to.equal(65);
    expect(other.err).to.contain('holds a clone of');

    const failed = start({ NBSWARM_GIT_URL: join(root, 'missing.git'), NBSWARM_GIT_FOLDER: 'work/m', NBSWARM_GIT_DIR: join(home, 'work/m') });
    expect(failed.code).to.equal(66);
    expect(failed.err).to.contain('git clone of');
  });

  it('does nothing without NBSWARM_GIT_URL (and leaves no git settings to the app)', () => {
    const r = spawnSync('sh', ['-c', START_PRELUDE, 'nbswarm-start', 'sh', '-c', 'echo "${GIT_CONFIG_COUNT:-none}"'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.equal('none');
  });
});

describe('start prelude: the launcher argv passes through as data', () => {
  const HOSTILE = [
    '$(echo INJECTED)',
    '`echo INJECTED`',
    '; echo INJECTED',
    '&& echo INJECTED',
    '| echo INJECTED',
    '\'q\' "qq" \\b',
    '$HOME ${PATH} $0 $@',
    '* ? ~ #c',
    '',
    '-e',
  ];

  it('shell metacharacters in the argv after the prelude reach the launcher literally (git clone run first)', () => {
    const root = mkdtempSync(join(tmpdir(), 'nbs-prelude-argv-'));
    try {
      const origin = join(root, 'origin.git');
      const work = join(root, 'w');
      git(root, 'init', '-q', '--bare', '-b', 'main', origin);
      git(root, 'init', '-q', '-b', 'main', work);
      writeFileSync(join(work, 'a'), 'a');
      git(work, 'add', 'a');
      git(work, 'commit', '-qm', 'a');
      git(work, 'push', '-q', origin, 'main');
      const dir = join(root, 'home', 'repo');
      const [cmd, ...args] = withPrelude(['printf', 'ARG[%s]\\n', ...HOSTILE]);
      const r = spawnSync(cmd!, args, {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: join(root, 'home'), NBSWARM_GIT_URL: origin, NBSWARM_GIT_FOLDER: 'repo', NBSWARM_GIT_DIR: dir },
      });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.contain('cloned');
      expect(r.stdout.split('\n').filter(Boolean)).to.deep.equal(HOSTILE.map((a) => `ARG[${a}]`));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('git source URLs and folders', () => {
  it("folder names are cdsdashboards' _calc_repo_folder", () => {
    expect(repoFolderName('https://github.com/ideonate/cdsdashboards.git')).to.equal('github-com-ideonate-cdsdashboards-git');
    expect(repoFolderName('HTTPS://GitHub.com//A__b/')).to.equal('github-com-a-b');
    expect(repoFolderName('git@github.com:org/repo.git')).to.equal('git-github-com-org-repo-git');
  });
  it('accepts https, ssh:// and scp-like ssh; refuses the rest with the reason', () => {
    expect(parseGitUrl('https://h.example:8443/a.git')).to.deep.equal({ scheme: 'https', host: 'h.example', credentialScope: 'https://h.example:8443' });
    expect(parseGitUrl('ssh://git@h.example/a.git')).to.deep.equal({ scheme: 'ssh', host: 'h.example' });
    expect(parseGitUrl('git@h.example:a/b.git')).to.deep.equal({ scheme: 'ssh', host: 'h.example' });
    expect(parseGitUrl('--upload-pack=evil')).to.have.property('problem');
    expect(parseGitUrl('ext::sh -c x')).to.have.property('problem');
    expect(parseGitUrl('ftp://h/a')).to.deep.equal({
      problem: 'uses ftp://, which nbswarm does not clone from: use https (credentials: username and password in spec.git.secretName) or ssh (an ssh key)',
    });
  });
});
