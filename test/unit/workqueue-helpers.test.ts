/** Pure helpers around the queue: which watch events need a reconcile, and status arithmetic. */
import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import { needsReconcile } from '../../src/controller/operator.js';
import { isStopped } from '../../src/controller/reconciler.js';
import { jsonEqual, mergePatch, setCondition } from '../../src/controller/status.js';

function nbs(meta: Partial<NotebookServer['metadata']> = {}, status?: NotebookServer['status']): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'a', namespace: 'ns', uid: 'u', generation: 1, resourceVersion: '1', ...meta },
    spec: { user: 'alice' },
    status,
  };
}

describe('needsReconcile (watch-event predicate)', () => {
  it('skips our own status-only updates but not spec, metadata or deletion changes', () => {
    const old = nbs();
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ resourceVersion: '2' }, { phase: 'Running' }) })).to.equal(false);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ generation: 2 }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ annotations: { 'nbswarm.io/stopped': 'x' } }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ finalizers: ['f'] }) })).to.equal(true);
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs({ deletionTimestamp: '2026-01-01T00:00:00Z' }) })).to.equal(true);
    expect(needsReconcile({ type: 'added', key: 'ns/a', obj: old })).to.equal(true);
    expect(needsReconcile({ type: 'deleted', key: 'ns/a', obj: old })).to.equal(true);
    // A relist always reconciles (we may have missed anything while disconnected).
    expect(needsReconcile({ type: 'modified', key: 'ns/a', old, obj: nbs(), fromList: true })).to.equal(true);
  });

  it('treats spec.stopped or the stop annotation as stopped', () => {
    expect(isStopped(nbs())).to.equal(false);
    expect(isStopped(nbs({ annotations: { 'nbswarm.io/stopped': '2026-01-01T00:00:00Z' } }))).to.equal(true);
    expect(isStopped({ ...nbs(), spec: { user: 'a', stopped: true } })).to.equal(true);
  });
});

describe('status helpers', () => {
  it('setCondition keeps lastTransitionTime unless the status flips', () => {
    let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Starting' }, 't1');
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'Pending', message: 'm' }, 't2');
    expect(c[0]).to.include({ lastTransitionTime: 't1', reason: 'Pending', message: 'm' });
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Running' }, 't3');
    expect(c[0]).to.include({ lastTransitionTime: 't3', status: 'True' });
    expect(c[0]).to.not.have.property('message');
    expect(setCondition(c, { type: 'ImageReady', status: 'True' }, 't4')).to.have.length(2);
  });

  it('mergePatch is undefined when equal, recursive on objects, null for dropped members, whole for arrays', () => {
    const a = { phase: 'Running', endpoint: { url: 'u', hostUrl: 'h', port: 1 }, conditions: [{ type: 'Ready', status: 'True' }] };
    expect(mergePatch(a, JSON.parse(JSON.stringify(a)))).to.equal(undefined);
    expect(mergePatch(a, { ...a, endpoint: { url: 'u', port: 2 } })).to.deep.equal({ endpoint: { hostUrl: null, port: 2 } });
    expect(mergePatch(a, { phase: 'Stopped', conditions: [] })).to.deep.equal({ phase: 'Stopped', endpoint: null, conditions: [] });
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).to.equal(true);
    expect(jsonEqual([1, 2], [2, 1])).to.equal(false);
  });
});
