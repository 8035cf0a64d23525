/**
 * Docker's event stream as an Observable that survives the daemon: the stream ends when dockerd
 * restarts or the connection drops, and is opened again with back-off, resuming from the last
 * event's time so nothing in between is lost (a duplicate is harmless: the controller's queue
 * coalesces keys).
 */
import type Docker from 'dockerode';
import { Observable } from 'rxjs';
import type { Logger } from '../log.js';
import type { BackendEvent } from './types.js';

export interface DockerEventStreamOptions {
  /** Docker's own event filter (type, label, …). */
  filters: Record<string, string[]>;
  /** One raw event → a BackendEvent, or undefined to drop it. May ask Docker (events stay in order). */
  map: (raw: any) => Promise<BackendEvent | undefined> | BackendEvent | undefined;
  /** Reconnect back-off, ms (first, max). */
  backoffMs?: [number, number];
  /** Told true when a stream is open, false when it ended (observations may have been missed). */
  onLive?: (live: boolean) => void;
  /** Every open HTTP stream is added here while open, so its owner can cut them all on close. */
  streams: Set<NodeJS.ReadableStream>;
  log?: Logger;
}

/** Time of a raw Docker event in epoch ms (timeNano when the daemon sends it). */
export function eventTime(raw: any): number {
  if (typeof raw?.timeNano === 'number') return Math.floor(raw.timeNano / 1e6);
  if (typeof raw?.time === 'number') return raw.time * 1000;
  return Date.now();
}

export function dockerEventStream(docker: Docker, o: DockerEventStreamOptions): Observable<BackendEvent> {
  const [first, max] = o.backoffMs ?? [250, 10000];
  return new Observable<BackendEvent>((sub) => {
    let stopped = false;
    let delay = first;
    let since = Math.floor(Date.now() / 1000);
    let current: NodeJS.ReadableStream | undefined;
    let timer: NodeJS.Timeout | undefined;

    const schedule = (why: string) => {
      if (stopped) return;
      o.log?.warn('docker event stream ended; reconnecting', { reason: why, delayMs: delay });
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, max);
    };

    const connect = async () => {
      if (stopped) return;
      let stream: NodeJS.ReadableStream;
      try {
        stream = (await docker.getEvents({ since, filters: JSON.stringify(o.filters) } as object)) as NodeJS.ReadableStream;
      } catch (err) {
        schedule((err as Error).message);
        return;
      }
      if (stopped) {
        (stream as any).destroy?.();
        return;
      }
      current = stream;
      o.streams.add(stream);
      o.onLive?.(true);
      let buf = '';
      let chain = Promise.resolve();
      stream.on('data', (chunk: Buffer | string) => {
        delay = first;
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let raw: any;
          try {
            raw = JSON.parse(line);
          } catch {
            continue;
          }
          if (typeof raw.time === 'number') since = Math.max(since, raw.time);
          // Keep the order of events even when mapping one needs a Docker call.
          chain = chain.then(async () => {
            try {
              const ev = await o.map(raw);
              if (ev && !stopped) sub.next(ev);
            } catch (err) {
              o.log?.debug('could not map docker event', { error: (err as Error).message });
            }
          });
        }
      });
      let ended = false;
      const onEnd = (why: string) => {
        if (ended) return;
        ended = true;
        o.onLive?.(false);
        o.streams.delete(stream);
        schedule(why);
      };
      stream.on('end', () => onEnd('end'));
      stream.on('close', () => onEnd('close'));
      stream.on('error', (err: Error) => onEnd(err.message));
    };

    void connect();
    return () => {
      stopped = true;
      o.onLive?.(false);
      if (timer) clearTimeout(timer);
      if (current) {
        o.streams.delete(current);
        (current as any).destroy?.();
      }
    };
  });
}
