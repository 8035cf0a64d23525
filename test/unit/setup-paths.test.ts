/**
 * One list of apt packages for every set-up path: `npm start`, `npm test` (pretest), `npm run
 * bench` and .ci/run all go through scripts/install-packages.sh, and no other script installs
 * host packages on its own (that is how CI once stayed green while a bare machine lacked debootstrap).
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoPath } from '../../src/paths.js';

const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { scripts: Record<string, string> };

function shellFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return shellFiles(path);
    return name.endsWith('.sh') ? [path] : [];
  });
}

function installer(...args: string[]): string {
  return execFileSync('bash', [repoPath('scripts/install-packages.sh'), ...args], { encoding: 'utf8' });
}

describe('set-up paths share one package list', () => {
  it('npm start, npm test and npm run bench run the set-up for their purpose', () => {
    expect(pkg.scripts.start).to.match(/^bash scripts\/setup\.sh start && /);
    expect(pkg.scripts.pretest).to.equal('bash scripts/setup.sh test');
    expect(pkg.scripts.prebench).to.equal('bash scripts/install-packages.sh bench');
    const setup = readFileSync(repoPath('scripts/setup.sh'), 'utf8');
    expect(setup).to.match(/start\) groups=\(start\);/);
    expect(setup).to.match(/test\) groups=\(start test\);/);
    expect(setup).to.contain('bash scripts/install-packages.sh "${groups[@]}"');
  });

  it('.ci/run installs the whole list and nothing else', () => {
    const ci = readFileSync(repoPath('.ci/run'), 'utf8');
    expect(ci).to.contain('bash scripts/install-packages.sh all');
    expect(ci).not.to.match(/apt-get/);
    expect(
      installer('--list', 'all')
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
    ).to.include.members(['docker.io', 'debootstrap', 'busybox-static', 'etcd-server', 'jupyterhub']);
  });

  it('no other script installs host packages by itself', () => {
    // images/notebook/build.sh runs apt-get inside the image's chroot: the image's packages, not the host's.
    const allowed = new Set(['scripts/install-packages.sh', 'images/notebook/build.sh']);
    const offenders = [...shellFiles(repoPath('scripts')), ...shellFiles(repoPath('images'))]
      .map((f) => relative(repoPath(), f))
      .filter((f) => !allowed.has(f) && /apt-get\s+(-\S+\s+)*install/.test(readFileSync(repoPath(f), 'utf8')));
    expect(offenders).to.deep.equal([]);
  });

  it('every listed package has a group, a measured time and a reason', () => {
    const lines = readFileSync(repoPath('scripts/apt-packages.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    for (const line of lines) expect(line, line).to.match(/^[a-z0-9][a-z0-9.+-]+\s+(start|test|bench)\s+\d+\s+\S.{10,}$/);
    // --list prints each with its reason, for a person deciding what to install by hand.
    expect(installer('--list', 'start')).to.match(/^debootstrap\s+images\/lib\/debian-base\.sh/m);
  });

  it('images/build-all.sh builds the images named and refuses a name it does not know, before touching Docker', () => {
    const unknown = spawnSync('bash', [repoPath('images/build-all.sh'), 'local/busybox:test', 'local/nope:1'], { encoding: 'utf8' });
    expect(unknown.status).to.equal(2);
    expect(unknown.stderr).to.contain("unknown image 'local/nope:1'");
    expect(unknown.stderr).not.to.contain('images [');
    // .ci/run builds all but the operator image early (it needs node_modules); the pretest builds that one.
    const ci = readFileSync(repoPath('.ci/run'), 'utf8');
    expect(ci).to.contain('images/build-all.sh local/busybox:test local/notebook:latest local/shiny:latest');
    expect(ci.indexOf('\nsetsid bash images/build-all.sh ')).to.be.greaterThan(0).and.lessThan(ci.indexOf('\nnpm ci --ignore-scripts'));
  });
});
