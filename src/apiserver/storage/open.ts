/** Opening the store's SQLite file: private to this user, whole, and at the current schema. */
import Database from 'better-sqlite3';
import type { Database as DB } from 'better-sqlite3';
import { ensurePrivateFile, makeFilePrivate } from '../files.js';
import { migrate, SCHEMA } from './sql.js';

/** The store's file cannot be used: the server refuses to start rather than run on a damaged or empty store. */
export class StorageOpenError extends Error {}

/**
 * Opens (or creates) the database, private to this user (its -wal and -shm files take its mode),
 * and checks it is a whole nbswarm store: a file that is not SQLite, or whose pages are damaged,
 * is refused with its name and what to do.
 */
export function openDatabase(file: string): DB {
  let db: DB | undefined;
  try {
    ensurePrivateFile(file);
    for (const f of [`${file}-wal`, `${file}-shm`]) makeFilePrivate(f);
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    // Every page's structure, without the cost of cross-checking indexes (~30 ms per 10,000 objects).
    const check = String(db.pragma('quick_check', { simple: true }));
    if (check !== 'ok') throw new Error(`SQLite's quick_check found damage: ${check}`);
    migrate(db);
    db.exec(SCHEMA);
    return db;
  } catch (e) {
    try {
      db?.close();
    } catch {
      // the first error is the one to report
    }
    throw new StorageOpenError(
      `cannot use the database ${file}: ${(e as Error).message}. The server does not start on a damaged store ` +
        '(hint: restore the file from a backup, or move it away together with its -wal and -shm files to start with an empty one)',
    );
  }
}
