/**
 * The writer thread: it owns the write connection, so a commit — and with synchronous=FULL its
 * fsync — never holds up the event loop that parses requests. The main thread sends each group of
 * writes it has decided on; the writer commits whatever groups are waiting in one transaction and
 * says which group it has committed up to. It never decides anything: conflicts, resourceVersions
 * and already-exists are settled on the main thread, which knows every write in flight.
 */
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { WRITE_SQL } from './sql.js';

/** Row fields of a commit message, flattened: type, gr, ns, name, rv, data, then the next row. */
export const ROW_FIELDS = 6;

export interface CommitMessage {
  op: 'commit';
  /** Bumped by the main thread after a failure: the writer drops what was sent before it. */
  epoch: number;
  seq: number;
  rows: (string | number)[];
  /** The newest resourceVersion in the group. */
  rv: number;
  /** Drop history up to this resourceVersion in the same transaction. */
  compactUpTo?: number;
}

type ToWriter = CommitMessage | { op: 'close' };

export type FromWriter = { op: 'committed'; seq: number } | { op: 'failed'; seq: number; error: string } | { op: 'closed' };

interface WriterData {
  file: string;
  synchronous: 'NORMAL' | 'FULL';
  /** A module URL better-sqlite3 resolves from (node_modules beside the code, bundled or not). */
  requireFrom: string;
  sql: typeof WRITE_SQL;
  threadName: string;
}

/** What the writer thread is called in /proc (at most 15 bytes). */
export const WRITER_THREAD_NAME = 'sqlite-writer';

/**
 * The thread's body. It runs from its source text (an eval'd worker), so that the bundled
 * `nbswarm` needs no second file: it may use nothing from outside itself. What it needs comes in
 * workerData; modules come from process.getBuiltinModule and a require made from a path.
 */
function writerThread(): void {
  const threads = process.getBuiltinModule('node:worker_threads');
  const data = threads.workerData as WriterData;
  const Database = process.getBuiltinModule('node:module').createRequire(data.requireFrom)('better-sqlite3') as typeof BetterSqlite3;
  const port = threads.parentPort!;
  try {
    // The thread's name in `top -H`, `ps -L` and /proc (Linux): not `node` like every other thread.
    process.getBuiltinModule('node:fs').writeFileSync('/proc/thread-self/comm', data.threadName);
  } catch {
    // not Linux, or /proc is not mounted: the name is only for people looking
  }
  const db = new Database(data.file);
  db.pragma(`synchronous = ${data.synchronous}`);
  db.pragma('busy_timeout = 5000');
  // Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: fewer, larger checkpoints cost less
  // per write. The WAL is cut back to 64 MB after one, so a burst leaves no huge file behind.
  db.pragma('wal_autocheckpoint = 10000');
  db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
  const st = {
    insert: db.prepare(data.sql.insert),
    upsert: db.prepare(data.sql.upsert),
    del: db.prepare(data.sql.del),
    fillHistory: db.prepare(data.sql.fillHistory),
    hist: db.prepare(data.sql.hist),
    setMeta: db.prepare(data.sql.setMeta),
    compact: db.prepare(data.sql.compact),
  };
  let failedEpoch = -1;
  const apply = (m: CommitMessage, now: number) => {
    const r = m.rows;
    for (let i = 0; i < r.length; i += 6 /* ROW_FIELDS */) {
      const type = r[i] as string,
        gr = r[i + 1],
        ns = r[i + 2],
        name = r[i + 3],
        rv = r[i + 4],
        text = r[i + 5];
      // The version being replaced keeps its text in history (its row held none while it was current).
      if (type !== 'ADDED') st.fillHistory.run(gr, ns, name);
      if (type === 'DELETED') st.del.run(gr, ns, name);
      else if (type === 'MODIFIED') st.upsert.run(gr, ns, name, rv, text);
      else if (st.insert.run(gr, ns, name, rv, text).changes === 0)
        throw new Error(`${String(gr)} ${String(ns)}/${String(name)} exists in storage but not in the server's view`);
      // A deleted object's last state lives only in history; a current version's text is its object's row.
      st.hist.run(rv, gr, ns, name, type, type === 'DELETED' ? text : '', now);
    }
    st.setMeta.run(m.rv, 'rv');
    if (m.compactUpTo !== undefined) {
      st.compact.run(m.compactUpTo);
      st.setMeta.run(m.compactUpTo, 'compacted');
    }
  };
  port.on('message', (first: ToWriter) => {
    // Everything that arrived while the last commit ran goes into this one (one fsync for all).
    const messages = [first];
    for (let m = threads.receiveMessageOnPort(port); m; m = threads.receiveMessageOnPort(port)) messages.push(m.message as ToWriter);
    const batch: CommitMessage[] = [];
    let close = false;
    for (const m of messages) {
      if (m.op === 'close') close = true;
      else if (m.epoch <= failedEpoch) port.postMessage({ op: 'failed', seq: m.seq, error: 'an earlier commit failed' } satisfies FromWriter);
      else batch.push(m);
    }
    if (batch.length) {
      const last = batch[batch.length - 1];
      try {
        db.exec('BEGIN IMMEDIATE');
        const now = Date.now();
        for (const m of batch) apply(m, now);
        db.exec('COMMIT');
        port.postMessage({ op: 'committed', seq: last.seq } satisfies FromWriter);
      } catch (e) {
        try {
          if (db.inTransaction) db.exec('ROLLBACK');
        } catch {
          // the rollback failed too; the first error is the one to report
        }
        failedEpoch = Math.max(...batch.map((m) => m.epoch));
        port.postMessage({ op: 'failed', seq: last.seq, error: String((e as Error)?.message ?? e) } satisfies FromWriter);
      }
    }
    if (close) {
      db.close();
      port.postMessage({ op: 'closed' } satisfies FromWriter);
      port.close();
    }
  });
}

/** The main thread's handle on the writer thread. */
export class WriterThread {
  private readonly worker: Worker;
  private closing: Promise<void> | null = null;
  private exited = false;

  /**
   * `onReply` gets every reply in order; `onDeath` is called once if the thread dies (it cannot
   * open the database, or crashes) — every write after that fails.
   */
  constructor(file: string, synchronous: 'NORMAL' | 'FULL', onReply: (m: FromWriter) => void, onDeath: (e: Error) => void) {
    const workerData: WriterData = { file, synchronous, requireFrom: import.meta.url, sql: WRITE_SQL, threadName: WRITER_THREAD_NAME };
    this.worker = new Worker(`(${writerThread.toString()})()`, { eval: true, workerData, name: 'nbswarm-sqlite-writer' });
    let dead = false;
    const die = (e: Error) => {
      if (dead) return;
      dead = true;
      onDeath(e);
    };
    this.worker.on('message', onReply);
    this.worker.on('error', (e) => die(e));
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (!this.closing) die(new Error(`the SQLite writer thread exited with code ${code}`));
    });
  }

  send(m: CommitMessage): void {
    this.worker.postMessage(m satisfies ToWriter);
  }

  /** Asks the thread to finish what it was sent and close its connection; resolves when it has exited. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ op: 'close' } satisfies ToWriter);
    });
    return this.closing;
  }
}
