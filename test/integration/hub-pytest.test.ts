/**
 * Runs the hub spawner's pytest suite (hub/tests) under Debian's /usr/bin/python3, so `npm test`
 * is the one command that runs every test. The suite starts the real embedded API server from
 * dist/ and drives the spawner against it (no mocks of the API).
 */
import { expectPytestPasses } from '../helpers/pytest.js';

describe('hub spawner (pytest hub/tests)', function () {
  this.timeout(300_000);
  it('passes its pytest suite against the real API server', () => {
    expectPytestPasses('hub/tests', 280_000, 'python3-pytest');
  });
});
