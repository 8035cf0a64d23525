/**
 * Options several commands share: logging (--log-format, --log-level) and, for the commands a
 * person runs against a running nbswarm (status, logs, doctor), where the kubeconfig comes from.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from '../log.js';

/** A failure a command explains in one line: what went wrong and what to do. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    /** Process exit code (2: could not start / bad input; 1: a check or lookup failed). */
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

export interface LogOptions {
  logFormat?: LogFormat;
  logLevel?: LogLevel;
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--log-format <format>', 'log lines as json or text (default: json unless the output is a terminal)')
        .choices(LOG_FORMATS)
        .env('NBSWARM_LOG_FORMAT'),
    )
    .addOption(
      new Option('--log-level <level>', 'least severe level logged; debug adds one line per API request')
        .choices(LOG_LEVELS)
        .default('info')
        .env('NBSWARM_LOG_LEVEL'),
    );
}

export function loggerFromOptions(o: LogOptions, extra: { stderr?: boolean } = {}): Logger {
  return createLogger({ level: o.logLevel, format: o.logFormat, stderr: extra.stderr });
}

/** The default data directory of `nbswarm up`, relative to where it was started. */
export const DEFAULT_DATA_DIR = './.nbswarm';

/**
 * The kubeconfig a client command uses: --kubeconfig, else $KUBECONFIG, else the admin kubeconfig
 * of an `nbswarm up` started in this directory (./.nbswarm/admin.kubeconfig), else ~/.kube/config.
 */
export function clientKubeconfig(file?: string): { kc: KubeConfig; source: string } {
  const kc = new KubeConfig();
  const local = resolve(DEFAULT_DATA_DIR, 'admin.kubeconfig');
  const home = join(homedir(), '.kube', 'config');
  const candidates: Array<[string | undefined, string]> = [
    [file, '--kubeconfig'],
    [process.env.KUBECONFIG, 'KUBECONFIG'],
    [existsSync(local) ? local : undefined, local],
    [existsSync(home) ? home : undefined, home],
  ];
  const found = candidates.find(([f]) => f);
  if (!found) {
    throw new CommandError(
      'no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set, and neither ./.nbswarm/admin.kubeconfig nor ~/.kube/config exists',
      'pass --kubeconfig FILE (the file `nbswarm up` printed)',
    );
  }
  const [path, source] = found;
  try {
    if (source === 'KUBECONFIG') kc.loadFromDefault();
    else kc.loadFromFile(path!);
  } catch (err) {
    throw new CommandError(`cannot read kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}`, 'pass the file `nbswarm up` printed with --kubeconfig');
  }
  if (!kc.getCurrentCluster()) throw new CommandError(`kubeconfig ${path} has no current cluster`, 'pass the file `nbswarm up` printed with --kubeconfig');
  return { kc, source: source === '--kubeconfig' || source === 'KUBECONFIG' ? path! : source };
}

/** The one line a failed command prints (no stack trace), and its exit code. */
export function explain(err: unknown): { line: string; code: number } {
  const e = err as { message?: string; hint?: string; exitCode?: number };
  const msg = (e?.message ?? String(err)).split('\n')[0];
  return { line: `nbswarm: ${msg}${e?.hint ? ` (hint: ${e.hint})` : ''}`, code: typeof e?.exitCode === 'number' ? e.exitCode : 2 };
}
