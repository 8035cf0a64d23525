/** Echo suppression: which watch events need a reconcile, and which are the echoes of our own writes. */
import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import { EchoSuppressor, needsReconcile } from '../../src/controller/echoes.js';
import type { InformerEvent } from '../../src/controller/informer.js';

function nbs(meta: Partial<NotebookServer['metadata']> = {}, status?: NotebookServer['status']): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'a', namespace: 'ns', uid: 'u', generation: 1, resourceVersion: '1', ...meta },
    spec: { user: 'alice' },
    status,
  };
}

const modified = (rv: string, meta: Partial<NotebookServer['metadata']> = {}): InformerEvent => ({
  type: 'modified',
  key: 'ns/a',
  old: nbs(),
  obj: nbs({ resourceVersion: rv, ...meta }, { phase: 'Running' }),
});

describe('needsReconcile (watch-event predicate)', () => {
  it('skips our own status-only updates but not spec, nbswarm.io/ annotation, finalizer or deletion changes', () => {
    const old = nbs();
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ resourceVersion: '2' }, { phase: 'Running' }) })).to.equal(false);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ generation: 2 }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ annotations: { 'nbswarm.io/stopped': 'x' } }) })).to.equal(true);
    const stopped = nbs({ annotations: { 'nbswarm.io/stopped': 'x', 'other.io/a': '1' } });
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old: stopped, obj: nbs({ annotations: { 'other.io/a': '1' } }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ finalizers: ['f'] }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ deletionTimestamp: '2026-01-01T00:00:00Z' }) })).to.equal(true);
    expect(needsReconcile({ type: 'added', key: 'ns/a', obj: old })).to.equal(true);
    expect(needsReconcile({ type: 'deleted', key: 'ns/a', obj: old })).to.equal(true);
    // A relist always reconciles (we may have missed anything while disconnected).
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs(), fromList: true })).to.equal(true);
  });

  it('skips changes to labels and to annotations of other tools (no nbswarm.io/ one changed)', () => {
    const old = nbs({ annotations: { 'nbswarm.io/rebuild': '1', 'kubectl.kubernetes.io/restartedAt': 'a' } });
    const changed = (meta: Partial<NotebookServer['metadata']>) =>
      needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ resourceVersion: '2', annotations: old.metadata.annotations, ...meta }) });
    expect(changed({ labels: { team: 'b' } })).to.equal(false);
    expect(changed({ annotations: { 'nbswarm.io/rebuild': '1', 'kubectl.kubernetes.io/restartedAt': 'b' } })).to.equal(false);
    // A look-alike domain is another tool's.
    expect(changed({ annotations: { 'nbswarm.io/rebuild': '1', 'bench.nbswarm.io/fanout': '7' } })).to.equal(false);
    expect(changed({ annotations: { 'nbswarm.io/rebuild': '2' } })).to.equal(true);
  });
});

describe('EchoSuppressor', () => {
  it('skips the watch event of a version we wrote, once, and counts it', () => {
    const e = new EchoSuppressor();
    e.remember('ns/a', '7');
    // A finalizer patch of ours would pass needsReconcile; its version marks it as our echo.
    expect(e.admit(modified('7', { finalizers: ['nbswarm.io/cleanup'] }), 'api:modified', false)).to.equal(false);
    expect(e.skipped).to.equal(1);
    // Consumed: the same version again (a replay) is judged on its own.
    expect(e.admit(modified('7', { finalizers: ['nbswarm.io/cleanup'] }), 'api:modified', false)).to.equal(true);
    // Someone else's spec change is queued; a status-only change by someone else is not.
    expect(e.admit(modified('8', { generation: 2 }), 'api:modified', false)).to.equal(true);
    expect(e.admit(modified('9'), 'api:modified', false)).to.equal(false);
    expect(e.skipped).to.equal(1);
  });

  it("holds events that arrive during the key's reconcile until it ends, then drops its echoes and requeues the rest", () => {
    const e = new EchoSuppressor();
    // The API server delivered the echo before the PATCH answer reached the reconcile.
    expect(e.admit(modified('10', { generation: 2 }), 'api:modified', true)).to.equal(false);
    expect(e.admit(modified('11', { generation: 3 }), 'api:modified', true)).to.equal(false);
    expect(e.admit(modified('12'), 'api:modified', true)).to.equal(false);
    e.remember('ns/a', '10');
    // 10 was ours, 11 is a spec change by someone else, 12 is a status-only change (no reconcile).
    expect(e.settle('ns/a')).to.deep.equal(['api:modified']);
    expect(e.skipped).to.equal(1);
    expect(e.settle('ns/a')).to.deep.equal([]);
  });

  it('adds, deletions and list events bypass the table; forget drops what a deleted key wrote', () => {
    const e = new EchoSuppressor();
    e.remember('ns/a', '3');
    expect(e.admit({ type: 'added', key: 'ns/a', obj: nbs({ resourceVersion: '3' }) }, 'api:added', true)).to.equal(true);
    expect(e.admit({ type: 'modified', key: 'ns/a', old: nbs(), obj: nbs({ resourceVersion: '3' }), fromList: true }, 'api:modified', false)).to.equal(true);
    e.forget('ns/a');
    expect(e.admit(modified('3', { generation: 5 }), 'api:modified', false)).to.equal(true);
    expect(e.skipped).to.equal(0);
  });

  it('remembers a bounded number of versions per key', () => {
    const e = new EchoSuppressor();
    for (let i = 1; i <= 9; i++) e.remember('ns/a', String(i));
    expect(e.admit(modified('1', { generation: 2 }), 'api:modified', false)).to.equal(true);
    expect(e.admit(modified('9', { generation: 2 }), 'api:modified', false)).to.equal(false);
  });
});
