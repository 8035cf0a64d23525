import { expect } from 'chai';
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachedRow, ObjectCache } from '../../src/apiserver/storage/cache.js';
import { AlreadyExistsError, Store, type StoreEvent } from '../../src/apiserver/storage/sqlite.js';
import { WRITER_THREAD_NAME } from '../../src/apiserver/storage/writer.js';
import type { KubeObject } from '../../src/apiserver/types.js';

const CM = '/configmaps';
const cm = (name: string, data: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'ns' },
  data,
});

describe('API server storage (SQLite, writer thread)', function () {
  let dir: string;
  let store: Store | undefined;
  const open = (window = 1000, synchronous: 'NORMAL' | 'FULL' = 'NORMAL') => (store = new Store(join(dir, 'state.db'), window, synchronous));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-store-'));
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows its own writes at once and tells watchers and waiters only after the commit', async () => {
    const s = open();
    const seen: string[] = [];
    s.addWatcher({ gr: CM, ns: '', send: (ev: StoreEvent) => seen.push(`${ev.type} ${ev.name} ${ev.rv}`) });
    const a = s.write('ADDED', CM, 'ns', 'a', cm('a'));
    s.write('ADDED', CM, 'ns', 'c', cm('c'));
    s.write('MODIFIED', CM, 'ns', 'a', cm('a', { k: 'v' }), a);
    expect(s.get(CM, 'ns', 'a')?.data).to.deep.equal({ k: 'v' });
    expect(() => s.write('ADDED', CM, 'ns', 'c', cm('c'))).to.throw(AlreadyExistsError);
    expect(s.pending).to.equal(true);
    expect(seen).to.deep.equal([]);
    const rv = s.currentRv;
    await s.settled();
    expect(s.committedRv).to.equal(rv);
    expect(seen).to.deep.equal([`ADDED a ${rv - 2}`, `ADDED c ${rv - 1}`, `MODIFIED a ${rv}`]);
    expect(s.pending).to.equal(false);
  });

  it('lists committed and pending objects in key order, without the pending deletes', async () => {
    const s = open();
    for (const n of ['b', 'd', 'f']) s.write('ADDED', CM, 'ns', n, cm(n));
    s.write('ADDED', CM, 'other', 'a', { ...cm('a'), metadata: { name: 'a', namespace: 'other' } });
    await s.settled();
    // Pending on top of what is committed: a new name between, one deleted, one changed.
    s.write('ADDED', CM, 'ns', 'c', cm('c'));
    s.write('DELETED', CM, 'ns', 'd', s.get(CM, 'ns', 'd')!);
    s.write('MODIFIED', CM, 'ns', 'f', cm('f', { x: '1' }));
    s.write('ADDED', CM, 'ns', 'a', cm('a'));
    const names = (ns: string | null, after?: [string, string]) => [...s.iterate(CM, ns, after)].map((o) => `${o.metadata.namespace}/${o.metadata.name}`);
    expect(names('ns')).to.deep.equal(['ns/a', 'ns/b', 'ns/c', 'ns/f']);
    expect(names(null)).to.deep.equal(['ns/a', 'ns/b', 'ns/c', 'ns/f', 'other/a']);
    expect(names(null, ['ns', 'b'])).to.deep.equal(['ns/c', 'ns/f', 'other/a']);
    expect(s.get(CM, 'ns', 'f')?.data).to.deep.equal({ x: '1' });
    expect(s.get(CM, 'ns', 'd')).to.equal(undefined);
    // Stopping early (a full page) leaves the connection free for the next read.
    for (const _ of s.iterateRows(CM, 'ns')) break;
    expect(s.hasAny(CM, 'ns')).to.equal(true);
    await s.settled();
    expect(names('ns')).to.deep.equal(['ns/a', 'ns/b', 'ns/c', 'ns/f']);
  });

  it('lists from its in-memory copy: commits keep it in step, pending writes are laid over it', async () => {
    const s = open();
    for (const n of ['b', 'd', 'f']) s.write('ADDED', CM, 'ns', n, cm(n, { v: n }));
    s.write('ADDED', CM, 'other', 'a', { ...cm('a'), metadata: { name: 'a', namespace: 'other' } });
    await s.settled();
    const rows = (ns: string | null, after?: [string, string]) =>
      [...s.listRows(CM, ns, after)].map((r) => `${r.ns}/${r.name}:${JSON.stringify((JSON.parse(r.data) as { data: unknown }).data)}`);
    const fromSqlite = (ns: string | null, after?: [string, string]) =>
      [...s.iterateRows(CM, ns, after)].map((r) => `${r.ns}/${r.name}:${JSON.stringify((JSON.parse(r.data) as { data: unknown }).data)}`);
    expect(s.listCache.kinds).to.deep.equal({});
    expect(rows('ns')).to.deep.equal(['ns/b:{"v":"b"}', 'ns/d:{"v":"d"}', 'ns/f:{"v":"f"}']);
    expect(s.listCache.kinds).to.deep.equal({ [CM]: 4 });
    // The cached text is the stored text, as bytes of its own.
    const cached = [...s.listRows(CM, 'ns')][0] as CachedRow;
    expect(cached).to.be.instanceOf(CachedRow);
    expect(cached.bytes.toString()).to.equal([...s.iterateRows(CM, 'ns')][0]!.data);
    expect(s.listCache.bytes).to.equal([...s.iterateRows(CM, null)].reduce((n, r) => n + Buffer.byteLength(r.data), 0));
    // Pending writes: a new name between, one deleted, one changed; a new namespace before the others.
    s.write('ADDED', CM, 'ns', 'c', cm('c', { v: 'c' }));
    s.write('DELETED', CM, 'ns', 'd', s.get(CM, 'ns', 'd')!);
    s.write('MODIFIED', CM, 'ns', 'f', cm('f', { v: 'f2' }));
    s.write('ADDED', CM, 'a-ns', 'z', { ...cm('z'), metadata: { name: 'z', namespace: 'a-ns' } });
    const want = ['ns/b:{"v":"b"}', 'ns/c:{"v":"c"}', 'ns/f:{"v":"f2"}'];
    expect(rows('ns')).to.deep.equal(want);
    expect(rows(null).map((r) => r.split(':')[0])).to.deep.equal(['a-ns/z', 'ns/b', 'ns/c', 'ns/f', 'other/a']);
    await s.settled();
    // Committed: the same from the copy as from SQLite, with cursors inside, before and after a namespace.
    expect(s.pending).to.equal(false);
    expect(rows('ns')).to.deep.equal(want);
    for (const [ns, after] of [
      [null, undefined],
      [null, ['ns', 'b']],
      [null, ['ns', 'zz']],
      ['ns', ['ns', 'c']],
      ['ns', ['a-ns', 'z']],
      ['other', ['ns', 'b']],
      ['none', undefined],
    ] as [string | null, [string, string] | undefined][])
      expect(rows(ns, after), `${ns} after ${String(after)}`).to.deep.equal(fromSqlite(ns, after));
    expect(s.listCache.kinds).to.deep.equal({ [CM]: 5 });
    // A kind never listed is not held.
    s.write('ADDED', '/secrets', 'ns', 's', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' } });
    await s.settled();
    expect(Object.keys(s.listCache.kinds)).to.deep.equal([CM]);
  });

  it("the list copy's load may see a commit before its acknowledgement; applying that one later never undoes a newer one", () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (gr, ns, name))');
    const put = db.prepare('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?)');
    put.run(CM, 'ns', 'a', 5, '{"v":"a5"}');
    put.run(CM, 'ns', 'b', 6, '{"v":"b6"}');
    const cache = new ObjectCache(db.prepare('SELECT ns, name, rv, CAST(data AS BLOB) AS data FROM objects WHERE gr = ? ORDER BY ns, name'));
    const texts = () => [...cache.rows(CM, null, ['', ''])].map((r) => `${r.name}@${r.rv}=${r.data}`);
    expect(texts()).to.deep.equal(['a@5={"v":"a5"}', 'b@6={"v":"b6"}']);
    // Acknowledgements of commits the load already saw (or older ones) change nothing.
    cache.committed(CM, 'ns', 'a', 4, '{"v":"a4"}');
    cache.committed(CM, 'ns', 'a', 5, '{"v":"a5"}');
    cache.committed(CM, 'ns', 'b', 3, null);
    expect(texts()).to.deep.equal(['a@5={"v":"a5"}', 'b@6={"v":"b6"}']);
    // Newer ones do, in key order; a kind not loaded is left alone.
    cache.committed(CM, 'ns', 'a', 7, '{"v":"é"}');
    cache.committed(CM, 'ns', 'b', 8, null);
    cache.committed(CM, 'ns', 'aa', 9, '{"v":"aa"}');
    cache.committed('/secrets', 'ns', 'x', 10, '{}');
    expect(texts()).to.deep.equal(['a@7={"v":"é"}', 'aa@9={"v":"aa"}']);
    expect(cache.bytes).to.equal(Buffer.byteLength('{"v":"é"}{"v":"aa"}'));
    expect(cache.has('/secrets')).to.equal(false);
    db.close();
  });

  it('keeps what it acknowledged across a reopen, with resourceVersions going on from there', async () => {
    const s = open(1000, 'FULL');
    s.write('ADDED', CM, 'ns', 'a', cm('a', { k: 'v' }));
    await s.settled();
    const rv = s.committedRv;
    await s.close();
    const again = open();
    expect(again.get(CM, 'ns', 'a')?.data).to.deep.equal({ k: 'v' });
    expect(again.currentRv).to.equal(rv);
    expect(again.write('ADDED', CM, 'ns', 'b', cm('b')).metadata.resourceVersion).to.equal(String(rv + 1));
  });

  it('commits on a thread of its own that /proc names, so `top -H` shows where commit time goes', async () => {
    const names = () => readdirSync('/proc/self/task').map((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim());
    const s = open();
    s.write('ADDED', CM, 'ns', 'a', cm('a'));
    await s.settled(); // the thread has run, so it has named itself
    expect(names()).to.include(WRITER_THREAD_NAME);
    await s.close();
    expect(names()).not.to.include(WRITER_THREAD_NAME);
  });

  it('moves the objects of a data dir from before the rowid table over, and goes on writing', async () => {
    const old = new Database(join(dir, 'state.db'));
    old.pragma('journal_mode = WAL');
    old.exec(`
      CREATE TABLE objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (gr, ns, name)) WITHOUT ROWID;
      CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT INTO meta (k, v) VALUES ('rv', 7), ('compacted', 0);
    `);
    const insert = old.prepare('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?)');
    for (const [n, rv] of [
      ['b', 6],
      ['a', 7],
    ] as const)
      insert.run(CM, 'ns', n, rv, JSON.stringify({ ...cm(n, { v: n }), metadata: { name: n, namespace: 'ns', resourceVersion: String(rv) } }));
    old.close();
    const s = open();
    expect([...s.iterate(CM, 'ns')].map((o) => [o.metadata.name, o.data])).to.deep.equal([
      ['a', { v: 'a' }],
      ['b', { v: 'b' }],
    ]);
    expect(() => s.write('ADDED', CM, 'ns', 'a', cm('a'))).to.throw(AlreadyExistsError);
    expect(s.write('ADDED', CM, 'ns', 'c', cm('c')).metadata.resourceVersion).to.equal('8');
    await s.settled();
    await s.close();
    const check = new Database(join(dir, 'state.db'), { readonly: true });
    const sql = (check.prepare("SELECT sql FROM sqlite_master WHERE name = 'objects'").get() as { sql: string }).sql;
    const names = (check.prepare('SELECT name FROM objects ORDER BY name').all() as { name: string }[]).map((r) => r.name);
    check.close();
    expect(sql).to.not.match(/WITHOUT ROWID/i);
    expect(names).to.deep.equal(['a', 'b', 'c']);
  });

  it('replays committed history and compacts it past the window', async () => {
    const s = open(10);
    const first = s.currentRv;
    for (let i = 0; i < 30; i++) s.write('ADDED', CM, 'ns', `o${i}`, cm(`o${i}`));
    await s.settled();
    expect(s.since(CM, first)).to.equal('expired');
    expect(s.compactedRv).to.be.greaterThan(first);
    const tail = s.since(CM, s.currentRv - 5);
    expect(tail).to.not.equal('expired');
    expect((tail as StoreEvent[]).map((e) => e.rv)).to.deep.equal([1, 2, 3, 4, 5].map((d) => s.currentRv - 5 + d));
  });

  it("replays every version's own text: a create's is written once (in its object's row), and a later write keeps the version it replaces", async () => {
    const s = open();
    const from = s.currentRv;
    const text = (d: string) => JSON.stringify(cm('x', { v: d }).data);
    // Versions of one object within one commit, then across commits, then deleted; another stays current.
    let x = s.write('ADDED', CM, 'ns', 'x', cm('x', { v: '1' }));
    x = s.write('MODIFIED', CM, 'ns', 'x', cm('x', { v: '2' }), x);
    s.write('ADDED', CM, 'ns', 'y', cm('y', { v: 'y1' }));
    await s.settled();
    x = s.write('MODIFIED', CM, 'ns', 'x', cm('x', { v: '3' }), x);
    await s.settled();
    const afterThree = s.currentRv;
    s.write('DELETED', CM, 'ns', 'x', x);
    await s.settled();
    const replay = s.since(CM, from) as StoreEvent[];
    expect(replay.map((e) => `${e.type} ${e.name} ${JSON.stringify(e.object.data)} ${e.object.metadata.resourceVersion}`)).to.deep.equal([
      `ADDED x ${text('1')} ${from + 1}`,
      `MODIFIED x ${text('2')} ${from + 2}`,
      `ADDED y ${JSON.stringify({ v: 'y1' })} ${from + 3}`,
      `MODIFIED x ${text('3')} ${from + 4}`,
      `DELETED x ${text('3')} ${from + 5}`,
    ]);
    // The same rows page by page, as a watch replays them.
    const page = (after: number) => s.historyPage(CM, after, s.committedRv, 2) as { rv: number; data: string }[];
    expect([...page(from), ...page(from + 2), ...page(from + 4)].map((r) => [r.rv, JSON.parse(r.data).data])).to.deep.equal([
      [from + 1, { v: '1' }],
      [from + 2, { v: '2' }],
      [from + 3, { v: 'y1' }],
      [from + 4, { v: '3' }],
      [from + 5, { v: '3' }],
    ]);
    expect(afterThree).to.equal(from + 4);
    await s.close();
    store = undefined;
    // On disk: only the current version's row (y's create) has no text of its own; a replaced or deleted one has it.
    const check = new Database(join(dir, 'state.db'), { readonly: true });
    const rows = check.prepare('SELECT rv, type, length(data) AS bytes FROM history WHERE rv > ? ORDER BY rv').all(from) as {
      rv: number;
      type: string;
      bytes: number;
    }[];
    check.close();
    expect(rows.map((r) => [r.rv - from, r.type, r.bytes > 0])).to.deep.equal([
      [1, 'ADDED', true],
      [2, 'MODIFIED', true],
      [3, 'ADDED', false],
      [4, 'MODIFIED', true],
      [5, 'DELETED', true],
    ]);
  });

  it('replays history rows written before rows could be left empty (each holding its own text)', async () => {
    let s = open();
    const from = s.currentRv;
    s.write('ADDED', CM, 'ns', 'old', cm('old', { v: 'kept' }));
    await s.close();
    // What an older server wrote: the text in the history row as well.
    const db = new Database(join(dir, 'state.db'));
    db.prepare("UPDATE history SET data = (SELECT data FROM objects WHERE name = 'old') WHERE rv = ?").run(from + 1);
    db.close();
    s = open();
    const x = s.write('MODIFIED', CM, 'ns', 'old', cm('old', { v: 'new' }), s.get(CM, 'ns', 'old'));
    expect(x.metadata.resourceVersion).to.equal(String(from + 2));
    await s.settled();
    expect((s.since(CM, from) as StoreEvent[]).map((e) => e.object.data)).to.deep.equal([{ v: 'kept' }, { v: 'new' }]);
  });

  it('a failed commit fails every write made on top of it and the view goes back to what is committed', async () => {
    const s = open();
    s.write('ADDED', CM, 'ns', 'kept', cm('kept'));
    await s.settled();
    const committed = s.committedRv;
    expect([...s.listRows(CM, 'ns')].map((r) => r.name)).to.deep.equal(['kept']);
    // Another connection takes the key between the server's check and the writer's insert.
    s.write('ADDED', CM, 'ns', 'clash', cm('clash'));
    const other = new Database(join(dir, 'state.db'));
    other.prepare('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?)').run(CM, 'ns', 'clash', 999, '{}');
    other.close();
    const failures: string[] = [];
    s.afterCommit(
      () => failures.push('acknowledged'),
      (e) => failures.push(e.message),
    );
    const later = new Promise<void>((resolve) =>
      setImmediate(() => {
        s.write('ADDED', CM, 'ns', 'later', cm('later'));
        s.afterCommit(
          () => failures.push('later acknowledged'),
          () => failures.push('later failed'),
        );
        resolve();
      }),
    );
    await later;
    await s.settled().catch(() => undefined);
    expect(failures[0]).to.match(/exists in storage but not in the server's view/);
    expect(failures).to.include('later failed');
    expect(s.currentRv).to.equal(committed);
    expect(s.get(CM, 'ns', 'later')).to.equal(undefined);
    // The next write goes through.
    s.write('ADDED', CM, 'ns', 'after', cm('after'));
    await s.settled();
    expect(s.committedRv).to.equal(committed + 1);
    expect(s.get(CM, 'ns', 'after')).to.not.equal(undefined);
    // Lists read the file again: the row the other connection put there, what was acknowledged, not what failed.
    expect([...s.listRows(CM, 'ns')].map((r) => r.name)).to.deep.equal(['after', 'clash', 'kept']);
  });
});
