/**
 * Caps on the connections a listening server holds: all together, and from one client address.
 * Every connection holds a file descriptor until the server closes it (an unfinished TLS handshake
 * for the handshake timeout, an idle keep-alive connection for the idle timeout). Without a cap,
 * one host opening connections faster than they time out takes every descriptor the process has,
 * and with them the operator's Docker calls and the store's files when they share the process
 * (`nbswarm up`). A connection past a cap is closed as soon as it is accepted, before any TLS.
 * The per-client cap counts an address, not a network (an IPv6 host may hold many): the total cap
 * is what keeps the process's descriptors.
 */
import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Logger } from './log.js';

export interface ConnectionLimits {
  /** Connections the server holds at once, all clients together. */
  total: number;
  /** Connections one client address may hold at once. */
  perClient: number;
}

/** Why a connection was closed unanswered. */
export type RefusedBecause = 'total' | 'per-client';

/** Descriptors kept out of the connection cap for the rest of the process: files, Docker, watches out. */
export const RESERVED_DESCRIPTORS = 1024;

/** The process's open-file limit (the soft one, which Node raises to the hard one at start), or undefined where /proc does not tell. */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/**
 * The total cap a server can keep: `wanted`, lowered to leave RESERVED_DESCRIPTORS of the process's
 * open-file limit for everything else (never below 1). `lowered` says whether it had to be.
 */
export function totalWithinDescriptors(wanted: number, fileLimit = openFileLimit()): { total: number; lowered: boolean } {
  if (fileLimit === undefined || wanted <= fileLimit - RESERVED_DESCRIPTORS) return { total: wanted, lowered: false };
  return { total: Math.max(1, fileLimit - RESERVED_DESCRIPTORS), lowered: true };
}

/** One address for a client however its socket spells it (an IPv4 client of a dual-stack listener is `::ffff:a.b.c.d`). */
export function clientAddress(remoteAddress: string | undefined): string {
  const a = remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** How often a server logs that it refuses connections, per reason: a flood must not become one line per connection. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;

/**
 * Applies `asked` to `server`: past `total` node:net closes new connections itself (its
 * maxConnections), past `perClient` a client's new connection is closed here. The total is first
 * lowered to what the open-file limit leaves (totalWithinDescriptors), with a warning when it must
 * be. Refusals are logged as warnings, at most one line per reason per REFUSAL_LOG_INTERVAL_MS
 * (with how many since the last), and `refused` hears of each (a metric).
 */
export function limitConnections(
  server: Server,
  asked: ConnectionLimits,
  o: { log: Logger; what: string; refused?: (why: RefusedBecause) => void; now?: () => number },
): void {
  const ceiling = totalWithinDescriptors(asked.total);
  if (ceiling.lowered)
    o.log.warn(`${o.what} holds fewer connections than asked: the rest of the open-file limit is kept for the process`, {
      maxConnections: ceiling.total,
      asked: asked.total,
      hint: 'raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit)',
    });
  const limits: ConnectionLimits = { total: ceiling.total, perClient: asked.perClient };
  const now = o.now ?? Date.now;
  const lastLine = new Map<RefusedBecause, { at: number; unlogged: number }>();
  const refuse = (why: RefusedBecause, address: string) => {
    o.refused?.(why);
    const last = lastLine.get(why);
    if (last && now() - last.at < REFUSAL_LOG_INTERVAL_MS) return void last.unlogged++;
    const fields = {
      reason: why,
      client: address || undefined,
      limit: why === 'total' ? limits.total : limits.perClient,
      refusedSinceLastLine: last?.unlogged || undefined,
    };
    const message = why === 'total' ? `${o.what} refuses connections: it holds its most` : `${o.what} refuses connections from a client holding its most`;
    o.log.warn(message, fields);
    lastLine.set(why, { at: now(), unlogged: 0 });
  };
  server.maxConnections = limits.total;
  server.on('drop', (d?: { remoteAddress?: string }) => refuse('total', clientAddress(d?.remoteAddress)));
  const open = new Map<string, number>();
  // Before the TLS server's own listener: a refused connection never starts a handshake.
  server.prependListener('connection', (socket: Socket) => {
    const address = clientAddress(socket.remoteAddress);
    const held = open.get(address) ?? 0;
    if (held >= limits.perClient) {
      socket.destroy();
      refuse('per-client', address);
      return;
    }
    open.set(address, held + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
}
