import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { repoPath } from '../../src/paths.js';
import { apiRequest, startTestApiServer, widgetCrd, type TestApiServer } from '../helpers/apiserver.js';

describe('API server with the Python kubernetes client', function () {
  let srv: TestApiServer;
  before(async () => {
    srv = await startTestApiServer();
    expect((await apiRequest(srv, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() })).status).to.equal(201);
  });
  after(async () => srv?.cleanup());

  it('CustomObjectsApi create/list/patch status/watch', async () => {
    // Debian's python3-kubernetes is only visible to /usr/bin/python3 (not the pyenv one on PATH).
    const { stdout } = await promisify(execFile)('/usr/bin/python3', [repoPath('test/python/crd_client.py'), srv.kubeconfigPath], { timeout: 60000 });
    const out = JSON.parse(stdout);
    expect(out.created).to.deep.equal({ name: 'py1', size: 1, generation: 1 });
    expect(out.listed).to.deep.equal(['py1']);
    expect(out.status).to.equal('Running');
    expect(out.spec_after_status).to.equal('pyuser');
    expect(out.invalid).to.deep.equal({ status: 422, causes: ['spec.user', 'spec.size'] });
    expect(out.watched).to.deep.equal(['MODIFIED:py1', 'ADDED:py2']);
  });
});
