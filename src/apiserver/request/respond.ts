/**
 * Replies to API requests. A reply waits until every write made so far is durable: a write is
 * acknowledged only once it is, and a read never shows a write before it is.
 */
import { errorFields, type Logger } from '../../log.js';
import { isObject } from '../../util/json.js';
import { internalError } from '../errors.js';
import type { Store } from '../storage/sqlite.js';
import type { Res } from './http.js';

type Headers = Record<string, string | string[]>;

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-cache, private' } as const;

export class Responder {
  constructor(private readonly storage: Store, private readonly log: Logger) {}

  /** Replies with `body` as JSON (the stored text when it is an object storage wrote). */
  send(res: Res, code: number, body: unknown, warnings: string[] = []): void {
    this.sendText(res, code, (isObject(body) && this.storage.textOf(body)) || JSON.stringify(body), warnings);
  }

  /** Replies with JSON text once every write so far is durable; a failed commit turns the reply into a 500. */
  sendText(res: Res, code: number, text: string, warnings: string[] = []): void {
    const headers: Headers = { ...JSON_HEADERS };
    if (warnings.length) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    this.storage.afterCommit(() => reply(res, code, headers, text), (e) => {
      this.log.error('commit failed', { ...errorFields(e, 'storage'), hint: 'check the disk holding the data dir (space, permissions)' });
      reply(res, 500, { ...JSON_HEADERS }, JSON.stringify(internalError(`commit failed: ${e.message}`).toStatus()));
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
