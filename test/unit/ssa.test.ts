import { expect } from 'chai';
import { compare, fieldSet, fieldsV1Of, fromFieldsV1, itemElements, keyElement, toFieldsV1, visitMembers } from '../../src/apiserver/fieldmanager/fieldset.js';
import { decodeManagedFields, encodeManagedFields, managersBefore, type ManagerEntry } from '../../src/apiserver/fieldmanager/managed.js';
import { applyConfig, recordUpdate, type ApplyResult } from '../../src/apiserver/fieldmanager/manager.js';
import type { KubeObject, ManagedFieldsEntry } from '../../src/apiserver/types.js';

/** A schema with an associative list (keyed by name), a set, an atomic list and a map of strings. */
const schema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        env: {
          type: 'array',
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          items: { type: 'object', properties: { name: { type: 'string' }, value: { type: 'string' } } },
        },
        tags: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
        command: { type: 'array', items: { type: 'string' } },
        resources: { type: 'object', additionalProperties: { type: 'string' } },
        selector: { type: 'object', 'x-kubernetes-map-type': 'atomic', additionalProperties: { type: 'string' } },
      },
    },
  },
};

const NOW = '2026-01-01T00:00:00Z';
const LATER = '2026-01-01T00:01:00Z';

const objects: Record<string, unknown>[] = [
  {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: {
      name: 'a',
      namespace: 'default',
      uid: 'u',
      resourceVersion: '3',
      creationTimestamp: 't',
      labels: { x: '1', 'y/z': '2' },
      annotations: {},
      finalizers: ['f1', 'f2'],
      ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'o', uid: 'ou' }],
    },
    spec: {
      user: 'alice',
      env: [{ name: 'A', value: '1' }, { name: 'B' }],
      tags: ['t1', 't2'],
      command: ['a', 'b'],
      resources: { cpu: '1' },
      selector: { a: 'b' },
      empty: {},
      nested: { deeper: { leaf: 0, off: false, none: null } },
    },
  },
  // Nothing but identity and server-owned metadata: no members.
  { apiVersion: 'v1', kind: 'X', metadata: { name: 'b', namespace: 'default' } },
  // Empty lists and maps are leaves.
  { metadata: { name: 'c', labels: {} }, spec: { env: [], resources: {} }, status: { phase: 'Ready' } },
  // Items that cannot be told apart make their list atomic.
  {
    spec: {
      env: [
        { name: 'A', value: '1' },
        { name: 'A', value: 'dup' },
      ],
      tags: ['x', 'x'],
    },
  },
];

const obj = (o: Record<string, unknown>) => structuredClone(o) as KubeObject;
const fieldsOf = (mf: ManagedFieldsEntry[], manager: string) => mf.find((m) => m.manager === manager)?.fieldsV1 as any;
const owners = (o: { metadata: { managedFields?: ManagedFieldsEntry[] } }) => managersBefore(undefined, o.metadata.managedFields, '');
const applied = (r: ApplyResult) => {
  if ('conflicts' in r) throw new Error(`unexpected conflicts: ${JSON.stringify(r.conflicts)}`);
  return Object.assign(r.object, { metadata: { ...r.object.metadata, managedFields: r.managedFields } });
};
const apply = (live: KubeObject | undefined, config: Record<string, unknown>, manager: string, force = false) =>
  applyConfig(live, obj(config), live ? owners(live) : [], { manager, apiVersion: 'v1', subresource: '' }, force, schema, NOW);
const update = (before: KubeObject, after: KubeObject, manager: string, requested?: unknown) => {
  after.metadata.managedFields = recordUpdate(
    before,
    after,
    managersBefore(requested, before.metadata.managedFields, ''),
    { manager, apiVersion: 'v1', subresource: '' },
    schema,
    LATER,
  );
  return after;
};

const base = { apiVersion: 'v1', kind: 'X', metadata: { name: 'n', namespace: 'default' } };

describe('field sets (fieldmanager)', () => {
  for (const [i, o] of objects.entries()) {
    it(`fieldsV1Of equals the fieldsV1 of its field set, and decodes back (object ${i})`, () => {
      const set = fieldSet(o, schema);
      expect(JSON.stringify(fieldsV1Of(o, schema))).to.equal(JSON.stringify(toFieldsV1(set)));
      expect(fromFieldsV1(fieldsV1Of(o, schema))).to.deep.equal(set);
    });
  }

  it('visits each member once with the value it holds, list items before their fields', () => {
    const seen: [string, unknown, boolean][] = [];
    const o = {
      apiVersion: 'v1',
      kind: 'X',
      metadata: { name: 'n', uid: 'u', labels: { x: '1' } },
      spec: { env: [{ name: 'A', value: '1' }, { name: 'B' }], tags: ['t'], command: ['c'], empty: {}, nested: { leaf: null } },
    };
    visitMembers(o, schema, (path, value, item) => seen.push([path.join(' '), value, item]));
    expect(seen).to.deep.equal([
      ['f:metadata f:labels f:x', '1', false],
      ['f:spec f:env k:{"name":"A"}', { name: 'A', value: '1' }, true],
      ['f:spec f:env k:{"name":"A"} f:name', 'A', false],
      ['f:spec f:env k:{"name":"A"} f:value', '1', false],
      ['f:spec f:env k:{"name":"B"}', { name: 'B' }, true],
      ['f:spec f:env k:{"name":"B"} f:name', 'B', false],
      ['f:spec f:tags v:"t"', 't', true],
      ['f:spec f:command', ['c'], false],
      ['f:spec f:empty', {}, false],
      ['f:spec f:nested f:leaf', null, false],
    ]);
    const after = structuredClone(o);
    after.spec.env[0]!.value = '2';
    after.spec.tags.push('u');
    delete (after.spec as Record<string, unknown>).empty;
    const c = compare(o, after, schema);
    expect([...c.modified]).to.deep.equal([JSON.stringify(['f:spec', 'f:env', 'k:{"name":"A"}', 'f:value'])]);
    expect([...c.added]).to.deep.equal([JSON.stringify(['f:spec', 'f:tags', 'v:"u"'])]);
    expect([...c.removed]).to.deep.equal([JSON.stringify(['f:spec', 'f:empty'])]);
  });

  it('types members as Kubernetes does: map-list items by key, set items by value, metadata by its own rules', () => {
    const f = fieldsV1Of(objects[0], schema) as any;
    expect(f['f:spec']['f:env']['k:{"name":"A"}']).to.deep.equal({ '.': {}, 'f:name': {}, 'f:value': {} });
    expect(f['f:spec']['f:tags']).to.deep.equal({ 'v:"t1"': {}, 'v:"t2"': {} });
    expect(f['f:spec']['f:command']).to.deep.equal({});
    expect(f['f:spec']['f:selector']).to.deep.equal({});
    expect(f['f:metadata']['f:finalizers']).to.deep.equal({ 'v:"f1"': {}, 'v:"f2"': {} });
    expect(f['f:metadata']['f:ownerReferences']['k:{"uid":"ou"}']).to.include.keys('.', 'f:kind', 'f:name');
    expect(f['f:metadata']).to.have.keys('f:labels', 'f:annotations', 'f:finalizers', 'f:ownerReferences');
    expect(fieldsV1Of(objects[1], schema)).to.deep.equal({});
    expect((fieldsV1Of(objects[3], schema) as any)['f:spec']).to.deep.equal({ 'f:env': {}, 'f:tags': {} });
  });

  it("names an item of a one-key map list as keyElement does, whatever the key's value", () => {
    const env = schema.properties.spec.properties.env;
    const items = [{ name: 'a"b\\c' }, { name: 'ü\u2028é' }, { name: 7 }, { name: true }, { name: { x: ['y'] } }, { name: null }];
    expect(itemElements(items, env)).to.deep.equal(items.map((i) => keyElement(i, ['name'])));
    expect(itemElements(items, env)![0]).to.equal('k:{"name":"a\\"b\\\\c"}');
  });

  it('names every member of a map with more names than its cache of member names holds, and names too long to cache', () => {
    const labels = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [i % 1000 === 0 ? `${'x'.repeat(2000)}${i}` : `l${i}`, 'v']));
    const f = fieldsV1Of({ metadata: { name: 'n', labels } }, schema) as any;
    expect(Object.keys(f['f:metadata']['f:labels'])).to.deep.equal(Object.keys(labels).map((k) => `f:${k}`));
    // After the cache was emptied on the way, the names it held before are still right.
    expect(Object.keys((fieldsV1Of({ spec: { user: 'u' } }, schema) as any)['f:spec'])).to.deep.equal(['f:user']);
  });
});

describe('managedFields of writes (fieldmanager)', () => {
  it('a create records one Update entry owning every member, and none when there is none', () => {
    const created = obj(objects[0]);
    const mf = recordUpdate(undefined, created, [], { manager: 'kubectl-client-side-apply', apiVersion: 'nbswarm.io/v1alpha1', subresource: '' }, schema, NOW);
    expect(mf).to.have.length(1);
    expect(mf[0]).to.include({
      manager: 'kubectl-client-side-apply',
      operation: 'Update',
      apiVersion: 'nbswarm.io/v1alpha1',
      fieldsType: 'FieldsV1',
      time: NOW,
    });
    expect(Object.keys(mf[0]!.fieldsV1)).to.deep.equal(['f:metadata', 'f:spec']);
    expect(recordUpdate(undefined, obj(objects[1]), [], { manager: 'm', apiVersion: 'v1', subresource: '' }, schema, NOW)).to.deep.equal([]);
  });

  it('an update by another manager takes what it changed, including one item of a set, and nothing else', () => {
    const created = obj(objects[0]);
    created.metadata.managedFields = recordUpdate(undefined, created, [], { manager: 'creator', apiVersion: 'v1', subresource: '' }, schema, NOW);
    const next = structuredClone(created) as any;
    next.spec.user = 'bob';
    next.metadata.finalizers.push('f3');
    update(created, next, 'editor');
    const editor = fieldsOf(next.metadata.managedFields, 'editor');
    expect(editor).to.deep.equal({ 'f:metadata': { 'f:finalizers': { 'v:"f3"': {} } }, 'f:spec': { 'f:user': {} } });
    const creator = fieldsOf(next.metadata.managedFields, 'creator');
    expect(creator['f:spec']).to.not.have.property('f:user');
    expect(creator['f:metadata']['f:finalizers']).to.have.keys('v:"f1"', 'v:"f2"');
  });

  it('managedFields set by the request replace the stored ones; [{}] clears them; invalid ones are ignored', () => {
    const created = obj({ ...base, spec: { user: 'a' } });
    created.metadata.managedFields = recordUpdate(
      undefined,
      created,
      [],
      { manager: 'kubectl-client-side-apply', apiVersion: 'v1', subresource: '' },
      schema,
      NOW,
    );
    // kubectl's migration to server-side apply: the same fields, now owned by an applier.
    const migrated = [{ ...created.metadata.managedFields[0], manager: 'argocd-controller', operation: 'Apply' }];
    const a = update(created, structuredClone(created), 'kubectl', migrated);
    expect(a.metadata.managedFields!.map((m) => `${m.manager}/${m.operation}`)).to.deep.equal(['argocd-controller/Apply']);
    expect(update(created, structuredClone(created), 'kubectl', [{}]).metadata.managedFields).to.deep.equal([]);
    expect(decodeManagedFields([{}])).to.equal('reset');
    expect(decodeManagedFields([{ manager: 'x', operation: 'Bogus', apiVersion: 'v1', fieldsType: 'FieldsV1' }])).to.equal(undefined);
    const kept = update(created, structuredClone(created), 'kubectl', [{ manager: 'x', operation: 'Bogus' }]);
    expect(kept.metadata.managedFields!.map((m) => m.manager)).to.deep.equal(['kubectl-client-side-apply']);
    // A subresource write cannot change ownership.
    expect(managersBefore(migrated, created.metadata.managedFields, 'status').map((e) => e.manager)).to.deep.equal(['kubectl-client-side-apply']);
  });

  it("keeps at most ten Update managers, folding the oldest into ancient-changes, in kube's order", () => {
    const entries: ManagerEntry[] = Array.from({ length: 12 }, (_, i) => ({
      manager: `m${i}`,
      operation: 'Update' as const,
      apiVersion: 'v1',
      subresource: '',
      time: `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`,
      fields: new Set([JSON.stringify(['f:spec', `f:x${i}`])]),
    }));
    entries.push({
      manager: 'applier',
      operation: 'Apply',
      apiVersion: 'v1',
      subresource: '',
      time: NOW,
      fields: new Set([JSON.stringify(['f:spec', 'f:y'])]),
    });
    const mf = encodeManagedFields(entries);
    expect(mf.map((m) => m.manager)).to.deep.equal(['applier', 'ancient-changes', ...Array.from({ length: 9 }, (_, i) => `m${i + 3}`)]);
    expect(Object.keys((mf[1]!.fieldsV1 as any)['f:spec'])).to.have.members(['f:x0', 'f:x1', 'f:x2']);
  });
});

describe('server-side apply (fieldmanager)', () => {
  it('shares ownership of equal values; a field leaves the object only when its last owner stops applying it', () => {
    const cfg = { ...base, spec: { user: 'a', resources: { cpu: '1' } } };
    const one = applied(apply(undefined, cfg, 'a'));
    const two = applied(apply(one, cfg, 'b'));
    expect(fieldsOf(two.metadata.managedFields!, 'a')['f:spec']).to.have.property('f:resources');
    expect(fieldsOf(two.metadata.managedFields!, 'b')['f:spec']).to.have.property('f:resources');
    const aDrops = applied(apply(two, { ...base, spec: { user: 'a' } }, 'a'));
    expect((aDrops as any).spec.resources).to.deep.equal({ cpu: '1' });
    expect(fieldsOf(aDrops.metadata.managedFields!, 'a')['f:spec']).to.not.have.property('f:resources');
    const bDrops = applied(apply(aDrops, { ...base, spec: { user: 'a' } }, 'b'));
    expect((bDrops as any).spec).to.deep.equal({ user: 'a' });
  });

  it('conflicts over a value another manager owns; force takes it; a value set to what it is shares it', () => {
    const one = applied(
      apply(
        undefined,
        {
          ...base,
          spec: {
            user: 'a',
            env: [
              { name: 'A', value: '1' },
              { name: 'B', value: '2' },
            ],
          },
        },
        'a',
      ),
    );
    // b changes A and declares B as it is.
    const bEnv = [
      { name: 'A', value: 'x' },
      { name: 'B', value: '2' },
    ];
    const r = apply(one, { ...base, spec: { env: bEnv } }, 'b');
    expect(r).to.deep.equal({ conflicts: [{ manager: 'a', field: '.spec.env[name="A"].value' }] });
    const forced = applied(apply(one, { ...base, spec: { env: bEnv } }, 'b', true));
    expect((forced as any).spec.env).to.deep.equal([
      { name: 'A', value: 'x' },
      { name: 'B', value: '2' },
    ]);
    const a = fieldsOf(forced.metadata.managedFields!, 'a')['f:spec']['f:env'];
    expect(a['k:{"name":"A"}']).to.not.have.property('f:value');
    expect(a['k:{"name":"B"}']).to.have.property('f:value');
  });

  it("finalizers are a set: declaring one neither conflicts with nor removes another manager's", () => {
    const created = applied(apply(undefined, { ...base, metadata: { ...base.metadata, finalizers: ['example.io/keep'] }, spec: { user: 'a' } }, 'gitops'));
    const withCleanup = update(
      created,
      obj({ ...created, metadata: { ...created.metadata, finalizers: ['example.io/keep', 'nbswarm.io/cleanup'] } }),
      'operator',
    );
    const forced = applied(
      apply(withCleanup, { ...base, metadata: { ...base.metadata, finalizers: ['example.io/keep'] }, spec: { user: 'a' } }, 'gitops', true),
    );
    expect(forced.metadata.finalizers).to.deep.equal(['example.io/keep', 'nbswarm.io/cleanup']);
    const dropped = applied(apply(forced, { ...base, spec: { user: 'a' } }, 'gitops'));
    expect(dropped.metadata.finalizers).to.deep.equal(['nbswarm.io/cleanup']);
  });

  it('ownerReferences are keyed by uid, labels and annotations by key', () => {
    const ref = (uid: string) => ({ apiVersion: 'v1', kind: 'X', name: uid, uid });
    const one = applied(apply(undefined, { ...base, metadata: { ...base.metadata, labels: { a: '1' }, ownerReferences: [ref('u1')] } }, 'a'));
    const two = applied(apply(one, { ...base, metadata: { ...base.metadata, labels: { b: '2' }, ownerReferences: [ref('u2')] } }, 'b'));
    expect(two.metadata.labels).to.deep.equal({ a: '1', b: '2' });
    expect(two.metadata.ownerReferences!.map((o) => o.uid)).to.deep.equal(['u1', 'u2']);
    const gone = applied(apply(two, { ...base, metadata: { ...base.metadata, labels: { a: '1' } } }, 'a'));
    expect(gone.metadata.ownerReferences!.map((o) => o.uid)).to.deep.equal(['u2']);
  });

  it('a field an Update manager changed after the apply stays when the applier drops it, and conflicts while applied', () => {
    const one = applied(apply(undefined, { ...base, spec: { user: 'a', resources: { cpu: '1' } } }, 'argocd'));
    const edited = update(one, obj({ ...one, spec: { user: 'a', resources: { cpu: '2' } } }), 'kubectl-edit');
    const r = apply(edited, { ...base, spec: { user: 'a', resources: { cpu: '1' } } }, 'argocd');
    expect(r).to.deep.equal({ conflicts: [{ manager: 'kubectl-edit', field: '.spec.resources.cpu' }] });
    const reverted = applied(apply(edited, { ...base, spec: { user: 'a', resources: { cpu: '1' } } }, 'argocd', true));
    expect((reverted as any).spec.resources.cpu).to.equal('1');
    expect(reverted.metadata.managedFields!.map((m) => m.manager)).to.deep.equal(['argocd']);
  });

  it('after the client-side → server-side migration, a field removed from the configuration leaves the object', () => {
    const created = obj({ ...base, spec: { user: 'a', command: ['x'], resources: { cpu: '1' } } });
    created.metadata.managedFields = recordUpdate(
      undefined,
      created,
      [],
      { manager: 'kubectl-client-side-apply', apiVersion: 'v1', subresource: '' },
      schema,
      NOW,
    );
    // Without the migration the server-side applier never owned command: it would stay.
    const unmigrated = applied(apply(created, { ...base, spec: { user: 'a', resources: { cpu: '1' } } }, 'argocd'));
    expect((unmigrated as any).spec.command).to.deep.equal(['x']);
    const migrated = update(created, structuredClone(created), 'kubectl', [{ ...created.metadata.managedFields[0], manager: 'argocd', operation: 'Apply' }]);
    const after = applied(apply(migrated, { ...base, spec: { user: 'a', resources: { cpu: '1' } } }, 'argocd'));
    expect((after as any).spec).to.deep.equal({ user: 'a', resources: { cpu: '1' } });
  });

  it('atomic lists and maps are replaced whole; set items are added in order', () => {
    const one = applied(apply(undefined, { ...base, spec: { command: ['a', 'b'], selector: { x: '1' }, tags: ['t1'] } }, 'a'));
    const two = applied(apply(one, { ...base, spec: { tags: ['t2'] } }, 'b'));
    expect((two as any).spec.tags).to.deep.equal(['t1', 't2']);
    const r = apply(two, { ...base, spec: { command: ['c'], selector: { y: '2' } } }, 'b');
    expect('conflicts' in r && r.conflicts.map((c) => c.field).sort()).to.deep.equal(['.spec.command', '.spec.selector']);
  });
});
