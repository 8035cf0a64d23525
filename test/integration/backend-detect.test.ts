/**
 * Backend selection and error context: an unreachable daemon (real socket path that does not
 * exist), Swarm states from `docker info` (stubbed: a half-configured Swarm cannot be made on the
 * shared test host without breaking the other suites), and image pinning rules.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { connectDocker, createBackend, detectBackendKind, wrapDockerError } from '../../src/backends/docker.js';
import { pinnedFrom, repositoryOf } from '../../src/backends/images.js';
import { BackendError } from '../../src/backends/types.js';
import { requireDocker, TEST_IMAGE } from '../helpers/docker.js';

function infoStub(swarm: Record<string, unknown>): Docker {
  return { info: async () => ({ Name: 'stub', Swarm: swarm }) } as unknown as Docker;
}

async function failure(p: Promise<unknown>): Promise<BackendError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a BackendError').to.be.instanceOf(BackendError);
  return e as BackendError;
}

describe('backend: detection and errors', () => {
  it('says how to start dockerd when the socket is not there', async () => {
    const docker = connectDocker({ host: 'unix:///tmp/nbswarm-no-such-docker.sock' });
    const e = await failure(detectBackendKind(docker));
    expect(e.reason).to.equal('DockerUnavailable');
    expect(e.dockerCall).to.equal('docker info');
    expect(e.message).to.contain('ENOENT');
    expect(e.hint).to.match(/is dockerd running\? start it with/);
    const e2 = await failure(createBackend('auto', { host: '/tmp/nbswarm-no-such-docker.sock' }));
    expect(e2.reason).to.equal('DockerUnavailable');
  });

  it('picks services on an active manager and containers without Swarm', async () => {
    expect(await detectBackendKind(infoStub({ LocalNodeState: 'active', ControlAvailable: true }))).to.equal('service');
    expect(await detectBackendKind(infoStub({ LocalNodeState: 'inactive' }))).to.equal('container');
  });

  it('refuses a half-configured Swarm with a hint', async () => {
    for (const [state, hint] of [
      ['pending', /swarm leave --force/],
      ['error', /half-configured/],
      ['locked', /swarm unlock/],
    ] as const) {
      const e = await failure(detectBackendKind(infoStub({ LocalNodeState: state, Error: 'raft says no' })));
      expect(e.message).to.contain(`"${state}"`);
      expect(e.hint).to.match(hint);
    }
    const worker = await failure(detectBackendKind(infoStub({ LocalNodeState: 'active', ControlAvailable: false })));
    expect(worker.message).to.match(/worker/);
    expect(worker.hint).to.match(/manager/);
  });

  it('keeps the daemon status and message in wrapped errors', () => {
    const raw = Object.assign(new Error('(HTTP code 409) unexpected - Conflict'), {
      statusCode: 409,
      json: { message: 'Conflict. The container name "/x" is already in use' },
    });
    const e = wrapDockerError('docker create x', raw, 'rename it');
    expect(e.reason).to.equal('Conflict');
    expect(e.message).to.equal('docker create x failed (HTTP 409): Conflict. The container name "/x" is already in use');
    expect(e.hint).to.equal('rename it');
    expect(e.cause).to.equal(raw);
  });

  it('pins to the repo digest when the image has one, else to the ID', () => {
    const id = 'sha256:' + 'a'.repeat(64);
    const dig = 'sha256:' + 'b'.repeat(64);
    expect(pinnedFrom('reg:5000/team/nb:1', { Id: id, RepoDigests: [`other/x@${dig}`, `reg:5000/team/nb@${dig}`] }).pinned).to.equal(`reg:5000/team/nb@${dig}`);
    expect(pinnedFrom('local/nb:1', { Id: id, RepoDigests: [] })).to.deep.equal({ reference: 'local/nb:1', id, digestReference: undefined, pinned: id });
    expect(repositoryOf('reg:5000/a/b:tag')).to.equal('reg:5000/a/b');
    expect(repositoryOf('reg:5000/a/b')).to.equal('reg:5000/a/b');
  });

  it('resolves a present image with ifNotPresent without pulling', async () => {
    const { docker } = await requireDocker();
    const b = await createBackend('container', { docker });
    const r = await b.resolveImage(TEST_IMAGE, 'ifNotPresent');
    expect(r.pinned).to.equal(((await docker.getImage(TEST_IMAGE).inspect()) as any).Id);
    await b.close();
  });
});
