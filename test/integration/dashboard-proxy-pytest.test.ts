/**
 * Runs nbswarm-dashboard-proxy's pytest suite (images/notebook/tests) under Debian's
 * /usr/bin/python3 (tornado and jupyterhub are there, as in the notebook image), so `npm test`
 * runs it too: the proxy against a real app process, HTTP and websockets.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../src/paths.js';

describe('nbswarm-dashboard-proxy (pytest images/notebook/tests)', function () {
  this.timeout(180_000);
  it('passes its pytest suite against a real app process', () => {
    const res = spawnSync('/usr/bin/python3', ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'images/notebook/tests'], {
      cwd: repoRoot(),
      encoding: 'utf8',
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      timeout: 170_000,
    });
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
    if (res.status !== 0) process.stderr.write(out);
    expect(res.error, 'could not run /usr/bin/python3 -m pytest (apt-get install python3-pytest jupyterhub)').to.equal(undefined);
    expect(res.status, 'pytest exit status').to.equal(0);
    expect(out).to.match(/\d+ passed/);
  });
});
