#!/usr/bin/env node
/**
 * Bundles the compiled CLI (tsc output) into one ES module, the file `nbswarm` runs:
 *   node scripts/bundle.mjs [DIST_DIR] [OUT_FILE]     (defaults: dist, dist/nbswarm.mjs)
 * (plus OUT_FILE's chunks in nbswarm-chunks/ beside it: code that only some commands load)
 *
 * Why: @kubernetes/client-node loads every generated API and model (21 MB of JavaScript) when
 * KubeConfig is imported; bundled, only what the operator uses is loaded. Measured: an idle
 * `nbswarm operator` 126 → 99 MB resident (bench P4's operatorRssIdleMB).
 * Native modules (better-sqlite3, and ssh2/cpu-features under dockerode) stay in node_modules.
 *
 * V8 keeps the source of every loaded module in memory (functions compile lazily from it), one byte
 * a character only while all of it is ASCII: comments (`§`, `—`) made the 5 MB bundle a 10 MB
 * two-byte string. So whitespace and comments are minified away (identifiers are kept: stack
 * traces and heap snapshots stay readable; the source map maps back) and the output must be
 * ASCII. Measured: `nbswarm operator --help` 99 → 88 MB resident, the running operator ~14 MB less.
 */
import { build } from 'esbuild';
import { basename, dirname, join, resolve } from 'node:path';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const dist = resolve(process.argv[2] ?? 'dist');
const outfile = resolve(process.argv[3] ?? `${dist}/nbswarm.mjs`);
const outdir = dirname(outfile);
const entry = basename(outfile, '.mjs');
// Code only some commands need (the API server for up/serve) goes into chunks loaded on first use.
const chunks = `${entry}-chunks`;
rmSync(join(outdir, chunks), { recursive: true, force: true });
await build({
  entryPoints: { [entry]: `${dist}/src/cli.js` },
  outdir,
  entryNames: '[name]',
  chunkNames: `${chunks}/[name]-[hash]`,
  outExtension: { '.js': '.mjs' },
  splitting: true,
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
  minifyWhitespace: true,
  charset: 'ascii',
  legalComments: 'none',
  sourcemap: process.env.NBSWARM_BUNDLE_SOURCEMAP === '0' ? false : 'linked',
  logLevel: 'warning',
});

// esbuild escapes what it can; a raw template literal (String.raw) it must leave as written.
const chunkFiles = existsSync(join(outdir, chunks)) ? readdirSync(join(outdir, chunks)).map((f) => join(outdir, chunks, f)) : [];
for (const file of [outfile, ...chunkFiles]) {
  if (!file.endsWith('.mjs')) continue;
  const text = readFileSync(file, 'latin1');
  const at = text.search(/[\u0080-\uffff]/);
  if (at >= 0) {
    process.stderr.write(
      `bundle: ${file} holds a non-ASCII character near ${JSON.stringify(text.slice(Math.max(0, at - 60), at + 20))}; write it as an escape (\\uXXXX)\n`,
    );
    process.exit(1);
  }
}
