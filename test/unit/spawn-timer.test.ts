/** Spawn latency: from creation (or a start of a stopped server) to Ready, measured beside reconcile. */
import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import { SpawnTimer } from '../../src/controller/spawn-timer.js';

function obj(opts: { ready?: boolean; stopped?: boolean; phase?: any; created?: string } = {}): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'a', namespace: 'ns', uid: 'u', creationTimestamp: opts.created ?? '2026-01-01T00:00:00Z' },
    spec: { user: 'a', stopped: opts.stopped },
    status: { phase: opts.phase, conditions: opts.ready ? [{ type: 'Ready', status: 'True' }] : [{ type: 'Ready', status: 'False', reason: 'Starting' }] },
  };
}

describe('spawn timer', () => {
  let t = 0;
  const timer = () => new SpawnTimer(() => t);
  beforeEach(() => (t = 1_000_000));

  it('times a new server from its watch event to the reconcile that made it Ready', () => {
    const s = timer();
    s.onEvent({ type: 'added', key: 'ns/a', obj: obj() });
    t += 2500;
    expect(s.settle('ns/a', obj({ phase: 'Creating' }))).to.equal(undefined);
    expect(s.starting(() => obj({ phase: 'Creating' }))).to.deep.equal([{ key: 'ns/a', seconds: 2.5 }]);
    t += 500;
    expect(s.settle('ns/a', obj({ ready: true, phase: 'Running' }))).to.deep.equal({ key: 'ns/a', trigger: 'create', seconds: 3 });
    expect(s.size).to.equal(0);
    expect(s.settle('ns/a', obj({ ready: true }))).to.equal(undefined);
  });

  it('times a start of a stopped server, and forgets a server stopped or deleted on its way', () => {
    const s = timer();
    s.onEvent({ type: 'modified', key: 'ns/a', obj: obj(), old: obj({ stopped: true }) });
    t += 1200;
    expect(s.settle('ns/a', obj({ ready: true }))).to.deep.include({ trigger: 'start', seconds: 1.2 });
    s.onEvent({ type: 'added', key: 'ns/a', obj: obj() });
    s.onEvent({ type: 'modified', key: 'ns/a', obj: obj({ stopped: true }), old: obj() });
    expect(s.size).to.equal(0);
    s.onEvent({ type: 'added', key: 'ns/a', obj: obj() });
    s.onEvent({ type: 'deleted', key: 'ns/a', obj: obj() });
    expect(s.size).to.equal(0);
  });

  it('after a restart, times a server still on its way from its creationTimestamp, and ignores Ready or Failed ones', () => {
    const s = timer();
    t = Date.parse('2026-01-01T00:10:00Z');
    s.onEvent({ type: 'added', key: 'ns/a', obj: obj({ phase: 'Creating' }), fromList: true });
    s.onEvent({ type: 'added', key: 'ns/b', obj: obj({ phase: 'Running', ready: true }), fromList: true });
    s.onEvent({ type: 'added', key: 'ns/c', obj: obj({ phase: 'Failed' }), fromList: true });
    expect(s.starting(() => obj({ phase: 'Creating' }))).to.deep.equal([{ key: 'ns/a', seconds: 600 }]);
    // A spec change of a server that is not stopped does not start a new measurement.
    s.onEvent({ type: 'modified', key: 'ns/c', obj: obj({ phase: 'Failed' }), old: obj({ phase: 'Failed' }) });
    expect(s.size).to.equal(1);
  });
});
