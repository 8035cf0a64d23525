/**
 * Writes crds/notebookserver.yaml from the schema, or with --check fails when it is out of date.
 *   node dist/src/api/gen-crd.js [--check] [--out FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { repoPath } from '../paths.js';
import { notebookServerCRD } from './crd.js';

export const CRD_FILE = 'crds/notebookserver.yaml';

const HEADER = [
  '# GENERATED FILE - do not edit by hand.',
  '# Source: src/api/schema.ts (NotebookServer schema) and src/api/crd.ts.',
  '# Regenerate: npm run build && node dist/src/api/gen-crd.js   (check: --check)',
].join('\n');

/** The exact text of crds/notebookserver.yaml. */
export function renderCrdYaml(): string {
  return HEADER + '\n' + YAML.stringify(notebookServerCRD(), { lineWidth: 0, aliasDuplicateObjects: false });
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const outIdx = argv.indexOf('--out');
  const file = outIdx >= 0 ? argv[outIdx + 1]! : repoPath(CRD_FILE);
  const text = renderCrdYaml();
  if (check) {
    let current = '';
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      // a missing file is simply out of date
    }
    if (current !== text) {
      process.stderr.write(`${file} is out of date with src/api/schema.ts; run: node dist/src/api/gen-crd.js\n`);
      return 1;
    }
    process.stdout.write(`${file} is up to date\n`);
    return 0;
  }
  writeFileSync(file, text);
  process.stdout.write(`wrote ${file}\n`);
  return 0;
}

const invoked = process.argv[1] ? realpathSync(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
