import { expect } from 'chai';
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommit, type Group } from '../../src/apiserver/storage/group-commit.js';
import { openDatabase } from '../../src/apiserver/storage/open.js';
import { ROW_FIELDS } from '../../src/apiserver/storage/writer.js';

const CM = '/configmaps';

describe('API server group commit (real writer thread and SQLite file)', function () {
  let dir: string;
  let file: string;
  let commits: GroupCommit | undefined;
  /** What the pipeline did, in order. */
  const log: string[] = [];
  /** The newest resourceVersion handed out, as the store keeps it. */
  let rv: number;
  const names = (g: Group) => g.rows.filter((_, i) => i % ROW_FIELDS === 3).join(',');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nbswarm-group-commit-'));
    file = join(dir, 'state.db');
    openDatabase(file).close();
    log.length = 0;
    rv = 1;
  });
  afterEach(async () => {
    await commits?.close();
    commits = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (window: number) =>
    (commits = new GroupCommit(
      file,
      'NORMAL',
      window,
      { rv: 1, compacted: 0 },
      {
        committed: (g) => log.push(`committed ${names(g)}`),
        failed: () => log.push('view rolled back'),
      },
    ));
  /** Writes objects `names` in this turn's group, and waits for them as a caller does. */
  const write = (c: GroupCommit, ...names: string[]) => {
    for (const name of names) {
      const g = c.begin(rv);
      g.rows.push('ADDED', CM, 'ns', name, ++rv, '{}');
      g.rv = rv;
    }
    c.afterCommit(
      () => log.push(`done ${names.join(',')}`),
      (e) => log.push(`failed ${names.join(',')}: ${e.message}`),
    );
  };
  /** After the group of this turn is handed over. */
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const stored = () => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare('SELECT name FROM objects ORDER BY name').all() as { name: string }[]).map((r) => r.name);
    } finally {
      db.close();
    }
  };

  /**
   * Transactions committed to the write-ahead log since it was last reset: its frames of the
   * current salt that end a commit (a non-zero database size in the frame header, per SQLite's
   * WAL file format).
   */
  const walCommits = () => {
    const wal = `${file}-wal`;
    if (!existsSync(wal)) return 0;
    const b = readFileSync(wal);
    if (b.length < 32) return 0;
    const pageSize = b.readUInt32BE(8);
    let commits = 0;
    for (let at = 32; at + 24 + pageSize <= b.length; at += 24 + pageSize) {
      if (b.readUInt32BE(at + 8) !== b.readUInt32BE(16) || b.readUInt32BE(at + 12) !== b.readUInt32BE(20)) break;
      if (b.readUInt32BE(at + 4) !== 0) commits++;
    }
    return commits;
  };

  it('groups handed over while the writer commits wait for it and go in one transaction; each lands in order, before its callbacks', async () => {
    const c = start(1000);
    // The writer thread has started (it would otherwise find a, b and c queued together).
    write(c, 'first');
    await c.settled();
    log.length = 0;
    const before = walCommits();
    // Another connection holds the write lock: the writer's commit of a waits for it.
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE');
    write(c, 'a');
    await nextTurn();
    // Time for the idle writer to take a (a wake-up takes microseconds) before b and c arrive.
    await new Promise((resolve) => setTimeout(resolve, 200));
    write(c, 'b');
    await nextTurn();
    write(c, 'c');
    await nextTurn();
    expect(c.pending).to.equal(true);
    other.exec('COMMIT');
    other.close();
    await c.settled();
    expect(log).to.deep.equal(['committed a', 'done a', 'committed b', 'done b', 'committed c', 'done c']);
    // a alone (the writer was waiting for the lock with it), then b and c together: one fsync for both.
    expect(walCommits() - before).to.equal(2);
    expect(c.committedRv).to.equal(rv);
    expect(c.pending).to.equal(false);
    expect(stored()).to.deep.equal(['a', 'b', 'c', 'first']);
  });

  it('a failed commit fails every group after it, puts the compaction mark back, and the next group commits', async () => {
    const c = start(4);
    write(c, 'kept');
    await c.settled();
    const committed = c.committedRv;
    log.length = 0;
    // Another connection takes a key between the decision and the writer's insert, and holds the
    // write lock so that the next group is waiting behind the one that fails.
    const other = new Database(file);
    other.prepare('INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?)').run(CM, 'ns', 'clash', 999, '{}');
    other.exec('BEGIN IMMEDIATE');
    write(c, 'x1', 'x2', 'x3', 'x4', 'clash');
    await nextTurn();
    // Past the window: this commit also drops old history, and history before it is gone already.
    expect(c.compactedRv).to.equal(rv - 4);
    write(c, 'later');
    await nextTurn();
    other.exec('COMMIT');
    other.close();
    await c.settled().catch(() => undefined);
    const error = "/configmaps ns/clash exists in storage but not in the server's view";
    expect(log).to.deep.equal(['view rolled back', `failed x1,x2,x3,x4,clash: ${error}`, `failed later: ${error}`]);
    expect(c.committedRv).to.equal(committed);
    expect(c.compactedRv).to.equal(0);
    expect(c.pending).to.equal(false);

    log.length = 0;
    rv = c.committedRv;
    write(c, 'next');
    await c.settled();
    expect(log).to.deep.equal(['committed next', 'done next']);
    expect(c.committedRv).to.equal(committed + 1);
    expect(stored()).to.deep.equal(['clash', 'kept', 'next']);
  });
});
