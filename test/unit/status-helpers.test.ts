/** Conditions, the JSON helpers a converged reconcile relies on to write nothing, and cached Secrets. */
import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import { setCondition } from '../../src/controller/conditions.js';
import { isStopped } from '../../src/controller/desired.js';
import { cachedSecret, serversReferencing } from '../../src/controller/secrets.js';
import { diffPaths } from '../../src/backends/drift.js';
import { jsonEqual, mergePatchBetween, withoutUndefined } from '../../src/util/json.js';
import { isoSeconds } from '../../src/util/time.js';

const nbs = (meta: Partial<NotebookServer['metadata']> = {}): NotebookServer => ({
  apiVersion: 'nbswarm.io/v1alpha1',
  kind: 'NotebookServer',
  metadata: { name: 'a', namespace: 'ns', uid: 'u', generation: 1, ...meta },
  spec: { user: 'alice' },
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

  it('mergePatchBetween is undefined when equal, recursive on objects, null for dropped members, whole for arrays', () => {
    const a = { phase: 'Running', endpoint: { url: 'u', hostUrl: 'h', port: 1 }, conditions: [{ type: 'Ready', status: 'True' }] };
    expect(mergePatchBetween(a, JSON.parse(JSON.stringify(a)))).to.equal(undefined);
    expect(mergePatchBetween(a, { ...a, endpoint: { url: 'u', port: 2 } })).to.deep.equal({ endpoint: { hostUrl: null, port: 2 } });
    expect(mergePatchBetween(a, { phase: 'Stopped', conditions: [] })).to.deep.equal({ phase: 'Stopped', endpoint: null, conditions: [] });
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).to.equal(true);
    expect(jsonEqual([1, 2], [2, 1])).to.equal(false);
  });

  it('jsonEqual and mergePatchBetween read own members only, in any order, undefined as absent', () => {
    expect(jsonEqual({ a: 1, b: { c: [1, { d: 2 }] } }, { b: { c: [1, { d: 2 }] }, a: 1 })).to.equal(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: undefined })).to.equal(true);
    expect(jsonEqual({ a: undefined }, { b: undefined })).to.equal(true);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1, c: 2 })).to.equal(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: null })).to.equal(false);
    expect(jsonEqual({ a: [1] }, { a: { 0: 1 } })).to.equal(false);
    // An inherited member is not the object's own: what JSON.stringify writes decides.
    const inherited = Object.create({ x: 1 }) as Record<string, unknown>;
    expect(jsonEqual(inherited, {})).to.equal(true);
    expect(jsonEqual({ x: 1 }, inherited)).to.equal(false);
    expect(mergePatchBetween(inherited, { x: 1 })).to.deep.equal({ x: 1 });
    expect(mergePatchBetween({ a: 1, gone: undefined }, { a: 1 })).to.equal(undefined);
    expect(mergePatchBetween({ a: 1, b: 2 }, { a: 1, b: undefined })).to.deep.equal({ b: null });
    expect(mergePatchBetween({ a: { b: 1 } }, { a: { b: 1, c: undefined } })).to.equal(undefined);
  });

  it('withoutUndefined gives what a JSON round trip gives, without the text', () => {
    const values: unknown[] = [
      { phase: 'Running', startedAt: undefined, conditions: [{ type: 'Ready', status: 'True', message: undefined }], n: 0, f: false, z: null },
      [1, undefined, () => 1, Symbol('s'), NaN, -Infinity, 'x', [undefined]],
      // eslint-disable-next-line no-sparse-arrays
      [1, , 3],
      { when: new Date(Date.UTC(2026, 10, 30)), nested: { toJSON: () => ({ kept: true, dropped: undefined }) }, fn: () => 1, sym: Symbol('s') },
      { deep: { deeper: { deepest: [{ a: undefined, b: -0 }] } } },
      'text',
      7,
      null,
    ];
    for (const v of values) expect(withoutUndefined(v)).to.deep.equal(JSON.parse(JSON.stringify(v)));
    const src = { a: { b: [1] } };
    const copy = withoutUndefined(src);
    copy.a.b.push(2);
    expect(src.a.b, 'a deep copy').to.deep.equal([1]);
    expect(() => withoutUndefined({ big: 1n })).to.throw(TypeError);
  });

  it('diffPaths names the differing paths to depth 3, and none for equal values in any key order', () => {
    const a = { TaskTemplate: { ContainerSpec: { Image: 'i', Env: ['A=1'] }, Resources: { Limits: { MemoryBytes: 1 } } }, Labels: { x: '1' } };
    const reordered = {
      Labels: { x: '1' },
      TaskTemplate: { Resources: { Limits: { MemoryBytes: 1 } }, ContainerSpec: { Env: ['A=1'], Image: 'i', Args: undefined } },
    };
    expect(diffPaths(a, reordered)).to.deep.equal([]);
    const changed = structuredClone(a);
    changed.TaskTemplate.ContainerSpec.Env = ['A=2'];
    changed.TaskTemplate.Resources.Limits.MemoryBytes = 2;
    expect(diffPaths(a, changed)).to.deep.equal(['TaskTemplate.ContainerSpec.Env', 'TaskTemplate.Resources.Limits']);
    expect(diffPaths(a, { ...a, Labels: undefined })).to.deep.equal(['Labels']);
  });

  it('timestamps are whole seconds, as Kubernetes writes them', () => {
    expect(isoSeconds(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).to.equal('2026-01-02T03:04:05Z');
  });

  it('treats spec.stopped or the stop annotation as stopped', () => {
    expect(isStopped(nbs())).to.equal(false);
    expect(isStopped(nbs({ annotations: { 'nbswarm.io/stopped': '2026-01-01T00:00:00Z' } }))).to.equal(true);
    expect(isStopped({ ...nbs(), spec: { user: 'a', stopped: true } })).to.equal(true);
  });
});

describe('Secrets as the cache keeps them', () => {
  it('decodes data (which wins over stringData) and keeps only names and values', () => {
    const s = cachedSecret({
      metadata: { name: 's', namespace: 'ns', uid: 'u', resourceVersion: '3', managedFields: [{}] } as never,
      data: { a: Buffer.from('from data').toString('base64') },
      stringData: { a: 'ignored', b: 'plain' },
    });
    expect(s).to.deep.equal({ metadata: { name: 's', namespace: 'ns', uid: 'u', resourceVersion: '3' }, values: { a: 'from data', b: 'plain' } });
    expect(cachedSecret(s)).to.deep.equal(s);
  });

  it("finds the servers of the Secret's namespace whose env references it", () => {
    const server = (name: string, ns: string, secret?: string): NotebookServer => ({
      ...nbs({ name, namespace: ns }),
      spec: { user: 'a', env: [{ name: 'X', value: '1' }, ...(secret ? [{ name: 'K', valueFrom: { secretKeyRef: { name: secret, key: 'k' } } }] : [])] },
    });
    const all = [server('a', 'ns', 'creds'), server('b', 'ns'), server('c', 'other', 'creds'), server('d', 'ns', 'other')];
    expect(serversReferencing(all, { metadata: { namespace: 'ns', name: 'creds' } }).map((o) => o.metadata.name)).to.deep.equal(['a']);
  });
});
