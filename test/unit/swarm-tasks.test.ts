/**
 * What a Swarm service's tasks say about its server (interpretTasks, pure): a crash Swarm is
 * restarting is not a failure; a failure is what is left when Swarm's restart policy gave up; tasks
 * of an earlier spec, an earlier forced restart or from before the last write are history.
 */
import { expect } from 'chai';
import { LABELS } from '../../src/api/names.js';
import { interpretTasks, type ServiceVersion } from '../../src/backends/swarm-spec.js';

const HASH = 'h2';
const T0 = Date.parse('2026-01-02T03:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

let seq = 0;
/** A task created at second `created`, in `state` since second `since`. */
function task(created: number, state: string, desired: string, o: { since?: number; hash?: string; force?: number; err?: string } = {}): any {
  return {
    ID: `t${++seq}`,
    Slot: 1,
    CreatedAt: at(created),
    DesiredState: desired,
    Spec: { ContainerSpec: { Labels: { [LABELS.specHash]: o.hash ?? HASH } }, ForceUpdate: o.force ?? 0 },
    Status: { State: state, Timestamp: at(o.since ?? created), Err: o.err },
  };
}
const version: ServiceVersion = { specHash: HASH, forceUpdate: 0, updatedAt: at(0) };
const crash = (created: number, since = created + 1) => task(created, 'failed', 'shutdown', { since, err: 'task: non-zero exit (137)' });

describe('interpretTasks (Swarm task history → server state)', () => {
  it('one task running: running, no restarts', () => {
    const v = interpretTasks([task(1, 'running', 'running')], 1, version);
    expect(v.state).to.equal('running');
    expect(v.restarts).to.equal(undefined);
  });

  it('a crash Swarm is restarting (new task waiting out the restart delay): pending with the count, not failed', () => {
    const v = interpretTasks([crash(1, 30), task(30, 'pending', 'ready')], 1, version);
    expect(v.state).to.equal('pending');
    expect(v.restarts).to.equal(1);
    expect(v.lastFailure).to.equal('failed: task: non-zero exit (137)');
  });

  it('a crashed task Swarm has not acted on yet (desired state still running): restarting', () => {
    const v = interpretTasks([task(1, 'failed', 'running', { since: 30, err: 'task: non-zero exit (137)' })], 1, version);
    expect(v.state).to.equal('starting');
    expect(v.restarts).to.equal(1);
  });

  it('back up after two crashes: running, with the count', () => {
    const v = interpretTasks([crash(1, 10), crash(12, 20), task(22, 'running', 'running')], 1, version);
    expect(v.state).to.equal('running');
    expect(v.restarts).to.equal(2);
  });

  it('the restart policy gave up (six failures, no task wanted): failed, when, and five restarts', () => {
    const tasks = [crash(1, 3), crash(5, 7), crash(9, 11), crash(13, 15), crash(17, 19), crash(21, 23)];
    const v = interpretTasks(tasks, 1, version);
    expect(v.state).to.equal('failed');
    expect(v.failedAt).to.equal(at(23));
    expect(v.restarts).to.equal(5);
    expect(v.message).to.equal('failed: task: non-zero exit (137)');
  });

  it("right after an update: the old spec's task still running is not the server (starting)", () => {
    const v = interpretTasks([task(1, 'running', 'running', { hash: 'h1' })], 1, { ...version, updatedAt: at(50) });
    expect(v.state).to.equal('starting');
    expect(v.message).to.match(/previous spec/);
  });

  it('right after a forced restart: the crash loop before it is history (pending, no restarts)', () => {
    const old = [crash(1, 3), crash(5, 7)].map((t) => ({ ...t, Spec: { ...t.Spec, ForceUpdate: 0 } }));
    const v = interpretTasks(old, 1, { specHash: HASH, forceUpdate: 1, updatedAt: at(60) });
    expect(v.state).to.equal('pending');
    expect(v.restarts).to.equal(undefined);
  });

  it('right after a scale-up: failures that ended before the service was written are history', () => {
    const v = interpretTasks([crash(1, 3), crash(5, 7)], 1, { ...version, updatedAt: at(100) });
    expect(v.state).to.equal('pending');
    expect(v.restarts).to.equal(undefined);
  });

  it('scaled to 0: stopped, or running while its task shuts down', () => {
    expect(interpretTasks([task(1, 'shutdown', 'shutdown')], 0, version).state).to.equal('stopped');
    expect(interpretTasks([task(1, 'running', 'shutdown')], 0, version).state).to.equal('running');
  });
});
