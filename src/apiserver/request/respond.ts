/**
 * Replies to API requests. A reply waits until every write made so far is durable: a write is
 * acknowledged only once it is, and a read never shows a write before it is.
 */
import { errorFields, type Logger } from '../../log.js';
import { isObject } from '../../util/json.js';
import { ApiError, internalError } from '../errors.js';
import type { Store } from '../storage/sqlite.js';
import type { Res } from './http.js';

type Headers = Record<string, string | string[]>;

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-cache, private' } as const;

/** A large reply goes out in writes of about this much, each once the client took the one before. */
const WRITE_BYTES = 1024 * 1024;
const COMMA = Buffer.from(',');
const EMPTY = Buffer.alloc(0);

export class Responder {
  constructor(
    private readonly storage: Store,
    private readonly log: Logger,
  ) {}

  /** Replies with `body` as JSON (the stored text when it is an object storage wrote). */
  send(res: Res, code: number, body: unknown, warnings: string[] = []): void {
    this.sendText(res, code, (isObject(body) && this.storage.textOf(body)) || JSON.stringify(body), warnings);
  }

  /**
   * Replies with an error's Status: Retry-After when it has one, the connection closed after it
   * when it asks. `immediate`: now, without waiting for writes in flight (a timeout's reply).
   */
  sendError(res: Res, err: ApiError, warnings: string[] = [], immediate = false): void {
    const headers = this.headers(warnings);
    if (err.details?.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.details.retryAfterSeconds);
    if (err.closeConnection) headers.connection = 'close';
    const send = () => reply(res, err.code, headers, JSON.stringify(err.toStatus()));
    if (immediate) send();
    else this.afterCommit(res, send);
  }

  /** Replies with JSON text once every write so far is durable; a failed commit turns the reply into a 500. */
  sendText(res: Res, code: number, text: string, warnings: string[] = []): void {
    const headers = this.headers(warnings);
    this.afterCommit(res, () => reply(res, code, headers, text));
  }

  /**
   * Replies with `head`, the `parts` joined by commas, and `tail` — never joined into one piece:
   * a list of many megabytes goes out in writes of about WRITE_BYTES (each a copy of the parts it
   * holds, already UTF-8), the next once the client has taken the last, and each part is let go
   * once written.
   */
  sendParts(res: Res, code: number, head: string, parts: Buffer[], tail: string, warnings: string[] = []): void {
    const headBytes = Buffer.from(head);
    const tailBytes = Buffer.from(tail);
    let length = headBytes.length + tailBytes.length + Math.max(0, parts.length - 1);
    for (const p of parts) length += p.length;
    if (length <= WRITE_BYTES) return this.sendText(res, code, head + parts.map((p) => p.toString('utf8')).join(',') + tail, warnings);
    const headers = this.headers(warnings);
    this.afterCommit(res, () => {
      let i = 0;
      let closed = false;
      let waiting = false;
      res.on('close', () => {
        closed = true;
        parts.length = 0;
      });
      const pump = () => {
        waiting = false;
        try {
          while (!closed) {
            const chunk: Buffer[] = i === 0 ? [headBytes] : [];
            let size = chunk[0]?.length ?? 0;
            for (; i < parts.length && size < WRITE_BYTES; i++) {
              if (i > 0) chunk.push(COMMA);
              chunk.push(parts[i]!);
              size += parts[i]!.length + 1;
              parts[i] = EMPTY;
            }
            if (i >= parts.length) {
              closed = true;
              chunk.push(tailBytes);
              return void res.end(Buffer.concat(chunk));
            }
            if (!res.write(Buffer.concat(chunk))) return void (waiting = true);
          }
        } catch {
          // the client went away
        }
      };
      res.on('drain', () => waiting && pump());
      try {
        res.writeHead(code, { ...headers, 'content-length': String(length) });
      } catch {
        return;
      }
      pump();
    });
  }

  private headers(warnings: string[]): Headers {
    const headers: Headers = { ...JSON_HEADERS };
    if (warnings.length) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    return headers;
  }

  private afterCommit(res: Res, ok: () => void): void {
    this.storage.afterCommit(ok, (e) => {
      const full = /SQLITE_FULL|disk is full/i.test(e.message);
      this.log.error('commit failed', {
        ...errorFields(e, 'storage'),
        hint: full ? 'the file system holding the data dir is full: free space there' : 'check the disk holding the data dir (space, permissions)',
      });
      const err = full
        ? new ApiError(
            507,
            'InsufficientStorage',
            `the write was not stored: the file system holding the server's data directory is full (${e.message}); it is taken again once there is space`,
          )
        : internalError(`commit failed: ${e.message}`);
      reply(res, err.code, { ...JSON_HEADERS }, JSON.stringify(err.toStatus()));
    });
  }
}

/** Writes a whole response: one write of headers and body with a known length (HTTP/1.1 needs no chunked framing). */
export function reply(res: Res, code: number, headers: Headers, text: string): void {
  try {
    headers['content-length'] = String(Buffer.byteLength(text));
    res.writeHead(code, headers);
    res.end(text);
  } catch {
    // the client went away while the commit ran
  }
}
