/**
 * The README's promise that `npm start` and `npm test` install what they need on a bare Debian
 * machine, checked for real: a fresh Debian minbase rootfs (the cached tarball the image recipes
 * make, images/lib/debian-base.sh) in a chroot with the host's Debian sources, where
 * scripts/install-packages.sh — the one step `npm start`, `npm test`'s pretest and .ci/run share —
 * finds debootstrap and the rest missing, installs them with apt from the mirror, and then has
 * nothing left to do.
 *
 * Everything runs inside `unshare --mount`, so no mount outlives the test, and inside the chroot,
 * so the machine's own packages are never touched. Downloaded .debs are kept between runs under the
 * image cache (copied in and out, never shared live), so a second run skips the 70 MB download
 * while apt still resolves, verifies and installs every package.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from '../../src/paths.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

/** The packages of some groups of scripts/apt-packages.txt, in file order. */
function listed(...groups: string[]): string[] {
  return readFileSync(repoPath('scripts/apt-packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([pkg, group]) => pkg && !pkg.startsWith('#') && groups.includes(group))
    .map(([pkg]) => pkg);
}

const APT_CACHE = '/var/cache/nbswarm-images/apt-archives-bare-test';

describe('bare machine set-up (scripts/install-packages.sh in a fresh Debian rootfs)', function () {
  this.timeout(240_000);
  let work: string;
  let rootfs: string;
  /** The .debs debootstrap left in the rootfs: not worth keeping. */
  let baseDebs = new Set<string>();

  /** A shell command run as root in the rootfs, with a fresh /proc, in a mount namespace of its own. */
  function inRootfs(command: string, timeoutMs = 60_000): Promise<Run> {
    const script = [
      'set -e',
      `mount -t proc proc '${rootfs}/proc'`,
      `exec chroot '${rootfs}' /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /bin/bash -c '${command}'`,
    ].join('\n');
    return run('unshare', ['--mount', '--propagation', 'private', '--fork', '/bin/sh', '-c', script], timeoutMs);
  }

  before(async function () {
    this.timeout(300_000);
    if (process.getuid?.() !== 0) throw new Error('this test needs root (chroot, mounts), as the set-up scripts do');
    work = mkdtempSync('/var/tmp/nbswarm-bare-');
    rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    // The same minbase the notebook and operator images start from; cached after the first build.
    const base = await run('bash', ['-c', `. '${repoPath('images/lib/debian-base.sh')}' && nbswarm_base_tarball '${work}'`], 280_000);
    if (base.code !== 0) throw new Error(`cannot make the Debian minbase tarball:\n${base.stderr.slice(-2000)}`);
    const untar = await run('tar', ['-C', rootfs, '-xf', base.stdout.trim()], 120_000);
    if (untar.code !== 0) throw new Error(`tar: ${untar.stderr}`);
    // The host's Debian sources (the mirror the image recipes use), its resolver, and the scripts.
    rmSync(join(rootfs, 'etc/apt/sources.list'), { force: true });
    if (existsSync('/etc/apt/sources.list.d/debian.sources'))
      copyFileSync('/etc/apt/sources.list.d/debian.sources', join(rootfs, 'etc/apt/sources.list.d/debian.sources'));
    else copyFileSync('/etc/apt/sources.list', join(rootfs, 'etc/apt/sources.list'));
    copyFileSync('/etc/resolv.conf', join(rootfs, 'etc/resolv.conf'));
    cpSync(repoPath('scripts'), join(rootfs, 'opt/nbswarm/scripts'), { recursive: true });
    // As Docker's Debian images do: dpkg skips its fsyncs in a throw-away rootfs (halves the install).
    writeFileSync(join(rootfs, 'etc/dpkg/dpkg.cfg.d/nbswarm-test-unsafe-io'), 'force-unsafe-io\n');
    const archives = join(rootfs, 'var/cache/apt/archives');
    baseDebs = new Set(readdirSync(archives));
    if (existsSync(APT_CACHE)) cpSync(APT_CACHE, archives, { recursive: true, filter: (src) => src === APT_CACHE || src.endsWith('.deb') });
  });

  after(function () {
    if (!rootfs) return;
    // Keep what apt downloaded for the next run: write then rename, so two runs never see half a file.
    const archives = join(rootfs, 'var/cache/apt/archives');
    if (existsSync(archives)) {
      mkdirSync(APT_CACHE, { recursive: true });
      for (const deb of readdirSync(archives).filter((f) => f.endsWith('.deb'))) {
        if (baseDebs.has(deb) || existsSync(join(APT_CACHE, deb))) continue;
        const tmp = join(APT_CACHE, `.${deb}.${process.pid}`);
        copyFileSync(join(archives, deb), tmp);
        renameSync(tmp, join(APT_CACHE, deb));
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('a fresh rootfs lacks what the image recipes need, and the dry run names exactly the missing ones', async () => {
    const which = await inRootfs('command -v debootstrap || echo none; command -v dockerd || echo none; test -e /bin/busybox || echo no-busybox');
    expect(which.stdout.trim().split('\n'), which.stderr).to.deep.equal(['none', 'none', 'no-busybox']);
    const start = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh --dry-run start');
    expect(start.code, start.stderr).to.equal(0);
    expect(start.stdout.trim().split('\n')).to.deep.equal(listed('start'));
    expect(listed('start')).to.include.members(['docker.io', 'debootstrap', 'busybox-static']);
    // npm test's pretest asks for start + test: every test package is missing here too.
    const forTests = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh --dry-run start test');
    const missing = forTests.stdout.trim().split('\n');
    expect(missing).to.include.members([...listed('start'), ...listed('test').filter((p) => p !== 'util-linux')]);
    expect(missing).not.to.include('util-linux'); // essential: part of every Debian system
  });

  it("installs the start group with apt (no service started), then the recipes' tools work", async () => {
    const inst = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh start', 200_000);
    expect(inst.code, `${inst.stderr}\n${inst.stdout}`).to.equal(0);
    expect(inst.stderr).to.match(new RegExp(`apt packages \\(start\\): installing ${listed('start').length} of ${listed('start').length}: `));
    expect(inst.stderr).to.match(/apt-get install \d+ packages: done in \d+s/);
    console.log(`      install-packages.sh start in the fresh rootfs: ${(inst.ms / 1000).toFixed(1)} s`);

    const tools = await inRootfs('debootstrap --version && dockerd --version && docker --version && /bin/busybox --help | head -1');
    expect(tools.code, tools.stderr).to.equal(0);
    expect(tools.stdout).to.match(/debootstrap \d/);
    expect(tools.stdout).to.match(/Docker version \d+/);
    expect(tools.stdout).to.match(/BusyBox v\d/);
    // busybox must be the static one: the test image copies it into an empty rootfs.
    const ldd = await inRootfs('ldd /bin/busybox || true');
    expect(ldd.stdout + ldd.stderr).to.match(/not a dynamic executable/);
    // The temporary policy-rc.d that kept dockerd from starting is gone again.
    expect(existsSync(join(rootfs, 'usr/sbin/policy-rc.d'))).to.equal(false);
  });

  it('a second run finds everything present and installs nothing', async () => {
    const again = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh start');
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stderr.trim()).to.equal(`apt packages (start): all ${listed('start').length} present`);
    const dry = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh --dry-run start');
    expect(dry.stdout).to.equal('');
  });

  it('refuses to guess: an unknown group or a malformed list is an error, not a silent no-op', async () => {
    const bad = await inRootfs('bash /opt/nbswarm/scripts/install-packages.sh stat');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain("unknown argument 'stat'");
    writeFileSync(join(rootfs, 'opt/bad-list.txt'), 'docker.io start many the daemon\n');
    const malformed = await inRootfs('NBSWARM_APT_LIST=/opt/bad-list.txt bash /opt/nbswarm/scripts/install-packages.sh --dry-run start');
    expect(malformed.code).to.equal(2);
    expect(malformed.stderr).to.contain("'docker.io' needs a number of seconds");
  });
});
