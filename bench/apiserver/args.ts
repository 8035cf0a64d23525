/**
 * The command lines of the API server's benches (run.ts, attacks.ts), as the bench runner's
 * (bench/args.ts): unknown options, stray arguments, unknown attack names and sizes that are not
 * whole numbers are refused before a server starts, so a typo (`--synchronus FULL`) never yields a
 * run that measured something else.
 */
import { Command, Option } from 'commander';
import { addSizeOptions, knownNames, resolveSizes, type SizeOption } from '../lib/argv.js';
import { DEFAULT_SERVER_MAIN } from '../lib/attacks.js';

/** The API server bench's options, its sizes resolved (`--quick` changes their defaults). */
export interface ApiServerBenchArgs {
  quick: boolean;
  objects: number;
  concurrency: number;
  warmup: number;
  watchers: number;
  updates: number;
  paced: number;
  synchronous: 'NORMAL' | 'FULL';
  stopAfter: StopAfter;
  serverMain: string;
}

/** The last phase a run goes through: the HTTP/2 creates alone, every create phase, or everything (list and watch too). */
export const STOP_AFTER = ['http2-creates', 'creates', 'all'] as const;
export type StopAfter = (typeof STOP_AFTER)[number];

type SizeKey = 'objects' | 'concurrency' | 'warmup' | 'watchers' | 'updates' | 'paced';

const SIZES: readonly SizeOption<SizeKey>[] = [
  { flags: '--objects <n>', key: 'objects', description: 'NotebookServers created in each create phase', full: 10_000, quick: 3000, min: 1 },
  { flags: '--concurrency <n>', key: 'concurrency', description: 'requests in flight', full: 32, quick: 32, min: 1 },
  { flags: '--warmup <n>', key: 'warmup', description: 'untimed creates before each create phase', full: 1000, quick: 1000, min: 0 },
  { flags: '--watchers <n>', key: 'watchers', description: 'watchers the updates fan out to', full: 100, quick: 20, min: 1 },
  { flags: '--updates <n>', key: 'updates', description: 'updates sent at once to the watchers', full: 1000, quick: 300, min: 1 },
  { flags: '--paced <n>', key: 'paced', description: 'updates sent one at a time after them', full: 100, quick: 20, min: 1 },
];

/** A fresh definition of run.ts's command line (tests give it exitOverride/configureOutput). */
export function apiServerBenchProgram(): Command {
  const program = new Command('node dist/bench/apiserver/run.js')
    .description('API server creates (HTTP/2, HTTP/1.1, and a Node server that only echoes), a list, and a watch fan-out; one JSON document on stdout.')
    .allowExcessArguments(false)
    .showHelpAfterError('(--help lists every option with its default)')
    .addOption(new Option('--quick', 'smaller sizes (the "--quick" defaults below)').default(false))
    .addOption(new Option('--synchronous <mode>', "the server's SQLite synchronous setting").choices(['NORMAL', 'FULL']).default('NORMAL'))
    .addOption(
      new Option('--stop-after <phase>', "the last phase: http2-creates (P6's paired rounds), creates (HTTP/2, HTTP/1.1, the echo server), all")
        .choices([...STOP_AFTER])
        .default('all'),
    )
    .addOption(new Option('--server-main <file>', "another build's src/apiserver/main.js, run with this client").default(DEFAULT_SERVER_MAIN, "this build's"));
  return addSizeOptions(program, SIZES);
}

/** Parses user arguments (process.argv.slice(2)); errors and --help go through commander (printed and exiting, or thrown with exitOverride). */
export function parseApiServerBenchArgs(argv: readonly string[], program: Command = apiServerBenchProgram()): ApiServerBenchArgs {
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<Record<string, unknown>>();
  const quick = opts.quick === true;
  return {
    quick,
    ...resolveSizes(opts, SIZES, quick),
    synchronous: opts.synchronous as 'NORMAL' | 'FULL',
    stopAfter: opts.stopAfter as StopAfter,
    serverMain: opts.serverMain as string,
  };
}

/** attacks.ts's options: which attacks (all when unset), the server to attack and extra flags for its `serve`. */
export interface AttacksArgs {
  scenarios?: string[];
  serverMain: string;
  serveArgs: string;
}

/** A fresh definition of attacks.ts's command line, knowing the attacks by name. */
export function attacksProgram(known: readonly string[]): Command {
  return new Command('node dist/bench/apiserver/attacks.js')
    .description(
      "Resource attacks on the API server, each against a fresh server: its RSS, /healthz's latency, and what it answered; one JSON document on stdout.",
    )
    .allowExcessArguments(false)
    .showHelpAfterError('(--help lists every option)')
    .addOption(new Option('--scenarios <list>', `comma-separated attacks to run (default: all: ${known.join(',')})`).argParser(knownNames(known, 'attack')))
    .addOption(new Option('--server-main <file>', "another build's src/apiserver/main.js").default(DEFAULT_SERVER_MAIN, "this build's"))
    .addOption(new Option('--serve-args <words>', "extra flags for the server's serve command, space-separated").default(''));
}

export function parseAttacksArgs(argv: readonly string[], known: readonly string[], program: Command = attacksProgram(known)): AttacksArgs {
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{ scenarios?: string[]; serverMain: string; serveArgs: string }>();
  return { scenarios: opts.scenarios, serverMain: opts.serverMain, serveArgs: opts.serveArgs };
}
