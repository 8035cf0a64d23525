/**
 * Runs nbswarm-dashboard-proxy's pytest suite (images/notebook/tests) under Debian's
 * /usr/bin/python3 (tornado and jupyterhub are there, as in the notebook image), so `npm test`
 * runs it too: the proxy against a real app process, HTTP and websockets.
 */
import { expectPytestPasses } from '../helpers/pytest.js';

describe('nbswarm-dashboard-proxy (pytest images/notebook/tests)', function () {
  this.timeout(180_000);
  it('passes its pytest suite against a real app process', () => {
    expectPytestPasses('images/notebook/tests', 170_000, 'python3-pytest jupyterhub');
  });
});
