import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../../src/paths.js';

/** Bundle a one-file program through scripts/bundle.mjs (as `npm run build` bundles the CLI). */
function bundle(source: string): { status: number | null; stderr: string; out: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-bundle-test-'));
  mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
  writeFileSync(join(dir, 'dist', 'src', 'cli.js'), source);
  const outFile = join(dir, 'out', 'nbswarm.mjs');
  const r = spawnSync(process.execPath, [repoPath('scripts', 'bundle.mjs'), join(dir, 'dist'), outFile], {
    encoding: 'utf8',
    env: { ...process.env, NBSWARM_BUNDLE_SOURCEMAP: '0' },
  });
  let out = '';
  try {
    out = readFileSync(outFile, 'latin1');
  } catch {
    // no output when esbuild itself failed
  }
  return { status: r.status, stderr: r.stderr, out, dir };
}

describe('the bundled CLI (scripts/bundle.mjs)', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('is ASCII without comments: escapes what esbuild can, drops comments that hold other characters', () => {
    const b = bundle("/** the 5 MB bundle — § 2 */\nconst word = 'caf\u00e9 \u2026';\nconsole.log(word.length);\n");
    dirs.push(b.dir);
    expect(b.status, b.stderr).to.equal(0);
    expect(b.out).to.not.match(/[\u0080-\uffff]/);
    expect(b.out).to.not.include('5 MB bundle');
    expect(b.out).to.include('\\u2026');
    const run = spawnSync(process.execPath, [join(b.dir, 'out', 'nbswarm.mjs')], { encoding: 'utf8' });
    expect(run.stdout.trim()).to.equal('6');
  });

  it('refuses a raw template that holds a non-ASCII character, naming the file and the place', () => {
    const b = bundle('const js = String.raw`el.textContent = "checking\u2026"`;\nconsole.log(js);\n');
    dirs.push(b.dir);
    expect(b.status).to.equal(1);
    expect(b.stderr).to.match(/nbswarm\.mjs holds a non-ASCII character near .*checking/);
    expect(b.stderr).to.include('\\uXXXX');
  });

  it('left the built CLI and its chunks all ASCII (V8 keeps their source one byte a character)', () => {
    const files = [repoPath('dist', 'nbswarm.mjs'), ...readdirSync(repoPath('dist', 'nbswarm-chunks')).map((f) => repoPath('dist', 'nbswarm-chunks', f))];
    for (const f of files.filter((x) => x.endsWith('.mjs'))) expect(readFileSync(f, 'latin1'), f).to.not.match(/[\u0080-\uffff]/);
  });
});
