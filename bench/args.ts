/**
 * The bench runner's command line. Every option is listed by `--help` with its default for a full run
 * and for `--quick`; unknown options, stray arguments, unknown scenarios and sizes that are not whole
 * numbers are refused before anything starts, so a typo never yields a run that measured something else.
 */
import { Command, Option } from 'commander';
import type { BackendKind } from '../src/backends/types.js';
import { addSizeOptions, knownNames, resolveSizes, type SizeOption } from './lib/argv.js';

export const SCENARIOS = ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7', 'P8'] as const;

/** What one bench run does; written as `args` into the JSON report. */
export interface BenchArgs {
  scenarios: string[];
  quick: boolean;
  backends: BackendKind[];
  runs: number;
  burst: number;
  idleN: number;
  idleSeconds: number;
  resyncSeconds: number;
  scaleN: number;
  scaleRunning: number;
  restartN: number;
  restSeconds: number;
  fanoutWatchers: number;
  fanoutUpdates: number;
  hubBurst: number;
  hubRounds: number;
  mnBurst: number;
  failovers: number;
  out?: string;
}

type SizeKey =
  | 'runs'
  | 'burst'
  | 'idleN'
  | 'idleSeconds'
  | 'resyncSeconds'
  | 'scaleN'
  | 'scaleRunning'
  | 'restartN'
  | 'restSeconds'
  | 'fanoutWatchers'
  | 'fanoutUpdates'
  | 'hubBurst'
  | 'hubRounds'
  | 'mnBurst'
  | 'failovers';

/** The numeric options: a full run's default, the `--quick` default, the smallest value that makes sense. */
export const SIZE_OPTIONS: readonly SizeOption<SizeKey>[] = [
  { flags: '--runs <n>', key: 'runs', description: 'P1: spawns per backend, on each side (nbswarm and raw)', full: 20, quick: 6, min: 1 },
  { flags: '--burst <n>', key: 'burst', description: 'P2: servers created at once', full: 200, quick: 20, min: 1 },
  { flags: '--idle-n <n>', key: 'idleN', description: 'P3: converged servers left idle', full: 1000, quick: 50, min: 1 },
  { flags: '--idle-seconds <s>', key: 'idleSeconds', description: 'P3: length of the idle window, in seconds', full: 300, quick: 30, min: 1 },
  { flags: '--resync <s>', key: 'resyncSeconds', description: "the operator's resync period (policy resyncSeconds), in seconds", full: 60, quick: 10, min: 1 },
  { flags: '--scale-n <n>', key: 'scaleN', description: 'P4: resources in the API server', full: 10_000, quick: 2000, min: 1 },
  { flags: '--scale-running <n>', key: 'scaleRunning', description: 'P4: how many of them run (the rest are stopped)', full: 100, quick: 20, min: 0 },
  { flags: '--rest-seconds <s>', key: 'restSeconds', description: "P4: idle time before the operator's RSS is read, in seconds", full: 45, quick: 45, min: 1 },
  {
    flags: '--restart-n <n>',
    key: 'restartN',
    description: 'P5: running servers when the operator restarts (P3 and P5 share one fixture of --idle-n when both run)',
    full: 1000,
    quick: 50,
    min: 1,
  },
  { flags: '--watchers <n>', key: 'fanoutWatchers', description: 'P4: watchers of the watch fan-out', full: 100, quick: 100, min: 1 },
  { flags: '--fanout-updates <n>', key: 'fanoutUpdates', description: 'P4: updates sent to those watchers', full: 200, quick: 50, min: 1 },
  {
    flags: '--hub-burst <n>',
    key: 'hubBurst',
    description: 'P7: servers started at once through JupyterHub (and raw containers booted at once)',
    full: 10,
    quick: 10,
    min: 1,
  },
  { flags: '--hub-rounds <n>', key: 'hubRounds', description: 'P7: rounds of raw burst, hub burst, hub stop, hub start, hub stop', full: 3, quick: 1, min: 1 },
  {
    flags: '--mn-burst <n>',
    key: 'mnBurst',
    description: 'P8: servers created at once over the 3-node test cluster (and raw services)',
    full: 200,
    quick: 30,
    min: 1,
  },
  { flags: '--failovers <n>', key: 'failovers', description: "P8: rounds of kill -9 of a worker's dockerd", full: 5, quick: 2, min: 1 },
];

const scenarioList = knownNames(SCENARIOS, 'scenario', (s) => s.toUpperCase());

/** A fresh command definition (tests give it exitOverride/configureOutput). */
export function benchProgram(): Command {
  const program = new Command('node dist/bench/run.js')
    .description(
      'nbswarm benchmarks: each scenario side by side with a raw-Docker (P6: etcd) baseline in the same run.\n' +
        'JSON on stdout and in bench/results/<timestamp>.json, a table on stderr.',
    )
    .allowExcessArguments(false)
    .showHelpAfterError('(--help lists every option with its default)')
    .addOption(new Option('--scenarios <list>', `comma-separated scenarios to run (default: ${SCENARIOS.join(',')})`).argParser(scenarioList))
    .addOption(new Option('--quick', 'small sizes, ~4 minutes in all (the "--quick" defaults below)').default(false))
    .addOption(new Option('--backend <kind>', 'Docker backend(s) for P1–P5').choices(['service', 'container', 'both']).default('both'))
    .addOption(new Option('--out <file>', 'write the JSON report here (default: bench/results/<timestamp>.json)'));
  return addSizeOptions(program, SIZE_OPTIONS);
}

/**
 * Parse user arguments (process.argv.slice(2)). Errors and --help go through commander: printed
 * with a hint and exiting, or thrown as CommanderError when the program has exitOverride().
 */
export function parseBenchArgs(argv: readonly string[], program: Command = benchProgram()): BenchArgs {
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<Record<string, unknown>>();
  const quick = opts.quick === true;
  const backend = opts.backend as 'service' | 'container' | 'both';
  return {
    scenarios: (opts.scenarios as string[] | undefined) ?? [...SCENARIOS],
    quick,
    backends: backend === 'both' ? ['service', 'container'] : [backend],
    ...resolveSizes(opts, SIZE_OPTIONS, quick),
    out: opts.out as string | undefined,
  };
}
