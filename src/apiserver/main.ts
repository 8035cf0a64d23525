#!/usr/bin/env node
/** Standalone entry for the API server (`node dist/src/apiserver/main.js serve ...`), used by tests until src/cli.ts wires it in. */
import { Command } from 'commander';
import { registerApiServerCommands } from './cli.js';

const program = new Command('nbswarm-apiserver');
registerApiServerCommands(program);
await program.parseAsync(process.argv).catch((err: unknown) => {
  // As the nbswarm CLI does: one line naming what failed, never a stack trace.
  process.stderr.write(`nbswarm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
