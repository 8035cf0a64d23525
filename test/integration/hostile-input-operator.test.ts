/**
 * 500 generated hostile NotebookServers and Secrets against the real API server and a real
 * operator on the real dockerd: each is refused with a 4xx naming the field, or accepted and then
 * Failed with a message naming what is wrong; the server and the operator keep working, and no
 * Docker object exists for any of them.
 */
import { expect } from 'chai';
import { GROUP, PLURAL, VERSION } from '../../src/api/types.js';
import { apiRequest } from '../helpers/apiserver.js';
import { cleanupPrefix, HTTPD, NS, setupEnv, waitReady, type Env } from './operator-harness.js';

const NBS = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
const SECRETS = `/api/v1/namespaces/${NS}/secrets`;

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  what: string;
  path: string;
  body: string;
  /** 'refused': a 4xx is the only right answer; 'failed': 201 then phase Failed; 'either': one or the other. */
  expect: 'refused' | 'failed' | 'either';
  /** Text the refusal or the status message must contain. */
  names: string;
}

const NASTY = ['\u0000', '\u001b[31m', '\u202e', '😀', '$(reboot)', '`id`', '; rm -rf /', '| nc 127.0.0.1 1', '../', '%2e%2e/', '\\\\', '\n', '"\''];

function generate(n: number, seed: number): Case[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const nasty = () => Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(NASTY)).join('x');
  const nbs = (name: string, spec: unknown, metadata: object = {}) =>
    JSON.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name, ...metadata }, spec });
  const user = () => `u${Math.floor(r() * 1e6)}`;
  const makers: ((i: number) => Case)[] = [
    (i) => ({ what: 'user of the wrong type', path: NBS, body: nbs(`h${i}`, { user: pick([5, true, [], {}, null]) }), expect: 'refused', names: 'spec.user' }),
    (i) => ({
      // Any other character is a valid JupyterHub name (escaped for Docker): a control character or "/" is not.
      what: 'user with control characters or "/"',
      path: NBS,
      body: nbs(`h${i}`, { user: `a${nasty()}${pick(['\u0000', '\u001b', '\u007f', '/'])}b` }),
      expect: 'refused',
      names: 'spec.user',
    }),
    (i) => ({
      what: 'path traversal in app.path',
      path: NBS,
      body: nbs(`h${i}`, { user: user(), mode: 'voila', app: { path: pick(['../../etc/passwd', '/etc/shadow', 'a/../../b', '..', 'x/..']) } }),
      expect: 'refused',
      names: 'spec.app.path',
    }),
    (i) => ({
      what: 'invalid env name',
      path: NBS,
      body: nbs(`h${i}`, { user: user(), env: [{ name: pick(['1BAD', 'A B', 'A=B', '', `X${nasty()}`]), value: 'v' }] }),
      expect: 'refused',
      names: 'spec.env[0].name',
    }),
    (i) => ({
      what: 'env of the wrong type',
      path: NBS,
      body: nbs(`h${i}`, { user: user(), env: pick(['PATH=/x', 5, { a: 1 }]) }),
      expect: 'refused',
      names: 'spec.env',
    }),
    (i) => ({
      what: 'resources of the wrong type',
      path: NBS,
      body: nbs(`h${i}`, { user: user(), mode: 'custom', command: HTTPD, resources: { cpu: pick([{}, [], 'lots', '-1', '1e999']) } }),
      expect: 'either',
      names: 'resources',
    }),
    (i) => ({ what: 'unknown mode', path: NBS, body: nbs(`h${i}`, { user: user(), mode: pick(['bash', 'root', nasty()]) }), expect: 'either', names: 'mode' }),
    (i) => ({
      what: 'huge args',
      path: NBS,
      body: nbs(`h${i}`, { user: user(), mode: 'custom', command: Array.from({ length: 40_000 }, () => 'x'.repeat(40)) }),
      expect: 'refused',
      names: '',
    }),
    (i) => {
      let deep: unknown = 'x';
      for (let d = 0; d < 150 + Math.floor(r() * 5000); d++) deep = [deep];
      return { what: 'deep value', path: NBS, body: nbs(`h${i}`, { user: user(), app: { args: deep } }), expect: 'refused', names: 'levels deep' };
    },
    (i) => ({
      what: 'metadata of the wrong type',
      path: NBS,
      body: nbs(`h${i}`, { user: user() }, pick([{ finalizers: 'abc' }, { labels: [1] }, { ownerReferences: 'zzz' }, { generation: 'x' }])),
      expect: 'refused',
      names: 'metadata.',
    }),
    (i) => ({
      what: 'name with traversal',
      path: NBS,
      body: nbs(pick(['../x', 'A', `a${nasty()}`, 'a'.repeat(300)]) + i, { user: user() }),
      expect: 'refused',
      names: 'metadata.name',
    }),
    (i) => ({
      what: 'ref to a missing Secret',
      path: NBS,
      body: nbs(`h${i}`, {
        user: user(),
        mode: 'custom',
        command: HTTPD,
        env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: `missing-${i}`, key: 'token' } } }],
      }),
      expect: 'failed',
      names: `missing-${i}`,
    }),
    (i) => ({
      what: 'Secret data not base64',
      path: SECRETS,
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `s${i}` }, data: { token: nasty() } }),
      expect: 'refused',
      names: 'data["token"]',
    }),
    (i) => ({
      what: 'Secret data of the wrong type',
      path: SECRETS,
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `s${i}` }, data: pick([[1], 'x', { a: 5 }]) }),
      expect: 'refused',
      names: 'data',
    }),
    (i) => ({
      what: 'Secret key with traversal',
      path: SECRETS,
      body: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `s${i}` },
        stringData: { [pick(['../etc', 'a/b', '..', `k${nasty()}`])]: 'v' },
      }),
      expect: 'refused',
      names: 'data[',
    }),
  ];
  return Array.from({ length: n }, (_, i) => makers[i % makers.length](i));
}

describe('hostile input: 500 generated NotebookServers and Secrets, real API server and operator', function () {
  this.timeout(600_000);
  let env: Env;
  before(async () => {
    env = await setupEnv('container');
  });
  after(async () => env?.close());

  it('refuses each with a 4xx naming the field or fails it with a clear message; nothing reaches Docker; both keep working', async () => {
    const cases = generate(500, 20261129);
    const rssBefore = process.memoryUsage().rss;
    const accepted: Case[] = [];
    const wrong: string[] = [];
    for (const c of cases) {
      const r = await apiRequest(env.api, 'POST', c.path, { raw: c.body });
      const said = `${r.body?.message ?? ''} ${(r.body?.details?.causes ?? []).map((x: { field?: string }) => x.field).join(' ')}`;
      if (c.expect === 'refused' || (c.expect === 'either' && r.status !== 201)) {
        if (r.status < 400 || r.status >= 500 || r.body?.kind !== 'Status' || !said.includes(c.names)) {
          wrong.push(`${c.what}: ${r.status} ${r.text.slice(0, 300)} for ${c.body.slice(0, 120)}`);
        }
      } else if (r.status !== 201) wrong.push(`${c.what}: expected 201, got ${r.status} ${r.text.slice(0, 300)}`);
      else accepted.push(c);
    }
    expect(wrong, wrong.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(accepted.length).to.be.greaterThan(20);

    // Every accepted one goes Failed, or waits for a Secret it names (Pending, as a Pod waits), with a
    // message naming what is wrong; none reaches Docker.
    const deadline = Date.now() + 180_000;
    const pending = new Set(accepted.map((c) => JSON.parse(c.body).metadata.name as string));
    const messages = new Map<string, string>();
    while (pending.size && Date.now() < deadline) {
      const list = await apiRequest(env.api, 'GET', NBS);
      for (const o of list.body.items as {
        metadata: { name: string };
        status?: { phase?: string; message?: string; conditions?: { type: string; reason?: string }[] };
      }[]) {
        const ready = o.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? '';
        const waiting = o.status?.phase === 'Pending' && (ready === 'SecretNotFound' || ready === 'SecretKeyMissing');
        if (pending.has(o.metadata.name) && (o.status?.phase === 'Failed' || waiting)) {
          pending.delete(o.metadata.name);
          messages.set(o.metadata.name, o.status?.message ?? '');
        }
      }
      await new Promise((ok) => setTimeout(ok, 500));
    }
    expect([...pending], 'servers that neither went Failed nor waited for a Secret').to.deep.equal([]);
    for (const c of accepted) {
      const name = JSON.parse(c.body).metadata.name as string;
      expect(messages.get(name), name).to.contain(c.names);
    }

    // Nothing of this run's prefix exists in Docker.
    const containers = (await env.docker.listContainers({ all: true })).filter((c) => c.Names.some((n) => n.replace(/^\//, '').startsWith(`${env.prefix}-`)));
    expect(containers.map((c) => c.Names[0])).to.deep.equal([]);

    // The server answers and the operator still converges a good server.
    expect((await apiRequest(env.api, 'GET', '/healthz', { token: null })).status).to.equal(200);
    await env.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NotebookServer',
        metadata: { name: 'good', namespace: NS },
        spec: { user: 'good', mode: 'custom', command: HTTPD },
      }),
    );
    await waitReady(env, 'good');
    const rssGrowthMiB = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    // The test process holds the API server, the operator and the client: report, and bound it loosely.
    process.stderr.write(`hostile input: ${cases.length} cases, ${accepted.length} accepted then Failed, RSS growth ${rssGrowthMiB.toFixed(0)} MiB\n`);
    expect(rssGrowthMiB).to.be.below(400);
    await cleanupPrefix(env.docker, env.prefix);
  });
});
