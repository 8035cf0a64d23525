import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { expect } from 'chai';
import winston from 'winston';
import { apiRequest, apiWatch, kubectl, startTestApiServer, until, widgetCrd, type TestApiServer } from '../helpers/apiserver.js';

const W = '/apis/example.nbswarm.io/v1/namespaces/default/widgets';
const widget = (name: string, spec: object = { user: 'alice' }, labels?: Record<string, string>) => ({
  apiVersion: 'example.nbswarm.io/v1',
  kind: 'Widget',
  metadata: { name, ...(labels ? { labels } : {}) },
  spec,
});

describe('API server: semantics', function () {
  let srv: TestApiServer;
  const req = (m: string, p: string, o: Parameters<typeof apiRequest>[3] = {}) => apiRequest(srv, m, p, o);

  before(async () => {
    srv = await startTestApiServer({ watchWindow: 20, bookmarkIntervalMs: 200, eventTtlSeconds: 2 });
    const r = await req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: await widgetCrd() });
    expect(r.status, r.text).to.equal(201);
    expect(r.body.status.conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`)).to.include.members([
      'Established=True',
      'NamesAccepted=True',
    ]);
  });
  after(async () => srv?.cleanup());

  it('serves discovery, version, health and OpenAPI v3 with the CRD schema', async () => {
    expect((await req('GET', '/healthz', { token: null })).text).to.equal('ok');
    expect((await req('GET', '/version', { token: null })).body.major).to.equal('1');
    const apis = await req('GET', '/apis');
    expect(apis.body.groups.map((g: { name: string }) => g.name)).to.include.members([
      'example.nbswarm.io',
      'apiextensions.k8s.io',
      'coordination.k8s.io',
      'events.k8s.io',
    ]);
    const gv = await req('GET', '/apis/example.nbswarm.io/v1');
    expect(gv.body.resources.map((r: { name: string }) => r.name)).to.deep.equal(['widgets', 'widgets/status']);
    const agg = await req('GET', '/apis', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
    expect(agg.headers['content-type']).to.equal('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    const wg = agg.body.items.find((i: { metadata: { name: string } }) => i.metadata.name === 'example.nbswarm.io');
    expect(wg.versions[0].resources[0]).to.include({ resource: 'widgets', scope: 'Namespaced', singularResource: 'widget' });
    expect(wg.versions[0].resources[0].subresources[0].subresource).to.equal('status');
    const root = await req('GET', '/openapi/v3');
    const url = root.body.paths['apis/example.nbswarm.io/v1'].serverRelativeURL;
    const doc = await req('GET', url);
    const s = doc.body.components.schemas['io.nbswarm.example.v1.Widget'];
    expect(s['x-kubernetes-group-version-kind']).to.deep.equal([{ group: 'example.nbswarm.io', kind: 'Widget', version: 'v1' }]);
    expect(s.properties.spec.properties.user.description).to.match(/owns this widget/);
  });

  it('validates with defaults and prunes unknown fields; 422 names the field', async () => {
    const r = await req('POST', W, { body: { ...widget('v1'), spec: { user: 'alice', junk: 1, extra: { any: { thing: true } } } } });
    expect(r.status, r.text).to.equal(201);
    expect(r.body.spec).to.deep.equal({ user: 'alice', size: 1, color: 'red', extra: { any: { thing: true } } });
    expect(String(r.headers.warning)).to.equal('299 - "unknown field \\"spec.junk\\""');
    const strict = await req('POST', `${W}?fieldValidation=Strict`, { body: { ...widget('v2'), spec: { user: 'a', junk: 1 } } });
    expect(strict.status).to.equal(400);
    expect(strict.body.message).to.match(/unknown field "spec.junk"/);
    const bad = await req('POST', W, { body: widget('v3', { user: 'Not A Label', size: 'x' }) });
    expect(bad.status).to.equal(422);
    expect(bad.body).to.include({ kind: 'Status', reason: 'Invalid', code: 422 });
    const fields = bad.body.details.causes.map((c: { field: string }) => c.field);
    expect(fields).to.include.members(['spec.user', 'spec.size']);
    const miss = await req('POST', W, { body: widget('v4', {}) });
    expect(miss.body.details.causes).to.deep.include({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.user' });
  });

  it('gives 409 on a stale update and on create of an existing name', async () => {
    const a = (await req('POST', W, { body: widget('c1') })).body;
    const u1 = await req('PUT', `${W}/c1`, { body: { ...a, spec: { ...a.spec, size: 2 } } });
    expect(u1.status).to.equal(200);
    expect(Number(u1.body.metadata.resourceVersion)).to.be.greaterThan(Number(a.metadata.resourceVersion));
    const stale = await req('PUT', `${W}/c1`, { body: { ...a, spec: { ...a.spec, size: 3 } } });
    expect(stale.status).to.equal(409);
    expect(stale.body.reason).to.equal('Conflict');
    expect(stale.body.message).to.match(/the object has been modified/);
    expect((await req('POST', W, { body: widget('c1') })).body.reason).to.equal('AlreadyExists');
    const stalePatch = await req('PATCH', `${W}/c1`, {
      body: { metadata: { resourceVersion: a.metadata.resourceVersion }, spec: { size: 9 } },
      contentType: 'application/merge-patch+json',
    });
    expect(stalePatch.status).to.equal(409);
  });

  it('status subresource: /status changes only status, the main resource ignores status; generation follows spec', async () => {
    const c = (await req('POST', W, { body: { ...widget('s1'), status: { phase: 'Sneaky' } } })).body;
    expect(c.status).to.equal(undefined);
    expect(c.metadata.generation).to.equal(1);
    const st = await req('PUT', `${W}/s1/status`, { body: { ...c, spec: { user: 'mallory' }, status: { phase: 'Running' } } });
    expect(st.status, st.text).to.equal(200);
    expect(st.body.spec.user).to.equal('alice');
    expect(st.body.status.phase).to.equal('Running');
    expect(st.body.metadata.generation).to.equal(1);
    const main = await req('PATCH', `${W}/s1`, { body: { spec: { size: 5 }, status: { phase: 'Hacked' } }, contentType: 'application/merge-patch+json' });
    expect(main.body.status.phase).to.equal('Running');
    expect(main.body.metadata.generation).to.equal(2);
    const lab = await req('PATCH', `${W}/s1`, { body: { metadata: { labels: { a: 'b' } } }, contentType: 'application/merge-patch+json' });
    expect(lab.body.metadata.generation).to.equal(2);
    const noop = await req('PATCH', `${W}/s1/status`, { body: { status: { phase: 'Running' } }, contentType: 'application/merge-patch+json' });
    expect(noop.body.metadata.resourceVersion).to.equal(lab.body.metadata.resourceVersion);
  });

  it('label and field selectors, limit/continue paging', async () => {
    for (let i = 0; i < 5; i++) await req('POST', W, { body: widget(`p${i}`, { user: 'bob' }, { grp: i % 2 ? 'odd' : 'even', idx: String(i) }) });
    const names = (r: { body: { items: { metadata: { name: string } }[] } }) => r.body.items.map((x) => x.metadata.name);
    expect(names(await req('GET', `${W}?labelSelector=grp%3Dodd`))).to.deep.equal(['p1', 'p3']);
    expect(names(await req('GET', `${W}?labelSelector=${encodeURIComponent('grp!=odd,idx in (0,2,3)')}`))).to.deep.equal(['p0', 'p2']);
    expect(names(await req('GET', `${W}?labelSelector=${encodeURIComponent('idx notin (0,1),grp')}`))).to.deep.equal(['p2', 'p3', 'p4']);
    expect(names(await req('GET', `${W}?labelSelector=${encodeURIComponent('!grp')}`))).to.not.include('p0');
    expect(names(await req('GET', `${W}?fieldSelector=metadata.name%3Dp3`))).to.deep.equal(['p3']);
    expect((await req('GET', `${W}?fieldSelector=spec.user%3Dbob`)).status).to.equal(400);
    const all: string[] = [];
    let cont = '';
    for (;;) {
      const r = await req('GET', `${W}?labelSelector=grp&limit=2${cont ? `&continue=${cont}` : ''}`);
      all.push(...names(r));
      cont = r.body.metadata.continue ?? '';
      if (!cont) break;
    }
    expect(all).to.deep.equal(['p0', 'p1', 'p2', 'p3', 'p4']);
  });

  it('Table output uses the printer columns', async () => {
    const r = await req('GET', W, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
    expect(r.body.kind).to.equal('Table');
    expect(r.body.columnDefinitions.map((c: { name: string }) => c.name)).to.deep.equal(['Name', 'User', 'Size', 'Color', 'Ready', 'Age']);
    const row = r.body.rows.find((x: { cells: unknown[] }) => x.cells[0] === 'p1');
    expect(row.cells.slice(0, 4)).to.deep.equal(['p1', 'bob', 1, 'red']);
  });

  it('watch: replays from a resourceVersion, filters by label, sends bookmarks, then 410 once compacted', async () => {
    const start = (await req('GET', W)).body.metadata.resourceVersion;
    const w = await apiWatch(srv, `${W}?watch=true&resourceVersion=${start}&allowWatchBookmarks=true&labelSelector=grp%3Dodd`);
    await req('PATCH', `${W}/p1`, { body: { spec: { size: 7 } }, contentType: 'application/merge-patch+json' });
    await req('PATCH', `${W}/p2`, { body: { spec: { size: 7 } }, contentType: 'application/merge-patch+json' });
    await req('PATCH', `${W}/p3`, { body: { metadata: { labels: { grp: 'none' } } }, contentType: 'application/merge-patch+json' });
    await req('DELETE', `${W}/p1`);
    await until(() => w.events.some((e) => e.type === 'BOOKMARK') && w.events.filter((e) => e.type !== 'BOOKMARK').length >= 3);
    w.stop();
    const seq = w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type}:${e.object.metadata.name}`);
    expect(seq).to.deep.equal(['MODIFIED:p1', 'DELETED:p3', 'DELETED:p1']);
    // Resume from the start RV via history (no live events needed).
    const replay = await apiWatch(srv, `/apis/example.nbswarm.io/v1/watch/namespaces/default/widgets?resourceVersion=${start}`);
    await until(() => replay.events.length >= 4);
    replay.stop();
    expect(replay.events.map((e) => `${e.type}:${e.object.metadata.name}`)).to.deep.equal(['MODIFIED:p1', 'MODIFIED:p2', 'MODIFIED:p3', 'DELETED:p1']);
    // Push the start RV out of the 20-event window.
    for (let i = 0; i < 30; i++) await req('PATCH', `${W}/p2`, { body: { spec: { size: i } }, contentType: 'application/merge-patch+json' });
    const old = await apiWatch(srv, `${W}?watch=1&resourceVersion=${start}`);
    await old.ended;
    expect(old.events).to.have.length(1);
    expect(old.events[0].type).to.equal('ERROR');
    expect(old.events[0].object).to.include({ kind: 'Status', code: 410, reason: 'Expired' });
    const exact = await req('GET', `${W}?resourceVersion=${start}&resourceVersionMatch=Exact`);
    expect(exact.status).to.equal(410);
    // An RV from the future (another store's) also makes the client relist.
    const future = await apiWatch(srv, `${W}?watch=1&resourceVersion=99999999`);
    await future.ended;
    expect(future.events.map((e) => `${e.type}:${e.object.code}`)).to.deep.equal(['ERROR:410']);
  });

  it('sendInitialEvents ends with the initial-events-end bookmark', async () => {
    const w = await apiWatch(srv, `${W}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`);
    await until(() => w.events.some((e) => e.type === 'BOOKMARK'));
    w.stop();
    const i = w.events.findIndex((e) => e.type === 'BOOKMARK');
    expect(w.events[i].object.metadata.annotations).to.deep.equal({ 'k8s.io/initial-events-end': 'true' });
    expect(w.events.slice(0, i).every((e) => e.type === 'ADDED')).to.equal(true);
    expect(i).to.be.greaterThan(3);
  });

  it('finalizers hold deletion with deletionTimestamp; removing the last one deletes', async () => {
    await req('POST', W, { body: { ...widget('f1'), metadata: { name: 'f1', finalizers: ['x/y'] } } });
    const d = await req('DELETE', `${W}/f1`);
    expect(d.status).to.equal(200);
    expect(d.body.metadata.deletionTimestamp).to.be.a('string');
    expect((await req('GET', `${W}/f1`)).status).to.equal(200);
    const p = await req('PATCH', `${W}/f1`, { body: [{ op: 'remove', path: '/metadata/finalizers' }], contentType: 'application/json-patch+json' });
    expect(p.status, p.text).to.equal(200);
    expect((await req('GET', `${W}/f1`)).status).to.equal(404);
  });

  it('dryRun=All persists nothing; deletecollection honours selectors', async () => {
    const dry = await req('POST', `${W}?dryRun=All`, { body: widget('dry') });
    expect(dry.status).to.equal(201);
    expect((await req('GET', `${W}/dry`)).status).to.equal(404);
    const dc = await req('DELETE', `${W}?labelSelector=grp%3Deven`);
    expect(dc.status).to.equal(200);
    expect((await req('GET', `${W}?labelSelector=grp%3Deven`)).body.items).to.have.length(0);
    expect((await req('GET', `${W}/p3`)).status).to.equal(200);
  });

  it('server-side apply tracks managers and reports conflicts with causes', async () => {
    const ap = (mgr: string, spec: object, force = false) =>
      req('PATCH', `${W}/ssa?fieldManager=${mgr}${force ? '&force=true' : ''}`, {
        raw: JSON.stringify(widget('ssa', spec)),
        contentType: 'application/apply-patch+yaml',
      });
    expect((await ap('a', { user: 'alice', size: 2 })).status).to.equal(201);
    const c = await ap('b', { user: 'alice', size: 3 });
    expect(c.status).to.equal(409);
    expect(c.body.details.causes).to.deep.equal([
      { reason: 'FieldManagerConflict', message: 'conflict with "a" using example.nbswarm.io/v1', field: '.spec.size' },
    ]);
    expect((await ap('b', { user: 'alice', size: 3 }, true)).body.spec.size).to.equal(3);
    // a drops size from its config: b still owns it, so it stays; a drops color (owned by a only... defaulted), user is shared
    const r = await ap('a', { user: 'alice' });
    expect(r.body.spec.size).to.equal(3);
    const yaml = await req('PATCH', `${W}/ssa?fieldManager=a`, {
      raw: 'apiVersion: example.nbswarm.io/v1\nkind: Widget\nmetadata:\n  name: ssa\nspec:\n  user: alice\n  tags: [x, y]\n',
      contentType: 'application/apply-patch+yaml',
    });
    expect(yaml.body.spec.tags).to.deep.equal(['x', 'y']);
    const mf = yaml.body.metadata.managedFields.map((m: { manager: string; operation: string }) => `${m.manager}/${m.operation}`);
    expect(mf).to.include.members(['a/Apply', 'b/Apply']);
  });

  it('server-side apply merges list-type=map lists by key and names the item in conflicts', async () => {
    const ap = (mgr: string, env: object[], force = false) =>
      req('PATCH', `${W}/lm?fieldManager=${mgr}${force ? '&force=true' : ''}`, {
        raw: JSON.stringify(widget('lm', { user: 'alice', env })),
        contentType: 'application/apply-patch+yaml',
      });
    expect((await ap('a', [{ name: 'A', value: '1' }])).status).to.equal(201);
    const both = await ap('b', [{ name: 'B', value: '2' }]);
    expect(both.status, both.text).to.equal(200);
    expect(both.body.spec.env).to.deep.equal([
      { name: 'A', value: '1' },
      { name: 'B', value: '2' },
    ]);
    const a = both.body.metadata.managedFields.find((m: { manager: string }) => m.manager === 'a');
    expect(a.fieldsV1['f:spec']['f:env']).to.have.property('k:{"name":"A"}');
    const c = await ap('b', [
      { name: 'A', value: '3' },
      { name: 'B', value: '2' },
    ]);
    expect(c.status).to.equal(409);
    expect(c.body.details.causes.map((x: { field: string }) => x.field)).to.deep.equal(['.spec.env[name="A"].value']);
    // a stops managing A: the item goes, B (b's) stays.
    const dropped = await ap('a', []);
    expect(dropped.body.spec.env).to.deep.equal([{ name: 'B', value: '2' }]);
  });

  it('strategic merge patch on core types merges lists by key; secrets take stringData', async () => {
    const s = await req('POST', '/api/v1/namespaces/default/secrets', {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'sec', ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'a', uid: 'u1' }] },
        stringData: { k: 'v' },
      },
    });
    expect(s.body.data).to.deep.equal({ k: Buffer.from('v').toString('base64') });
    expect(s.body.type).to.equal('Opaque');
    const p = await req('PATCH', '/api/v1/namespaces/default/secrets/sec', {
      body: { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'b', uid: 'u2' }] } },
      contentType: 'application/strategic-merge-patch+json',
    });
    expect(p.body.metadata.ownerReferences.map((o: { uid: string }) => o.uid)).to.deep.equal(['u1', 'u2']);
    const cm = await req('POST', '/api/v1/namespaces/default/configmaps', {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { a: '1' } },
    });
    expect(cm.status).to.equal(201);
  });

  it('events.k8s.io/v1 and core/v1 events are two views of one store', async () => {
    const e = await req('POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
      body: {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: 'e1' },
        eventTime: new Date().toISOString(),
        reportingController: 'nbswarm',
        reportingInstance: 'x',
        action: 'Test',
        reason: 'Tested',
        note: 'hello',
        type: 'Normal',
        regarding: { kind: 'Widget', name: 'p3', namespace: 'default' },
      },
    });
    expect(e.status, e.text).to.equal(201);
    const core = await req('GET', '/api/v1/namespaces/default/events/e1');
    expect(core.body).to.include({ apiVersion: 'v1', message: 'hello', reportingComponent: 'nbswarm' });
    expect(core.body.involvedObject.name).to.equal('p3');
    const sel = await req('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp3');
    expect(sel.body.items).to.have.length(1);
    // Events expire after the TTL (2 s in this server).
    const old = await req('POST', '/api/v1/namespaces/default/events', {
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'old' },
        involvedObject: { kind: 'Widget', name: 'p3', namespace: 'default' },
        reason: 'Old',
        message: 'x',
        lastTimestamp: '2020-01-01T00:00:00Z',
      },
    });
    expect(old.status).to.equal(201);
    await until(async () => (await req('GET', '/api/v1/namespaces/default/events/old')).status === 404, 5000);
  });

  it('leases work for leader election', async () => {
    const L = '/apis/coordination.k8s.io/v1/namespaces/nbswarm/leases';
    const c = await req('POST', L, {
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'op' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } },
    });
    expect(c.status).to.equal(201);
    const u = await req('PUT', `${L}/op`, { body: { ...c.body, spec: { ...c.body.spec, holderIdentity: 'b' } } });
    expect(u.body.spec.holderIdentity).to.equal('b');
    expect((await req('PUT', `${L}/op`, { body: c.body })).status).to.equal(409);
  });

  it('bad input gets Status errors and never crashes the server', async () => {
    expect((await req('POST', W, { raw: '{"apiVersion": ', contentType: 'application/json' })).status).to.equal(400);
    expect((await req('POST', W, { raw: 'a: [b\n', contentType: 'application/yaml' })).status).to.equal(400);
    expect((await req('POST', W, { raw: '<xml/>', contentType: 'text/xml' })).status).to.equal(415);
    expect((await req('PATCH', `${W}/p3`, { raw: '{}', contentType: 'text/plain' })).status).to.equal(415);
    const big = await req('POST', W, { raw: JSON.stringify({ ...widget('big'), spec: { user: 'a', extra: { x: 'y'.repeat(4 * 1024 * 1024) } } }) });
    expect(big.status).to.equal(413);
    expect(big.body.reason).to.equal('RequestEntityTooLarge');
    const nf = await req('GET', '/apis/example.nbswarm.io/v1/namespaces/default/gadgets');
    expect(nf.status).to.equal(404);
    expect(nf.body.kind).to.equal('Status');
    expect((await req('GET', `${W}/nope`)).body).to.include({ reason: 'NotFound', message: 'widgets.example.nbswarm.io "nope" not found' });
    expect((await req('POST', '/apis/example.nbswarm.io/v1/namespaces/missing/widgets', { body: widget('x') })).status).to.equal(404);
    expect((await req('POST', W, { body: [1, 2] })).status).to.equal(400);
    expect((await req('PATCH', `${W}/p3`, { raw: '[{"op":"bogus"}]', contentType: 'application/json-patch+json' })).status).to.equal(422);
    expect((await req('GET', `${W}?labelSelector=${encodeURIComponent('a in (b')}`)).status).to.equal(400);
    expect((await req('POST', W, { body: { ...widget('kind'), kind: 'Gadget' } })).status).to.equal(400);
    expect((await req('GET', '/healthz')).status).to.equal(200);
  });

  it('survives a barrage of malformed requests, answering each with a Status', async () => {
    const paths = [
      W,
      `${W}/p3`,
      `${W}/p3/status`,
      '/api/v1/namespaces/default/secrets',
      '/api/v1/namespaces',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      `${W}?watch=1&resourceVersion=abc`,
      `${W}?limit=-1&continue=%%%`,
      `${W}?labelSelector=%3D%3D`,
    ];
    const bodies = [
      '',
      'null',
      '"str"',
      '{"metadata":7}',
      '{"metadata":{"name":{"x":1}}}',
      '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"a":5}}',
      '[{"op":"add","path":"/x/y/z","value":1}]',
      '\u0000\u0001garbage',
      '{"spec":' + '['.repeat(5000),
      '---\n- a\n---\n- b\n',
    ];
    const types = [
      'application/json',
      'application/yaml',
      'application/merge-patch+json',
      'application/json-patch+json',
      'application/strategic-merge-patch+json',
      'application/apply-patch+yaml',
      'application/vnd.kubernetes.protobuf',
    ];
    let n = 0;
    for (const p of paths) {
      for (const m of ['POST', 'PUT', 'PATCH']) {
        for (const b of bodies) {
          const t = types[n++ % types.length];
          const r = await req(m, p, { raw: b, contentType: t });
          expect(r.status, `${m} ${p} ${t} ${b.slice(0, 40)} -> ${r.text.slice(0, 200)}`).to.be.within(200, 499);
          if (r.status >= 400) expect(r.body?.kind, r.text).to.equal('Status');
        }
      }
    }
    expect((await req('GET', '/readyz')).status).to.equal(200);
    const m = await req('GET', '/metrics');
    expect(m.text).to.match(/apiserver_request_total\{verb="patch",resource="widgets.example.nbswarm.io",code="4\d\d"\} \d+/);
  });

  it('auth: no token 401, viewer writes 403, hub limited to its namespace', async () => {
    const tokens = join(srv.dataDir, 'tokens.csv');
    writeFileSync(tokens, `${srv.adminToken},admin,admin,*\nviewtok,vera,viewer\nhubtok,jupyterhub,hub,jhub\n`);
    await new Promise((r) => setTimeout(r, 2100)); // the token file is re-read at most every 2 s
    await req('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'jhub' } } });
    const noTok = await req('GET', W, { token: null });
    expect(noTok.status).to.equal(401);
    expect(noTok.body).to.include({ kind: 'Status', reason: 'Unauthorized' });
    expect((await req('GET', W, { token: 'wrong' })).status).to.equal(401);
    expect((await req('GET', W, { token: 'viewtok' })).status).to.equal(200);
    const vw = await req('POST', W, { token: 'viewtok', body: widget('vw') });
    expect(vw.status).to.equal(403);
    expect(vw.body.message).to.match(/User "vera" cannot create resource "widgets"/);
    const J = '/apis/example.nbswarm.io/v1/namespaces/jhub/widgets';
    expect((await req('POST', J, { token: 'hubtok', body: widget('h1') })).status).to.equal(201);
    expect((await req('GET', J, { token: 'hubtok' })).body.items).to.have.length(1);
    expect((await req('GET', W, { token: 'hubtok' })).status).to.equal(403);
    expect((await req('GET', '/apis/example.nbswarm.io/v1/widgets', { token: 'hubtok' })).status).to.equal(403);
    expect((await req('POST', W, { token: 'hubtok', body: widget('h2') })).status).to.equal(403);
    expect((await req('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { token: 'hubtok' })).status).to.equal(200);
    expect((await req('DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.nbswarm.io', { token: 'hubtok' })).status).to.equal(
      403,
    );
  });

  it('speaks HTTP/2 as well as HTTP/1.1', async () => {
    const session = http2.connect(srv.url, { ca: srv.caPem });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const s = session.request({ ':path': `${W}/p3`, authorization: `Bearer ${srv.adminToken}` });
        let out = '';
        s.on('data', (c: Buffer) => (out += c));
        s.on('end', () => resolve(out));
        s.on('error', reject);
        s.end();
      });
      expect(JSON.parse(body).metadata.name).to.equal('p3');
    } finally {
      session.close();
    }
  });

  it('generateName makes a unique name; a bad URL escape is a 400', async () => {
    const r = await req('POST', W, { body: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', metadata: { generateName: 'gen-' }, spec: { user: 'a' } } });
    expect(r.status).to.equal(201);
    expect(r.body.metadata.name).to.match(/^gen-[a-z0-9]{5}$/);
    expect((await req('GET', `${W}/%E0%A4%A`)).status).to.equal(400);
  });

  it('deleting a namespace removes what is in it', async () => {
    const N = '/apis/example.nbswarm.io/v1/namespaces/doomed/widgets';
    await req('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } } });
    expect((await req('POST', N, { body: widget('x1') })).status).to.equal(201);
    expect((await req('POST', N, { body: { ...widget('held'), metadata: { name: 'held', finalizers: ['x/y'] } } })).status).to.equal(201);
    const d = await req('DELETE', '/api/v1/namespaces/doomed');
    expect(d.body.status.phase).to.equal('Terminating');
    // The finalizer keeps the namespace Terminating: no new content may be created in it.
    await until(async () => (await req('GET', `${N}/x1`)).status === 404);
    expect((await req('GET', `${N}/held`)).body.metadata.deletionTimestamp).to.be.a('string');
    expect((await req('POST', N, { body: widget('x2') })).status).to.equal(403);
    await req('PATCH', `${N}/held`, { body: { metadata: { finalizers: null } }, contentType: 'application/merge-patch+json' });
    await until(async () => (await req('GET', '/api/v1/namespaces/doomed')).status === 404);
    expect((await req('GET', '/apis/example.nbswarm.io/v1/widgets?fieldSelector=metadata.namespace%3Ddoomed')).body.items).to.have.length(0);
    expect((await req('DELETE', '/api/v1/namespaces/default')).status).to.equal(403);
  });

  it('writes sent together keep their own outcome, unique increasing resourceVersions and ordered watch events', async () => {
    const start = (await req('GET', W)).body.metadata.resourceVersion;
    const w = await apiWatch(srv, `${W}?watch=1&resourceVersion=${start}`);
    // One HTTP/2 connection, all streams written at once: the server sees them in the same turn
    // and commits them together; each still gets the answer its own write deserves.
    const session = http2.connect(srv.url, { ca: srv.caPem });
    const send = (method: string, path: string, body: object, type = 'application/json') =>
      new Promise<{ status: number; body: any }>((resolve, reject) => {
        const s = session.request({ ':method': method, ':path': path, authorization: `Bearer ${srv.adminToken}`, 'content-type': type });
        let out = '';
        s.on('response', (h) => s.on('end', () => resolve({ status: Number(h[':status']), body: JSON.parse(out) })));
        s.on('data', (c: Buffer) => (out += c));
        s.on('error', reject);
        s.end(JSON.stringify(body));
      });
    try {
      const names = ['gc-0', 'gc-1', 'gc-2', 'gc-3'];
      const creates = await Promise.all([...names, ...names].map((n) => send('POST', W, widget(n))));
      expect(creates.map((r) => r.status).sort()).to.deep.equal([201, 201, 201, 201, 409, 409, 409, 409]);
      const made = creates.filter((r) => r.status === 201).map((r) => r.body);
      expect(new Set(made.map((o) => o.metadata.name)).size).to.equal(4);
      const rvs = made.map((o) => Number(o.metadata.resourceVersion));
      expect(new Set(rvs).size).to.equal(4);
      for (const rv of rvs) expect(rv).to.be.greaterThan(Number(start));
      const stale = made[0].metadata.resourceVersion;
      const [ok, lost] = await Promise.all([
        send('PUT', `${W}/${made[0].metadata.name}`, { ...made[0], spec: { user: 'first' } }),
        send('PUT', `${W}/${made[0].metadata.name}`, { ...made[0], spec: { user: 'second' } }),
      ]);
      expect([ok.status, lost.status].sort()).to.deep.equal([200, 409]);
      expect(Number((ok.status === 200 ? ok : lost).body.metadata.resourceVersion)).to.be.greaterThan(Math.max(...rvs));
      expect((await req('GET', `${W}/${made[0].metadata.name}`)).body.metadata.resourceVersion).to.not.equal(stale);
      await until(() => w.events.filter((e) => e.object.metadata?.name?.startsWith('gc-')).length === 5);
      const seen = w.events.filter((e) => e.object.metadata?.name?.startsWith('gc-'));
      expect(seen.map((e) => e.type)).to.deep.equal(['ADDED', 'ADDED', 'ADDED', 'ADDED', 'MODIFIED']);
      const seenRvs = seen.map((e) => Number(e.object.metadata.resourceVersion));
      expect(seenRvs).to.deep.equal([...seenRvs].sort((a, b) => a - b));
      expect(seenRvs.slice(0, 4)).to.have.members(rvs);
    } finally {
      session.close();
      w.stop();
    }
  });

  it('a list of megabytes is the stored objects, in step with every write; pages, HTTP/2 and kubectl see the same', async function () {
    this.timeout(120_000);
    const B = '/apis/example.nbswarm.io/v1/namespaces/big/widgets';
    expect((await req('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'big' } } })).status).to.equal(201);
    // ~8 KB each, some of it beyond ASCII: 200 of them take several of the server's 1 MiB writes.
    const note = (i: number, v = 0) => `é∑-${i}-${v}-${'x'.repeat(8000)}`;
    const big = (i: number, v = 0) => ({
      ...widget(`w${String(i).padStart(3, '0')}`),
      metadata: { name: `w${String(i).padStart(3, '0')}`, annotations: { note: note(i, v) } },
    });
    for (let i = 0; i < 200; i += 20) {
      const created = await Promise.all(Array.from({ length: 20 }, (_, k) => req('POST', B, { body: big(i + k) })));
      expect(created.map((r) => r.status)).to.deep.equal(Array(20).fill(201));
    }
    const list = async () => {
      const r = await req('GET', B);
      expect(r.status, r.text.slice(0, 300)).to.equal(200);
      return r;
    };
    const first = await list();
    expect(Buffer.byteLength(first.text)).to.be.greaterThan(1.6 * 1024 * 1024);
    expect(first.body.kind).to.equal('WidgetList');
    expect(first.body.items.map((o: { metadata: { annotations: { note: string } } }) => o.metadata.annotations.note)).to.deep.equal(
      Array.from({ length: 200 }, (_, i) => note(i)),
    );
    // Writes after the kind is held in memory: a change, a delete and a create, each seen by the next list.
    const changed = await req('PATCH', `${B}/w005`, { body: { metadata: { annotations: { note: note(5, 1) } } }, contentType: 'application/merge-patch+json' });
    expect(changed.status).to.equal(200);
    expect((await req('DELETE', `${B}/w010`)).status).to.equal(200);
    expect((await req('POST', B, { body: big(999) })).status).to.equal(201);
    const after = await list();
    const names = after.body.items.map((o: { metadata: { name: string } }) => o.metadata.name);
    expect(names).to.have.length(200);
    expect(names).to.not.include('w010');
    expect(names[names.length - 1]).to.equal('w999');
    expect(after.body.items[5]).to.deep.equal(changed.body);
    expect(after.body.items[100]).to.deep.equal((await req('GET', `${B}/w101`)).body);
    expect(Number(after.body.metadata.resourceVersion)).to.be.at.least(Number(after.body.items[199].metadata.resourceVersion));
    // Pages of 37 (continue tokens into the in-memory copy) add up to the same list.
    const paged: unknown[] = [];
    let cont = '';
    do {
      const r = await req('GET', `${B}?limit=37${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      paged.push(...r.body.items);
      cont = r.body.metadata.continue ?? '';
    } while (cont);
    expect(paged).to.deep.equal(after.body.items);
    // The same bytes over HTTP/2.
    const session = http2.connect(srv.url, { ca: srv.caPem });
    try {
      const h2 = await new Promise<string>((resolve, reject) => {
        const st = session.request({ ':path': B, authorization: `Bearer ${srv.adminToken}` });
        const chunks: Buffer[] = [];
        st.on('data', (c: Buffer) => chunks.push(c));
        st.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        st.on('error', reject);
        st.end();
      });
      expect(JSON.parse(h2).items).to.deep.equal(after.body.items);
    } finally {
      session.close();
    }
    const k = await kubectl(['get', 'widgets', '-n', 'big', '-o', 'json'], { kubeconfig: srv.kubeconfigPath });
    expect(k.code, k.stderr).to.equal(0);
    expect(JSON.parse(k.stdout).items.map((o: { metadata: { name: string } }) => o.metadata.name)).to.deep.equal(names);
  });

  it('watches of one selection each get its events; an HTTP/1.1 watch that ends leaves its connection serving the next request', async () => {
    for (const n of ['sel-a', 'sel-b']) expect((await req('POST', W, { body: widget(n, { user: 'carol' }, { tier: 'gold' }) })).status).to.equal(201);
    const rv = (await req('GET', W)).body.metadata.resourceVersion;
    // Each watch on a keep-alive agent of one connection, ending after 2 s.
    const agents = Array.from({ length: 3 }, () => new https.Agent({ keepAlive: true, maxSockets: 1, ca: srv.caPem }));
    const open = (agent: https.Agent, query: string) =>
      new Promise<{ events: string[]; ended: Promise<void> }>((resolve, reject) => {
        const events: string[] = [];
        const r = https.get(
          new URL(`${W}?watch=1&resourceVersion=${rv}&timeoutSeconds=2&${query}`, srv.url),
          { agent, headers: { authorization: `Bearer ${srv.adminToken}` } },
          (res) => {
            let buf = '';
            const ended = new Promise<void>((done) => res.on('end', () => done()));
            res.on('data', (c: Buffer) => {
              buf += c.toString('utf8');
              for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
                const ev = JSON.parse(buf.slice(0, i)) as { type: string; object: { metadata: { name: string; labels?: Record<string, string> } } };
                buf = buf.slice(i + 1);
                events.push(`${ev.type}:${ev.object.metadata.name}:${ev.object.metadata.labels?.tier ?? ''}`);
              }
            });
            resolve({ events, ended });
          },
        );
        r.on('error', reject);
      });
    try {
      const byName = [await open(agents[0]!, 'fieldSelector=metadata.name%3Dsel-a'), await open(agents[1]!, 'fieldSelector=metadata.name%3Dsel-a')];
      const byLabel = await open(agents[2]!, 'labelSelector=tier%3Dgold');
      const patch = (name: string, tier: string) =>
        req('PATCH', `${W}/${name}`, { body: { metadata: { labels: { tier } } }, contentType: 'application/merge-patch+json' });
      expect((await patch('sel-a', 'silver')).status).to.equal(200);
      expect((await patch('sel-b', 'bronze')).status).to.equal(200);
      expect((await patch('sel-a', 'gold')).status).to.equal(200);
      await Promise.all([...byName, byLabel].map((w) => w.ended));
      for (const w of byName) expect(w.events).to.deep.equal(['MODIFIED:sel-a:silver', 'MODIFIED:sel-a:gold']);
      expect(byLabel.events).to.deep.equal(['DELETED:sel-a:silver', 'DELETED:sel-b:bronze', 'ADDED:sel-a:gold']);
      // The chunked reply ended cleanly: the same connection answers the next request.
      for (const agent of agents) {
        const got = await new Promise<{ status: number; reused: boolean; body: string }>((resolve, reject) => {
          const r = https.get(new URL(`${W}/sel-a`, srv.url), { agent, headers: { authorization: `Bearer ${srv.adminToken}` } }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: r.reusedSocket, body }));
          });
          r.on('error', reject);
        });
        expect(got.status).to.equal(200);
        expect(got.reused).to.equal(true);
        expect(JSON.parse(got.body).metadata.labels).to.deep.equal({ tier: 'gold' });
      }
    } finally {
      for (const a of agents) a.destroy();
    }
  });

  it('deleting the CRD removes its objects and stops serving it', async () => {
    const w = await apiWatch(srv, `${W}?watch=1`);
    await until(() => w.events.length > 0);
    const d = await req('DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.nbswarm.io');
    expect(d.status).to.equal(200);
    await until(() => w.events.some((e) => e.type === 'DELETED'));
    await w.ended; // the server ends watches of a resource it no longer serves
    expect((await req('GET', W)).status).to.equal(404);
  });
});

/** A reply read off a raw HTTP/1.1 connection: its status line, headers, body (chunks joined) and the bytes that followed it. */
interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  rest: Buffer;
}

/** The first whole reply in `buf` (by content-length or chunked framing), or undefined while it is incomplete. */
function parseReply(buf: Buffer): RawReply | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  const status = Number(statusLine!.split(' ')[1]);
  let at = end + 4;
  if (headers['transfer-encoding'] !== 'chunked') {
    const length = Number(headers['content-length'] ?? 0);
    if (buf.length < at + length) return undefined;
    return { status, headers, body: buf.subarray(at, at + length), rest: buf.subarray(at + length) };
  }
  const chunks: Buffer[] = [];
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isInteger(size)) throw new Error(`not a chunk size line: ${JSON.stringify(buf.subarray(at, eol + 2).toString('latin1'))}`);
    if (buf.length < eol + 2 + size + 2) return undefined;
    if (buf.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') throw new Error('a chunk not followed by CRLF');
    chunks.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 4 + size;
    if (size === 0) return { status, headers, body: Buffer.concat(chunks), rest: buf.subarray(at) };
  }
}

describe('API server: a watch refused with 410 on a keep-alive HTTP/1.1 connection', function () {
  /*
   * A watch the history cannot replay from (compacted, or from a resourceVersion the store never
   * issued) is answered with one 410 ERROR line and ended; the connection then serves the client's
   * next requests. Before 202dfef the refused watch left its 'drain' listener on the keep-alive
   * socket, and each later drain there (a big reply the client reads slowly) ran the dead watch's
   * replay: the one from a resourceVersion never issued, with sendInitialEvents and bookmarks, wrote
   * its bookmark into its ended reply and counted the list's bytes waiting in the socket as its own
   * backlog, so the server "ended" it again for not keeping up (a warning in its log, one more in
   * apiserver_terminated_watchers_total); and listeners piled up, one per refused watch, until Node
   * warned of a leak. The client's replies were right all along (the dead watch's writes went to its
   * ended reply, not the socket), so what is checked is what the client gets and what the server
   * reports.
   */
  const KiB = 1024;
  const CMS = '/api/v1/namespaces/default/configmaps';
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  const logged: { level: string; message: string; why?: string }[] = [];
  let srv: TestApiServer;

  before(async () => {
    process.on('warning', onWarning);
    const log = winston.createLogger({
      level: 'warn',
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            objectMode: true,
            write(info: (typeof logged)[number], _enc, done) {
              logged.push(info);
              done();
            },
          }),
        }),
      ],
    });
    // A watch may hold 4 KiB: a list reply waiting in the socket is far more than that, so a watch
    // that counted it as its own would be ended at once.
    srv = await startTestApiServer({ watchWindow: 5, log, limits: { watchBufferBytes: 4 * KiB } });
  });
  after(async () => {
    process.off('warning', onWarning);
    await srv?.cleanup();
  });

  it('leaves nothing on the connection: a later reply that backs up the socket arrives whole, and the server ends no watch', async () => {
    const metric = async (name: string) => {
      const text = (await apiRequest(srv, 'GET', '/metrics')).text;
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    const start = (await apiRequest(srv, 'GET', CMS)).body.metadata.resourceVersion as string;
    // 8 MiB of ConfigMaps: their list is far more than the socket buffers hold while the client does
    // not read. The 8 writes also push `start` out of the 5-change history.
    const names = Array.from({ length: 8 }, (_, i) => `big-${i}`);
    const value = 'v'.repeat(1024 * KiB - 256);
    for (const name of names) {
      const r = await apiRequest(srv, 'POST', CMS, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { value } } });
      expect(r.status, r.text).to.equal(201);
    }

    const socket = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem, ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    let closed = false;
    socket.on('close', () => (closed = true));
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    let received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    const get = (path: string) =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${srv.adminToken}\r\nAccept: application/json\r\n\r\n`);
    /** The next reply on the connection, whole; the bytes after it are kept for the next one. */
    const reply = async (): Promise<RawReply> => {
      let got: RawReply | undefined;
      await until(() => closed || (got = parseReply(Buffer.concat(received))) !== undefined, 10_000, 'a whole reply on the connection');
      if (!got) throw new Error('the server closed the connection');
      received = got.rest.length ? [got.rest] : [];
      return got;
    };
    const watchLines = (r: RawReply) =>
      r.body
        .toString('utf8')
        .split('\n')
        .filter((l) => l)
        .map((l) => JSON.parse(l) as { type: string; object: { code: number; reason: string; message: string } });

    try {
      // Watches refused on the one connection, each answered and ended: 12 from a compacted
      // resourceVersion, then one from a resourceVersion never issued, as client-go's watch-list asks.
      const refused = [
        ...Array.from({ length: 12 }, () => [`${CMS}?watch=1&resourceVersion=${start}`, 'too old resource version']),
        [
          `${CMS}?watch=1&resourceVersion=99999999&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`,
          'too large resource version',
        ],
      ];
      for (const [path, why] of refused) {
        get(path!);
        const r = await reply();
        expect(r.status).to.equal(200);
        expect(r.headers.connection).to.equal('keep-alive');
        const lines = watchLines(r);
        expect(lines.map((l) => `${l.type}:${l.object.code}:${l.object.reason}`)).to.deep.equal(['ERROR:410:Expired']);
        expect(lines[0]!.object.message).to.contain(why);
        expect(received, 'bytes after the refused watch').to.deep.equal([]);
      }

      // A list of 8 MiB on the same connection, read only after the socket has backed up: the
      // server's socket drains again and again as the client takes it.
      socket.pause();
      get(CMS);
      await new Promise((r) => setTimeout(r, 300));
      socket.resume();
      const list = await reply();
      expect(list.status).to.equal(200);
      const items = (JSON.parse(list.body.toString('utf8')) as { items: { metadata: { name: string }; data: { value: string } }[] }).items;
      expect(items.map((o) => o.metadata.name)).to.deep.equal(names);
      expect(items.every((o) => o.data.value === value)).to.equal(true);
      // Nothing follows the list (no watch lines, no stray chunk), and the connection serves on.
      await new Promise((r) => setTimeout(r, 200));
      expect(Buffer.concat(received).toString('latin1'), 'bytes after the list').to.equal('');
      get(`${CMS}/big-3`);
      const one = await reply();
      expect(one.status).to.equal(200);
      expect(JSON.parse(one.body.toString('utf8')).data.value).to.equal(value);
      get('/healthz');
      expect((await reply()).body.toString()).to.equal('ok');
      expect(closed).to.equal(false);

      // What the server reports: no watch ended (none was open), nothing held for watches, no leak warning.
      expect({
        terminatedWatchers: await metric('apiserver_terminated_watchers_total'),
        watchBufferedBytes: await metric('apiserver_watch_buffered_bytes'),
        warnings: warnings.filter((w) => /MaxListeners.*drain/.test(w)),
        logged: logged.filter((l) => l.level === 'error' || /watch/.test(l.message)).map((l) => `${l.level} ${l.message} ${l.why ?? ''}`),
      }).to.deep.equal({ terminatedWatchers: 0, watchBufferedBytes: 0, warnings: [], logged: [] });
    } finally {
      socket.destroy();
    }
  });
});
