/**
 * Runs the hub spawner's pytest suite (hub/tests) under Debian's /usr/bin/python3, so `npm test`
 * is the one command that runs every test. The suite starts the real embedded API server from
 * dist/ and drives the spawner against it (no mocks of the API).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../src/paths.js';

describe('hub spawner (pytest hub/tests)', function () {
  this.timeout(300_000);
  it('passes its pytest suite against the real API server', () => {
    const res = spawnSync('/usr/bin/python3', ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'hub/tests'], {
      cwd: repoRoot(),
      encoding: 'utf8',
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      timeout: 280_000,
    });
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
    if (res.status !== 0) process.stderr.write(out);
    expect(res.error, 'could not run /usr/bin/python3 -m pytest (apt-get install python3-pytest)').to.equal(undefined);
    expect(res.status, 'pytest exit status').to.equal(0);
    expect(out).to.match(/\d+ passed/);
  });
});
