/**
 * The SQLite schema and statements, shared by the main thread (reads) and the writer thread
 * (writes). Objects: one row per object. History: the last changes, for watches that resume from
 * an older resourceVersion. Meta: the newest resourceVersion and how far history was compacted.
 */
export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (gr, ns, name)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS history (rv INTEGER PRIMARY KEY, gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS history_gr ON history (gr, rv);
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
  INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 1), ('compacted', 0);
`;

/** Statements of the writer thread. */
export const WRITE_SQL = {
  insert: 'INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO NOTHING',
  upsert: 'INSERT INTO objects (gr, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gr, ns, name) DO UPDATE SET rv = excluded.rv, data = excluded.data',
  del: 'DELETE FROM objects WHERE gr = ? AND ns = ? AND name = ?',
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
  since: 'SELECT rv, gr, ns, name, type, data FROM history WHERE gr = ? AND rv > ? AND rv <= ? ORDER BY rv',
  meta: 'SELECT k, v FROM meta',
} as const;
