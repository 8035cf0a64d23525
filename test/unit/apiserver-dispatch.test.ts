import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { Authenticator, User } from '../../src/apiserver/auth/tokens.js';
import { VERB_HANDLERS } from '../../src/apiserver/dispatcher.js';
import { create } from '../../src/apiserver/handlers/create.js';
import { deleteCollection, deleteOne } from '../../src/apiserver/handlers/delete.js';
import { get, list } from '../../src/apiserver/handlers/get.js';
import { patch } from '../../src/apiserver/handlers/patch.js';
import { update } from '../../src/apiserver/handlers/update.js';
import { watch } from '../../src/apiserver/handlers/watch.js';
import type { Req, Res } from '../../src/apiserver/request/http.js';
import { ApiServer } from '../../src/apiserver/server.js';
import type { Store } from '../../src/apiserver/storage/sqlite.js';
import { createLogger } from '../../src/log.js';
import { openTempStore, type TempStore } from '../helpers/store.js';

/** Bearer <role> is a user of that role (the token file's parsing is the integration tests' business). */
const roles: Authenticator = {
  authenticate(header: string | undefined): User | null {
    const role = /^Bearer (admin|hub|viewer)$/.exec(header ?? '')?.[1] as User['role'] | undefined;
    return role ? { name: role, role, namespaces: role === 'hub' ? ['team'] : null } : null;
  },
};

interface Reply {
  code: number;
  headers: Record<string, string | string[]>;
  body: string;
}

/** Sends one request through the server's handler, without HTTP; resolves with the reply (watches: once headers are out, the body growing after). */
function send(api: ApiServer, method: string, url: string, role?: string, body?: unknown): Promise<Reply & { close(): void }> {
  const chunks = body === undefined ? [] : [Buffer.from(JSON.stringify(body))];
  const req: Req = Object.assign(Readable.from(chunks), {
    method,
    url,
    headers: { ...(role ? { authorization: `Bearer ${role}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
  });
  return new Promise((resolve) => {
    const events = new EventEmitter();
    const reply: Reply = { code: 0, headers: {}, body: '' };
    const close = () => events.emit('close');
    let headersSent = false;
    const res: Res = {
      get headersSent() {
        return headersSent;
      },
      // Takes every write at once.
      writableLength: 0,
      writeHead(code, headers) {
        reply.code = code;
        reply.headers = headers ?? {};
        headersSent = true;
        if (/watch=1/.test(url)) resolve(Object.assign(reply, { close }));
      },
      write(chunk) {
        reply.body += String(chunk);
        return true;
      },
      end(chunk) {
        if (chunk !== undefined) reply.body += String(chunk);
        close();
        resolve(Object.assign(reply, { close }));
      },
      on(ev, cb) {
        events.on(ev, cb);
      },
    };
    void api.handle(req, res);
  });
}

describe('API server dispatcher', function () {
  let temp: TempStore;
  let storage: Store;
  let api: ApiServer;
  before(() => {
    temp = openTempStore('dispatch');
    storage = temp.storage;
    api = new ApiServer({
      storage,
      authenticator: roles,
      bookmarkIntervalMs: 60_000,
      maxWatchSeconds: 60,
      eventTtlSeconds: 3600,
      log: createLogger({ silent: true }),
    });
  });
  after(async () => {
    api.close();
    await temp.remove();
  });

  it('has one handler per verb', () => {
    expect(VERB_HANDLERS).to.deep.equal({ get, list, watch, create, update, patch, delete: deleteOne, deletecollection: deleteCollection });
  });

  const table: [string, string, string | undefined, number, string?][] = [
    ['GET', '/healthz', undefined, 200],
    ['GET', '/version', undefined, 200],
    ['GET', '/api', undefined, 401],
    ['GET', '/api', 'viewer', 200],
    ['GET', '/apis/nope.example.io', 'admin', 404],
    ['GET', '/openapi/v3/apis/nope.example.io/v1', 'admin', 404],
    ['GET', '/api/v1/namespaces/default/configmaps', 'viewer', 200, 'verb="list",resource="configmaps",code="200"'],
    ['GET', '/api/v1/configmaps', 'admin', 200, 'verb="list",resource="configmaps",code="200"'],
    ['POST', '/api/v1/namespaces/default/configmaps', 'viewer', 403, 'verb="post",resource="configmaps",code="403"'],
    ['POST', '/api/v1/namespaces/default/configmaps', 'hub', 403],
    ['GET', '/api/v1/namespaces/team/configmaps/none', 'hub', 404, 'verb="get",resource="configmaps",code="404"'],
    ['POST', '/api/v1/namespaces/default/configmaps/x', 'admin', 405],
    ['PATCH', '/api/v1/namespaces/default/configmaps', 'admin', 405],
    ['OPTIONS', '/api/v1/namespaces/default/configmaps', 'admin', 405],
    ['GET', '/api/v1/configmaps/x', 'admin', 404],
    ['GET', '/api/v1/namespaces/default/configmaps/x/status', 'admin', 404],
    ['GET', '/api/v1/namespaces/default/namespaces', 'admin', 404],
    ['GET', '/api/v2/namespaces', 'admin', 404],
    ['GET', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', 'admin', 405],
    ['DELETE', '/api/v1/namespaces/default', 'admin', 403, 'verb="delete",resource="namespaces",code="403"'],
    ['GET', '/api/v1/namespaces/default/configmaps?watch=1', 'viewer', 200, 'verb="watch",resource="configmaps",code="200"'],
  ];
  for (const [method, url, role, code, metric] of table) {
    it(`${method} ${url} as ${role ?? 'nobody'}: ${code}`, async () => {
      const r = await send(api, method, url, role);
      r.close();
      expect(r.code, r.body).to.equal(code);
      if (code >= 400 && url !== '/healthz') expect(JSON.parse(r.body)).to.include({ kind: 'Status', code });
      if (metric) expect(await api.metrics.registry.metrics()).to.contain(`apiserver_request_total{${metric}}`);
    });
  }

  it('a watch shows an initial state holding uncommitted writes only once they are committed', async () => {
    storage.write('ADDED', '/configmaps', 'default', 'in-flight', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'in-flight', namespace: 'default' },
    });
    expect(storage.pending).to.equal(true);
    const w = await send(api, 'GET', '/api/v1/namespaces/default/configmaps?watch=1', 'viewer');
    const lines = () =>
      w.body
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
    const sentBeforeCommit = lines();
    const committed = storage.settled();
    storage.write('ADDED', '/configmaps', 'default', 'next', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'next', namespace: 'default' } });
    await committed;
    await storage.settled();
    w.close();
    expect(w.code).to.equal(200);
    expect(sentBeforeCommit).to.deep.equal([]);
    expect(lines().map((e) => `${e.type} ${e.object.metadata.name}`)).to.deep.equal(['ADDED in-flight', 'ADDED next']);
  });

  it('creates, reads back and deletes through the verb handlers', async () => {
    const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { a: 'b' } };
    const created = await send(api, 'POST', '/api/v1/namespaces/default/configmaps', 'admin', body);
    expect(created.code, created.body).to.equal(201);
    const got = await send(api, 'GET', '/api/v1/namespaces/default/configmaps/cm', 'viewer');
    expect(JSON.parse(got.body)).to.deep.include({ data: { a: 'b' } });
    expect((await send(api, 'POST', '/api/v1/namespaces/default/configmaps', 'admin', body)).code).to.equal(409);
    expect((await send(api, 'DELETE', '/api/v1/namespaces/default/configmaps/cm', 'admin')).code).to.equal(200);
    expect((await send(api, 'GET', '/api/v1/namespaces/default/configmaps/cm', 'admin')).code).to.equal(404);
  });
});
