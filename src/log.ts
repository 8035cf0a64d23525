/**
 * nbswarm's one logger (operator, API server, backends, CLI): JSON lines when stdout is not a
 * terminal (log collectors), a short human form otherwise. Errors are logged once, as values with
 * {resource, dockerCall, hint}; never a stack trace.
 */
import winston from 'winston';

export type Logger = winston.Logger;

/**
 * `stderr`: every level goes to stderr (for commands whose stdout is machine-readable, such as
 * `nbswarm serve`); otherwise only warnings and errors do.
 */
export function createLogger(opts: { level?: string; json?: boolean; silent?: boolean; stderr?: boolean } = {}): Logger {
  const json = opts.json ?? !(opts.stderr ? process.stderr : process.stdout).isTTY;
  const human = winston.format.printf((info) => {
    const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
    const extra = Object.entries(rest)
      .filter(([k]) => typeof k === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${String(timestamp).slice(11, 23)} ${level} ${String(message)}${extra ? ' ' + extra : ''}`;
  });
  return winston.createLogger({
    level: opts.level ?? process.env.NBSWARM_LOG_LEVEL ?? 'info',
    silent: opts.silent,
    format: json
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(winston.format.timestamp(), winston.format.colorize(), human),
    transports: [new winston.transports.Console({ stderrLevels: opts.stderr ? Object.keys(winston.config.npm.levels) : ['error', 'warn'] })],
  });
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
