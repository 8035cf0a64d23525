/** A Python test suite of the repository run from mocha, so `npm test` is the one command that runs every test. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../src/paths.js';

/**
 * Runs `pytest dir` (relative to the repository) under Debian's /usr/bin/python3, where the
 * packages the suites need are installed; fails with pytest's output when any test fails.
 * `packages`: the Debian packages to install when python3 or pytest cannot be run.
 */
export function expectPytestPasses(dir: string, timeoutMs: number, packages: string): void {
  const res = spawnSync('/usr/bin/python3', ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', dir], {
    cwd: repoRoot(),
    encoding: 'utf8',
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    timeout: timeoutMs,
  });
  const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.status !== 0) process.stderr.write(out);
  expect(res.error, `could not run /usr/bin/python3 -m pytest (apt-get install ${packages})`).to.equal(undefined);
  expect(res.status, 'pytest exit status').to.equal(0);
  expect(out).to.match(/\d+ passed/);
}
