import { expect } from 'chai';
import { apiRequest, startTestApiServer, widgetCrd, type TestApiServer } from '../helpers/apiserver.js';

const CM = '/api/v1/namespaces/default/configmaps';
const SECRETS = '/api/v1/namespaces/default/secrets';
const W = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';
const configMap = (name: string, extra: object = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, ...extra });
const JSON_PATCH = 'application/json-patch+json';
const MERGE_PATCH = 'application/merge-patch+json';

describe('API server: hostile request bodies and parameters', function () {
  this.timeout(60_000);
  let srv: TestApiServer;
  const req = (m: string, p: string, o: Parameters<typeof apiRequest>[3] = {}) => apiRequest(srv, m, p, o);
  const healthy = async () => {
    expect((await req('GET', '/healthz', { token: null })).status).to.equal(200);
  };

  before(async () => {
    srv = await startTestApiServer();
    expect((await req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() })).status).to.equal(201);
  });
  after(async () => srv?.cleanup());

  describe('JSON patch costs what it touches', () => {
    it('refuses copy operations that would duplicate more than 3 MiB, storing nothing', async () => {
      const data: Record<string, string> = {};
      for (let i = 0; i < 50_000; i++) data[`k${i}`] = 'v';
      expect((await req('POST', CM, { body: configMap('copy-bomb', { data }) })).status).to.equal(201);
      const ops = Array.from({ length: 200 }, (_, i) => ({ op: 'copy', from: '/data', path: `/metadata/annotations/c${i}` }));
      ops.unshift({ op: 'add', path: '/metadata/annotations', value: {} } as never);
      // How long it takes is measured in bench/apiserver/attacks.ts; here: refused, nothing stored.
      const r = await req('PATCH', `${CM}/copy-bomb`, { raw: JSON.stringify(ops), contentType: JSON_PATCH });
      expect(r.status, r.text).to.equal(413);
      expect(r.body.message).to.match(/accumulated size increase of copy is more than the limit of 3145728 bytes/);
      expect((await req('GET', `${CM}/copy-bomb`)).body.metadata.annotations).to.equal(undefined);
      await healthy();
    });

    it('applies add, remove, replace, move, copy and test as RFC 6902 says, treating "constructor" as a name', async () => {
      expect((await req('POST', CM, { body: configMap('ops', { data: { a: '1', b: '2' } }) })).status).to.equal(201);
      const ops = [
        { op: 'test', path: '/data/a', value: '1' },
        { op: 'add', path: '/data/constructor', value: 'c' },
        { op: 'copy', from: '/data/a', path: '/data/a2' },
        { op: 'move', from: '/data/b', path: '/data/b2' },
        { op: 'replace', path: '/data/a', value: 'x' },
        { op: 'remove', path: '/data/a2' },
      ];
      const r = await req('PATCH', `${CM}/ops`, { raw: JSON.stringify(ops), contentType: JSON_PATCH });
      expect(r.status, r.text).to.equal(200);
      expect(r.body.data).to.deep.equal({ a: 'x', constructor: 'c', b2: '2' });
      const failed = await req('PATCH', `${CM}/ops`, { raw: JSON.stringify([{ op: 'test', path: '/data/a', value: 'nope' }]), contentType: JSON_PATCH });
      expect(failed.status).to.equal(422);
      const proto = await req('PATCH', `${CM}/ops`, { raw: JSON.stringify([{ op: 'add', path: '/data/__proto__', value: 'x' }]), contentType: JSON_PATCH });
      expect(proto.status).to.equal(422);
      expect(proto.body.message).to.contain('names "__proto__"');
    });

    it('a stale /metadata/resourceVersion in a JSON patch is a precondition: concurrent patches never lose an update', async () => {
      const created = await req('POST', CM, { body: configMap('counter', { data: { n: '0' } }) });
      const rv = created.body.metadata.resourceVersion as string;
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          req('PATCH', `${CM}/counter`, {
            raw: JSON.stringify([
              { op: 'replace', path: '/metadata/resourceVersion', value: rv },
              { op: 'replace', path: '/data/n', value: String(i + 1) },
            ]),
            contentType: JSON_PATCH,
          }),
        ),
      );
      const codes = results.map((r) => r.status).sort();
      expect(codes.filter((c) => c === 200)).to.have.length(1);
      expect(codes.filter((c) => c === 409)).to.have.length(19);
    });
  });

  describe('depth, duplicate names and __proto__', () => {
    it('answers a 100,000-deep JSON body with 400, not a stack overflow', async () => {
      for (const depth of [9_000, 100_000]) {
        const r = await req('POST', CM, {
          raw: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":${'['.repeat(depth)}${']'.repeat(depth)}}`,
        });
        expect(r.status, r.text.slice(0, 200)).to.equal(400);
        expect(r.body.message).to.match(/more than 100 levels deep/);
      }
    });

    it('refuses 2,000-deep unknown fields under preserve-unknown-fields instead of storing them', async () => {
      let deep: unknown = 'leaf';
      for (let i = 0; i < 2000; i++) deep = { d: deep };
      const r = await req('POST', W, {
        raw: `{"apiVersion":"example.nbswarm.io/v1","kind":"Widget","metadata":{"name":"deep"},"spec":{"user":"a","extra":${JSON.stringify(deep)}}}`,
      });
      expect(r.status).to.equal(400);
      const list = await req('GET', W);
      expect(list.status).to.equal(200);
      expect(list.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).not.to.include('deep');
    });

    it('refuses deeply nested YAML flow collections with 400 before parsing them', async () => {
      const r = await req('POST', CM, {
        raw: `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\nx: ${'['.repeat(5000)}${']'.repeat(5000)}\n`,
        contentType: 'application/yaml',
      });
      expect(r.status).to.equal(400);
      expect(r.body.message).to.match(/more than 100 levels deep/);
    });

    it('duplicate member names: 400 under fieldValidation=Strict, a warning otherwise', async () => {
      const raw = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},"data":{"a":"1","a":"2"}}';
      const strict = await req('POST', `${CM}?fieldValidation=Strict`, { raw });
      expect(strict.status).to.equal(400);
      expect(strict.body.message).to.equal('strict decoding error: duplicate field "metadata.name", duplicate field "data.a"');
      const warn = await req('POST', CM, { raw });
      expect(warn.status).to.equal(201);
      expect(String(warn.headers.warning)).to.contain('duplicate field \\"data.a\\"');
    });

    it('a merge patch naming __proto__ is refused and the object keeps its required fields', async () => {
      expect(
        (await req('POST', W, { body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: 'proto' }, spec: { user: 'alice' } } })).status,
      ).to.equal(201);
      const r = await req('PATCH', `${W}/proto`, { raw: '{"spec":{"__proto__":{"user":"x"},"user":null}}', contentType: MERGE_PATCH });
      expect(r.status).to.equal(400);
      expect(r.body.message).to.contain('"__proto__" is not allowed');
      expect((await req('GET', `${W}/proto`)).body.spec.user).to.equal('alice');
    });

    it('fields named constructor or toString are pruned like any unknown field, and refused under Strict', async () => {
      const body = { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { name: 'ctor' }, spec: { user: 'a', constructor: 1, toString: 'x' } };
      const strict = await req('POST', `${W}?fieldValidation=Strict`, { body });
      expect(strict.status).to.equal(400);
      expect(strict.body.message).to.contain('unknown field "spec.constructor"');
      const pruned = await req('POST', W, { body });
      expect(pruned.status).to.equal(201);
      expect(Object.keys(pruned.body.spec)).to.have.members(['user', 'size', 'color']);
    });
  });

  describe('metadata and kinds are checked before anything is stored', () => {
    for (const [field, value, message] of [
      ['finalizers', 'abc', 'metadata.finalizers must be an array of strings'],
      ['finalizers', [{ x: 1 }, 5], 'metadata.finalizers[0] must be a string'],
      ['ownerReferences', 'zzz', 'metadata.ownerReferences must be an array of owner references'],
      ['generation', 'abc', 'metadata.generation must be an integer'],
      ['labels', [1], 'metadata.labels must be a map of strings'],
    ] as const) {
      it(`metadata.${field} = ${JSON.stringify(value)} is a 400 naming the field`, async () => {
        const r = await req('POST', CM, { body: configMap('typed', { metadata: { name: 'typed', [field]: value } }) });
        expect(r.status, r.text).to.equal(400);
        expect(r.body.message).to.contain(message);
      });
    }

    it('a finalizer that is not a qualified name is a 422, so every stored object can be deleted', async () => {
      const r = await req('POST', CM, { body: configMap('fin', { metadata: { name: 'fin', finalizers: ['has space'] } }) });
      expect(r.status).to.equal(422);
      expect(r.body.details.causes[0].field).to.equal('metadata.finalizers[0]');
    });

    it('annotations past 256 KiB are a 422; an object past 1.5 MiB is a 413 (dry run too)', async () => {
      const ann = await req('POST', CM, { body: configMap('ann', { metadata: { name: 'ann', annotations: { a: 'x'.repeat(300 * 1024) } } }) });
      expect(ann.status).to.equal(422);
      expect(ann.body.details.causes).to.deep.include({
        reason: 'FieldValueTooLong',
        field: 'metadata.annotations',
        message: 'Too long: must have at most 262144 bytes',
      });
      const labels: Record<string, string> = {};
      for (let i = 0; i < 60_000; i++) labels[`label-${i}`] = `value-${i}`;
      for (const q of ['', '?dryRun=All']) {
        const big = await req('POST', `${CM}${q}`, { body: configMap('labels', { metadata: { name: 'labels', labels } }) });
        expect(big.status, big.text.slice(0, 200)).to.equal(413);
        expect(big.body.message).to.match(/configmaps "labels" would be \d+ bytes as stored; the limit for one object is 1572864 bytes/);
      }
    });

    it('Secret data must be base64, per key; immutable Secrets and ConfigMaps stay immutable', async () => {
      const bad = await req('POST', SECRETS, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { ok: 'eA==', bad: 'not base64!' } } });
      expect(bad.status).to.equal(400);
      expect(bad.body.message).to.contain('data["bad"] is not valid base64');
      const s = await req('POST', SECRETS, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'frozen' }, immutable: true, data: { a: 'eA==' } } });
      expect(s.status).to.equal(201);
      const thaw = await req('PUT', `${SECRETS}/frozen`, { body: { ...s.body, immutable: false } });
      expect(thaw.status).to.equal(422);
      expect(thaw.body.details.causes.map((c: { field: string }) => c.field)).to.include('immutable');
      const cm = await req('POST', CM, { body: configMap('frozen', { immutable: true, data: { a: '1' } }) });
      expect(cm.status).to.equal(201);
      const change = await req('PUT', `${CM}/frozen`, { body: { ...cm.body, data: { a: '2' } } });
      expect(change.status).to.equal(422);
      expect(change.body.details.causes.map((c: { field: string }) => c.field)).to.include('data');
    });

    it("PUT carrying another object's uid is a 409", async () => {
      const c = await req('POST', CM, { body: configMap('uid') });
      const r = await req('PUT', `${CM}/uid`, {
        body: { ...c.body, metadata: { ...c.body.metadata, uid: '00000000-0000-0000-0000-000000000000', resourceVersion: undefined } },
      });
      expect(r.status).to.equal(409);
      expect(r.body.message).to.contain('Precondition failed: UID in precondition');
    });

    it('query parameters of the wrong form are a 400 naming the parameter', async () => {
      for (const [q, name] of [
        ['limit=1.5', 'limit'],
        ['limit=-1', 'limit'],
        ['resourceVersion=-5', 'resourceVersion'],
        ['watch=1&resourceVersion=abc', 'resourceVersion'],
        ['watch=1&timeoutSeconds=1e9', 'timeoutSeconds'],
        ['fieldValidation=Loose', 'fieldValidation'],
      ]) {
        const r = await req(name === 'fieldValidation' ? 'POST' : 'GET', `${CM}?${q}`, name === 'fieldValidation' ? { body: configMap('fv') } : {});
        expect(r.status, `${q}: ${r.text}`).to.equal(400);
        expect(r.body.message, q).to.contain(`${name}: `);
      }
      await healthy();
    });
  });
});
