import type { Database } from 'better-sqlite3';

/**
 * The SQLite schema and statements, shared by the main thread (reads) and the writer thread
 * (writes). Objects: one row per object. History: the last changes, for watches that resume from
 * an older resourceVersion. Meta: the newest resourceVersion and how far history was compacted.
 *
 * A history row of the version an object is at now holds no text of its own (''): the
 * text is the object's row. The write that replaces or deletes that version fills the row in first,
 * in the same transaction, so in every snapshot a row is either filled or its object is still at
 * its resourceVersion. A create writes its text once, not twice: 10,000 creates of ~1 KB leave a
 * 14.6 MiB file instead of 27.1, and the writer thread's CPU per create goes from 0.054 to 0.048 ms
 * (bench/apiserver, synchronous FULL). Rows written before this all hold their text, which the
 * reads take as it is.
 *
 * Objects is a rowid table with a unique key, not a WITHOUT ROWID table: SQLite keeps WITHOUT
 * ROWID rows inside the key's B-tree, which suits rows under ~1/20 of a page; objects of ~1 KB
 * made each insert cost ~35 µs of CPU against ~17 µs now (measured, 32 inserts per commit).
 */
const OBJECTS =
  'CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (gr, ns, name))';

export const SCHEMA = `
  ${OBJECTS};
  CREATE TABLE IF NOT EXISTS history (rv INTEGER PRIMARY KEY, gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS history_gr ON history (gr, rv);
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
  INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 1), ('compacted', 0);
`;

/** A history row's text: its own, or its object's while the object is at the row's version. */
const HISTORY_TEXT = `CASE WHEN h.data = '' AND o.rv = h.rv THEN o.data ELSE h.data END`;
const HISTORY_JOIN = 'history h LEFT JOIN objects o ON o.gr = h.gr AND o.ns = h.ns AND o.name = h.name';

/** Statements of the writer thread. */
export const WRITE_SQL = {
  insert: 'INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO NOTHING',
  upsert: 'INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO UPDATE SET rv = excluded.rv, data = excluded.data',
  del: 'DELETE FROM objects WHERE gr = ? AND ns = ? AND name = ?',
  /** Before an object's version is replaced or deleted: its history row gets the text it had. */
  fillHistory: `UPDATE history SET data = o.data FROM objects o WHERE o.gr = ? AND o.ns = ? AND o.name = ? AND history.rv = o.rv AND history.data = ''`,
  hist: 'INSERT INTO history (rv, gr, ns, name, type, data, ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
  setMeta: 'UPDATE meta SET v = ? WHERE k = ?',
  compact: 'DELETE FROM history WHERE rv <= ?',
} as const;

export type WriteStatement = keyof typeof WRITE_SQL;

/** Statements of the main thread. */
export const READ_SQL = {
  get: 'SELECT data FROM objects WHERE gr = ? AND ns = ? AND name = ?',
  listAll: 'SELECT ns, name, data FROM objects WHERE gr = ? AND (ns > ? OR (ns = ? AND name > ?)) ORDER BY ns, name',
  listNs: 'SELECT ns, name, data FROM objects WHERE gr = ? AND ns = ? AND name > ? ORDER BY name',
  /** Every object of a kind for the list cache: the text as a BLOB is a Buffer of its UTF-8 bytes, never a string. */
  scanKind: 'SELECT ns, name, rv, CAST(data AS BLOB) AS data FROM objects WHERE gr = ? ORDER BY ns, name',
  since: `SELECT h.rv, h.gr, h.ns, h.name, h.type, ${HISTORY_TEXT} AS data FROM ${HISTORY_JOIN} WHERE h.gr = ? AND h.rv > ? AND h.rv <= ? ORDER BY h.rv`,
  historyPage: `SELECT h.rv, h.ns, h.name, h.type, ${HISTORY_TEXT} AS data FROM ${HISTORY_JOIN} WHERE h.gr = ? AND h.rv > ? AND h.rv <= ? ORDER BY h.rv LIMIT ?`,
  meta: 'SELECT k, v FROM meta',
} as const;

/** Data dirs from before the objects table was a rowid table: move its rows over, in one transaction. */
export function migrate(db: Database): void {
  const table = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'objects'").get() as { sql: string } | undefined;
  if (!table || !/WITHOUT\s+ROWID/i.test(table.sql)) return;
  db.transaction(() => {
    db.exec('ALTER TABLE objects RENAME TO objects_without_rowid');
    db.exec(OBJECTS);
    db.exec('INSERT INTO objects (gr, ns, name, rv, data) SELECT gr, ns, name, rv, data FROM objects_without_rowid ORDER BY gr, ns, name');
    db.exec('DROP TABLE objects_without_rowid');
  })();
}
