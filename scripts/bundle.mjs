#!/usr/bin/env node
/**
 * Bundles the compiled CLI (tsc output) into one ES module, the file `nbswarm` runs:
 *   node scripts/bundle.mjs [DIST_DIR] [OUT_FILE]     (defaults: dist, dist/nbswarm.mjs)
 *
 * Why: @kubernetes/client-node loads every generated API and model (21 MB of JavaScript) when
 * KubeConfig is imported; bundled, only what the operator uses is loaded. Measured at start-up:
 * RSS 125 → 74 MB, V8 heap 44 → 24 MB — most of the operator's memory at 10,000 resources.
 * Native modules (better-sqlite3, and ssh2/cpu-features under dockerode) stay in node_modules.
 */
import { build } from 'esbuild';
import { resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const dist = resolve(process.argv[2] ?? 'dist');
const outfile = resolve(process.argv[3] ?? `${dist}/nbswarm.mjs`);
await build({
  entryPoints: [`${dist}/src/cli.js`],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['better-sqlite3', 'ssh2', 'cpu-features'],
  // The tsc output may sit outside the checkout (the operator image compiles into a temp dir).
  nodePaths: [fileURLToPath(new URL('../node_modules', import.meta.url))],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __nbswarmRequire } from 'node:module'; const require = __nbswarmRequire(import.meta.url);" },
  minifySyntax: true,
  legalComments: 'none',
  sourcemap: process.env.NBSWARM_BUNDLE_SOURCEMAP === '0' ? false : 'linked',
  logLevel: 'warning',
});
