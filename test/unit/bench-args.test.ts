import { expect } from 'chai';
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { repoPath } from '../../src/paths.js';
import { SCENARIOS, SIZE_OPTIONS, benchProgram, parseBenchArgs } from '../../bench/args.js';
import { apiServerBenchProgram, attacksProgram, parseApiServerBenchArgs, parseAttacksArgs } from '../../bench/apiserver/args.js';
import { DEFAULT_SERVER_MAIN } from '../../bench/lib/attacks.js';

/** Runs `parse` on `program` as its script would, but throwing instead of exiting; output captured. */
function capture<T>(program: Command, parse: (program: Command) => T): { args?: T; error?: CommanderError; out: string; err: string } {
  let out = '';
  let err = '';
  program.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  try {
    return { args: parse(program), out, err };
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    return { error: e, out, err };
  }
}

/** Parse as `node dist/bench/run.js ...argv` would. */
const parse = (argv: string[]) => capture(benchProgram(), (p) => parseBenchArgs(argv, p));

describe('bench command line', () => {
  it('defaults to every scenario, both backends and the full sizes', () => {
    const { args, error } = parse([]);
    expect(error).to.equal(undefined);
    expect(args).to.deep.equal({
      scenarios: ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7', 'P8'],
      quick: false,
      backends: ['service', 'container'],
      runs: 20,
      burst: 200,
      idleN: 1000,
      idleSeconds: 300,
      resyncSeconds: 60,
      scaleN: 10_000,
      scaleRunning: 100,
      restartN: 1000,
      restSeconds: 45,
      fanoutWatchers: 100,
      fanoutUpdates: 200,
      hubBurst: 10,
      hubRounds: 3,
      mnBurst: 200,
      failovers: 5,
      out: undefined,
    });
  });

  it('--quick switches to the small sizes; a size given explicitly wins over them', () => {
    const { args } = parse(['--quick', '--runs', '3', '--idle-seconds=12']);
    expect(args).to.include({
      quick: true,
      runs: 3,
      burst: 20,
      idleN: 50,
      idleSeconds: 12,
      resyncSeconds: 10,
      scaleN: 2000,
      scaleRunning: 20,
      restartN: 50,
      restSeconds: 45,
      fanoutWatchers: 100,
      fanoutUpdates: 50,
      hubBurst: 10,
      hubRounds: 1,
      mnBurst: 30,
      failovers: 2,
    });
  });

  it('reads scenarios case-insensitively, one backend, and the output file', () => {
    const { args } = parse([
      '--scenarios',
      'p1, P3',
      '--backend',
      'container',
      '--out',
      '/tmp/x.json',
      '--scale-running',
      '0',
      '--watchers',
      '7',
      '--fanout-updates',
      '9',
    ]);
    expect(args).to.include({ out: '/tmp/x.json', scaleRunning: 0, fanoutWatchers: 7, fanoutUpdates: 9 });
    expect(args!.scenarios).to.deep.equal(['P1', 'P3']);
    expect(args!.backends).to.deep.equal(['container']);
  });

  it('refuses an unknown flag instead of ignoring it', () => {
    const { error, err } = parse(['--quick', '--rusn', '5']);
    expect(error?.code).to.equal('commander.unknownOption');
    expect(err).to.contain("unknown option '--rusn'").and.to.contain('(Did you mean --runs?)').and.to.contain('--help');
  });

  it('refuses stray arguments', () => {
    const { error, err } = parse(['P1']);
    expect(error?.code).to.equal('commander.excessArguments');
    expect(err).to.contain('too many arguments');
  });

  for (const bad of ['abc', '', '-1', '0', '1.5', '1e3', 'NaN', '20x']) {
    it(`refuses --runs ${JSON.stringify(bad)} with the option and the value in the message`, () => {
      const { error, err } = parse(['--runs', bad]);
      expect(error?.code).to.equal('commander.invalidArgument');
      expect(err).to.contain("option '--runs <n>' argument").and.to.contain(`'${bad}' is invalid`).and.to.contain('It must be a whole number ≥ 1');
    });
  }

  it('refuses a negative count where 0 is allowed', () => {
    const { error, err } = parse(['--scale-running', '-3']);
    expect(error?.code).to.equal('commander.invalidArgument');
    expect(err).to.contain('It must be a whole number ≥ 0');
  });

  it('refuses an unknown scenario, an empty list and an unknown backend', () => {
    expect(parse(['--scenarios', 'P1,P9']).err).to.contain('Unknown scenario P9 (known: P1, P2, P3, P4, P5, P6, P7, P8)');
    expect(parse(['--scenarios', ' , ']).error?.code).to.equal('commander.invalidArgument');
    const backend = parse(['--backend', 'swarm']);
    expect(backend.error?.code).to.equal('commander.invalidArgument');
    expect(backend.err).to.contain('Allowed choices are service, container, both');
  });

  it('refuses an option given without its value', () => {
    const { error } = parse(['--quick', '--burst']);
    expect(error?.code).to.equal('commander.optionMissingArgument');
  });

  it('--help lists every option with its defaults', () => {
    const { error, out } = parse(['--help']);
    expect(error?.code).to.equal('commander.helpDisplayed');
    const help = out.replace(/\s+/g, ' ');
    for (const o of SIZE_OPTIONS) {
      expect(help).to.contain(o.flags);
      expect(help).to.contain(o.full === o.quick ? `(default: ${o.full})` : `(default: ${o.full}; --quick: ${o.quick})`);
    }
    for (const flag of ['--scenarios <list>', '--quick', '--backend <kind>', '--out <file>']) expect(help).to.contain(flag);
    expect(help)
      .to.contain(`(default: ${SCENARIOS.join(',')})`)
      .and.to.contain('default: "both"');
  });

  it("the README's bench section names every option", () => {
    const readme = readFileSync(repoPath('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Benchmarks'), readme.indexOf('\n## ', readme.indexOf('## Benchmarks') + 1));
    const flags = benchProgram()
      .options.map((o) => o.long!)
      .filter((f) => f !== '--help');
    expect(flags).to.include.members(['--quick', '--runs', '--out']);
    expect(flags.filter((f) => !section.includes(`\`${f}`))).to.deep.equal([]);
  });
});

describe('API server bench command lines', () => {
  const bench = (argv: string[]) => capture(apiServerBenchProgram(), (p) => parseApiServerBenchArgs(argv, p));
  const attacks = (argv: string[]) => capture(attacksProgram(['deep-json', 'list-flood']), (p) => parseAttacksArgs(argv, ['deep-json', 'list-flood'], p));

  it("run.js: a full run's sizes by default, --quick's smaller ones, and a size given explicitly wins", () => {
    expect(bench([]).args).to.deep.equal({
      quick: false,
      objects: 10_000,
      concurrency: 32,
      warmup: 1000,
      watchers: 100,
      updates: 1000,
      paced: 100,
      synchronous: 'NORMAL',
      stopAfter: 'all',
      serverMain: DEFAULT_SERVER_MAIN,
    });
    expect(bench(['--quick', '--warmup', '0', '--synchronous', 'FULL', '--stop-after', 'creates', '--server-main', '/b/main.js']).args).to.deep.equal({
      quick: true,
      objects: 3000,
      concurrency: 32,
      warmup: 0,
      watchers: 20,
      updates: 300,
      paced: 20,
      synchronous: 'FULL',
      stopAfter: 'creates',
      serverMain: '/b/main.js',
    });
  });

  it('run.js refuses a misspelt option, a mode it does not know, a size that is no whole number, and stray arguments', () => {
    const typo = bench(['--synchronus', 'FULL']);
    expect(typo.error?.code).to.equal('commander.unknownOption');
    expect(typo.err).to.contain('(Did you mean --synchronous?)');
    expect(bench(['--synchronous', 'OFF']).err).to.contain('Allowed choices are NORMAL, FULL');
    expect(bench(['--stop-after', 'list']).err).to.contain('Allowed choices are http2-creates, creates, all');
    for (const bad of ['abc', '0', '-5', '1.5']) expect(bench(['--objects', bad]).err, bad).to.contain('It must be a whole number ≥ 1');
    expect(bench(['--warmup', '-1']).err).to.contain('It must be a whole number ≥ 0');
    expect(bench(['FULL']).error?.code).to.equal('commander.excessArguments');
  });

  it('attacks.js runs every attack unless told which, and refuses one it does not know', () => {
    expect(attacks([]).args).to.deep.equal({ scenarios: undefined, serverMain: DEFAULT_SERVER_MAIN, serveArgs: '' });
    expect(attacks(['--scenarios', 'list-flood', '--serve-args', '--max-requests-inflight 5']).args).to.deep.equal({
      scenarios: ['list-flood'],
      serverMain: DEFAULT_SERVER_MAIN,
      serveArgs: '--max-requests-inflight 5',
    });
    expect(attacks(['--scenarios', 'deep-json,list-fl00d']).err).to.contain('Unknown attack list-fl00d (known: deep-json, list-flood)');
    expect(attacks(['--scenario', 'deep-json']).error?.code).to.equal('commander.unknownOption');
  });
});
