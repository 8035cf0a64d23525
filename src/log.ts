/**
 * nbswarm's one logger (operator, API server, backends, status page, CLI): JSON lines (log
 * collectors) or a short human form, chosen by --log-format (default: JSON when the output is not a
 * terminal). Errors are logged once, as values with {resource, dockerCall, hint}; never a stack trace.
 *
 * One set of fields everywhere:
 *   component   which part logged it: operator, apiserver, statuspage (a child logger sets it)
 *   resource    the object concerned: "namespace/name" of a NotebookServer, or "kind namespace/name"
 *   dockerCall  the Docker call that failed ("docker service create")
 *   error       one line of the failure's message; reason: its CamelCase reason; hint: what to do
 *   verb, path, code, durationMs, user   one API request (the API server's request log)
 */
import winston from 'winston';

export type Logger = winston.Logger;

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** winston's npm levels that nbswarm uses, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level?: string;
  /** json or text; default json when the output is not a terminal. */
  format?: LogFormat;
  /** Shorthand for format json (true) / text (false). */
  json?: boolean;
  silent?: boolean;
  /**
   * Every level goes to stderr (for commands whose stdout is machine-readable, such as
   * `nbswarm serve`); otherwise only warnings and errors do.
   */
  stderr?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stderr ? process.stderr : process.stdout;
  const format = opts.format ?? (opts.json === undefined ? envFormat() : opts.json ? 'json' : 'text');
  const json = format ? format === 'json' : !stream.isTTY;
  const human = winston.format.printf((info) => {
    const { level, message, timestamp, component, ...rest } = info as Record<string, unknown>;
    const extra = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const who = component ? `${String(component)}: ` : '';
    return `${String(timestamp).slice(11, 23)} ${level} ${who}${String(message)}${extra ? ' ' + extra : ''}`;
  });
  return winston.createLogger({
    level: opts.level ?? process.env.NBSWARM_LOG_LEVEL ?? 'info',
    silent: opts.silent,
    format: json
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(winston.format.timestamp(), ...(stream.isTTY ? [winston.format.colorize()] : []), human),
    transports: [new winston.transports.Console({ stderrLevels: opts.stderr ? Object.keys(winston.config.npm.levels) : ['error', 'warn'] })],
  });
}

function envFormat(): LogFormat | undefined {
  const v = process.env.NBSWARM_LOG_FORMAT;
  return v === 'json' || v === 'text' ? v : undefined;
}

/** The fields of one error log line; never a stack trace. */
export function errorFields(err: unknown, resource?: string): { resource?: string; dockerCall?: string; hint?: string; reason?: string; error: string } {
  const e = err as { message?: string; dockerCall?: string; hint?: string; reason?: string; body?: unknown; code?: number };
  let msg = e?.message ?? String(err);
  // client-node ApiException messages embed the whole body; keep the API's own message.
  if (e?.body && typeof e.body === 'string') {
    try {
      const parsed = JSON.parse(e.body) as { message?: string };
      if (parsed.message) msg = `HTTP ${e.code}: ${parsed.message}`;
    } catch {
      // keep msg
    }
  }
  return { resource, dockerCall: e?.dockerCall, hint: e?.hint, reason: e?.reason, error: msg.split('\n')[0].slice(0, 500) };
}
