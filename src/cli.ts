#!/usr/bin/env node
/**
 * nbswarm — one binary: `up | serve | operator | kubeconfig | version`.
 * Each area registers its own commands so this file stays a table of contents.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { repoPath } from './paths.js';
import { registerApiServerCommands } from './apiserver/cli.js';
import { registerOperatorCommands } from './controller/cli.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerStatusCommand } from './commands/status.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerCompletionCommand } from './commands/completion.js';
import { keepYoungGenerationSmall } from './young-generation.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

const program = new Command();
program
  .name('nbswarm')
  .description('Run Jupyter notebook servers and dashboards on Docker Swarm from NotebookServer resources')
  .version(packageVersion(), '-V, --version');

program
  .command('version')
  .description('print the nbswarm version')
  .action(() => {
    process.stdout.write(`nbswarm ${packageVersion()} (node ${process.version})\n`);
  });

// `nbswarm logs NAME | head`: a closed pipe ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

// Before the command runs: the young generation must not have grown yet.
program.hook('preAction', (_program, command) => {
  if (command.name() === 'operator') keepYoungGenerationSmall();
});

registerApiServerCommands(program);
registerOperatorCommands(program);
registerStatusCommand(program);
registerLogsCommand(program);
registerDoctorCommand(program);
registerCompletionCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Commands print their own context-rich errors; this is the last line of defence: no stack traces.
  process.stderr.write(`nbswarm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
