/** A real SQLite store in a fresh temp dir, for unit tests of what the API server builds on its store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/apiserver/storage/sqlite.js';

/** History entries the store keeps (its compaction window): more than any of these tests writes. */
const HISTORY_WINDOW = 1000;

export interface TempStore {
  /** The temp dir, for other files a test keeps beside the store. */
  readonly dir: string;
  /** The open store (a new one after reopen()). */
  readonly storage: Store;
  /** Closes the store and opens its file again, as a restart of the server does. */
  reopen(): Promise<Store>;
  /** Closes the store and removes its dir. */
  remove(): Promise<void>;
}

/** Opens a store in a new temp dir named after `name`. */
export function openTempStore(name: string): TempStore {
  const dir = mkdtempSync(join(tmpdir(), `nbswarm-${name}-`));
  const file = join(dir, 'state.db');
  let storage = new Store(file, HISTORY_WINDOW);
  return {
    dir,
    get storage() {
      return storage;
    },
    async reopen() {
      await storage.close();
      storage = new Store(file, HISTORY_WINDOW);
      return storage;
    },
    async remove() {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
