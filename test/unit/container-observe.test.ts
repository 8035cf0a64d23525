/**
 * A container read back from `docker inspect`: what a crash-looping container (restart policy
 * unless-stopped, a command that does not exist) looks like between its restarts. The States are
 * the ones Docker 20.10 reported for `docker run -d --init --restart unless-stopped IMAGE
 * /bin/does-not-exist`, polled 600 times: 594 "restarting" with exit code 127, 6 "running" with
 * the exit code reset to 0 (the moment between a restart and the next crash).
 */
import { expect } from 'chai';
import { observeInspected } from '../../src/backends/container-observe.js';

const inspected = (State: Record<string, unknown>, RestartCount: number) => ({
  Id: 'c0ffee',
  Name: '/nbs-crashing',
  Config: { Labels: {} },
  HostConfig: {},
  NetworkSettings: {},
  State,
  RestartCount,
});

describe('container observation (docker inspect)', () => {
  it('a container Docker is restarting reports its restarts and how it last failed', () => {
    const obs = observeInspected(inspected({ Status: 'restarting', Running: true, Restarting: true, ExitCode: 127, Error: '' }, 7), 'host');
    expect(obs).to.include({ state: 'starting', restarts: 7, lastFailure: 'exit code 127' });
  });

  it('a restarted container that runs for now does not report "exit code 0" as its last failure (Docker reset it)', () => {
    const obs = observeInspected(inspected({ Status: 'running', Running: true, Restarting: false, ExitCode: 0, Error: '' }, 7), 'host');
    expect(obs).to.include({ state: 'running', restarts: 7 });
    expect(obs.lastFailure).to.equal(undefined);
  });

  it("a start Docker refused reports Docker's error with the exit code", () => {
    const error = 'failed to create shim task: OCI runtime create failed: exec: "/bin/does-not-exist": no such file or directory';
    const obs = observeInspected(inspected({ Status: 'created', Running: false, Restarting: false, ExitCode: 127, Error: error }, 2), 'host');
    expect(obs).to.include({ state: 'failed', restarts: 2, lastFailure: `${error}; exit code 127` });
  });
});
