import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder holding package.json), wherever the compiled file sits (dist/, dist-*). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('nbswarm: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export function repoPath(...parts: string[]): string {
  return join(repoRoot(), ...parts);
}
