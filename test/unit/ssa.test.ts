import { expect } from 'chai';
import { fieldsV1Of, fromFieldsV1, leaves, toFieldsV1, trackUpdate } from '../../src/apiserver/ssa.js';

/** A schema with an associative list (list-type=map keyed by name) and a map of strings. */
const schema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        env: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', properties: { name: { type: 'string' }, value: { type: 'string' } } } },
        command: { type: 'array', items: { type: 'string' } },
        resources: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
  },
};

const objects: Record<string, unknown>[] = [
  {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'a', namespace: 'default', uid: 'u', resourceVersion: '3', creationTimestamp: 't', labels: { x: '1', 'y/z': '2' }, annotations: {} },
    spec: { user: 'alice', env: [{ name: 'A', value: '1' }, { name: 'B' }, { name: 'A', value: 'dup' }], command: ['a', 'b'], resources: { cpu: '1' }, empty: {}, nested: { deeper: { leaf: 0, off: false, none: null } } },
  },
  // Nothing but identity and server-owned metadata: no leaves, so no managedFields entry.
  { apiVersion: 'v1', kind: 'X', metadata: { name: 'b', namespace: 'default' } },
  // An empty associative list is one atomic leaf; an item with no fields is a leaf at its key.
  { metadata: { name: 'c', labels: {} }, spec: { env: [], resources: {} }, status: { phase: 'Ready' } },
  { spec: { env: [{ name: 'only' }, {}], command: [] } },
  // A key with an undefined value is left out of the item's key, as JSON.stringify does.
  { spec: { env: [{ name: 'u', value: '1' }, { name: undefined, value: '2' }] } },
];

describe('managedFields of a create (ssa)', () => {
  for (const [i, obj] of objects.entries()) {
    it(`fieldsV1Of equals the fieldsV1 of its leaves, keys in the same order (object ${i})`, () => {
      const want = toFieldsV1(leaves(obj, schema));
      const got = fieldsV1Of(obj, schema);
      expect(JSON.stringify(got)).to.equal(JSON.stringify(want));
      expect(fromFieldsV1(got)).to.deep.equal(leaves(obj, schema));
    });
  }

  it('a create records one Update entry owning every leaf, and none when there is no leaf', () => {
    const created = structuredClone(objects[0]) as { metadata: Record<string, unknown> };
    trackUpdate(undefined, created, 'kubectl-client-side-apply', 'nbswarm.io/v1alpha1', undefined, schema);
    const mf = created.metadata.managedFields as Record<string, unknown>[];
    expect(mf).to.have.length(1);
    expect(mf[0]).to.include({ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'nbswarm.io/v1alpha1', fieldsType: 'FieldsV1' });
    expect(mf[0]!.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Object.keys(mf[0]!.fieldsV1 as object)).to.deep.equal(['f:metadata', 'f:spec']);
    expect((mf[0]!.fieldsV1 as any)['f:spec']['f:env']['k:{"name":"A"}']).to.deep.equal({ 'f:name': {}, 'f:value': {} });

    const bare = structuredClone(objects[1]) as { metadata: Record<string, unknown> };
    trackUpdate(undefined, bare, 'm', 'v1', undefined, schema);
    expect(bare.metadata.managedFields).to.deep.equal([]);
  });

  it('a later update by another manager takes only what it changed', () => {
    const created = structuredClone(objects[0]) as any;
    trackUpdate(undefined, created, 'creator', 'nbswarm.io/v1alpha1', undefined, schema);
    const next = structuredClone(created);
    next.spec.user = 'bob';
    trackUpdate(created, next, 'editor', 'nbswarm.io/v1alpha1', undefined, schema);
    const byManager = Object.fromEntries((next.metadata.managedFields as any[]).map((m) => [m.manager, m.fieldsV1]));
    expect(byManager.editor).to.deep.equal({ 'f:spec': { 'f:user': {} } });
    expect(byManager.creator['f:spec']).to.not.have.property('f:user');
    expect(byManager.creator['f:spec']).to.have.property('f:command');
  });
});
