/**
 * The data directory holds every Secret (state.db), the tokens and the CA key: only the user the
 * server runs as may read it. `mkdir -p` or Docker's bind mount of a new host path leave a 0755
 * directory behind, and SQLite creates its files 0644 (less the umask), so modes are set here
 * rather than trusted.
 */
import { chmodSync, closeSync, existsSync, openSync, statSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';

/** Makes `dir` private (0700) when it is not; says so once. */
export function makeDirPrivate(dir: string, log: Logger): void {
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  chmodSync(dir, 0o700);
  log.info('data directory made private', { dir, was: mode.toString(8), now: '700' });
}

/** Makes an existing file private (0600) when it is not; returns whether it had to. */
export function makeFilePrivate(file: string): boolean {
  if (!existsSync(file)) return false;
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) === 0) return false;
  chmodSync(file, 0o600);
  return true;
}

/** Creates `file` empty and private unless it exists; an existing one is made private. */
export function ensurePrivateFile(file: string): void {
  if (!makeFilePrivate(file)) closeSync(openSync(file, 'a', 0o600));
}

/** Writes `file` with mode 0600, whatever mode an earlier version of it had. */
export function writePrivateFile(file: string, data: string): void {
  writeFileSync(file, data, { mode: 0o600 });
  chmodSync(file, 0o600);
}
