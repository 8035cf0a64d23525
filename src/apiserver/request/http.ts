/**
 * The request and response surfaces the server uses, met by node:http's objects (HTTP/1.1) and
 * by the adapters below over a bare HTTP/2 stream.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { constants as h2, type IncomingHttpHeaders as Http2Headers, type ServerHttp2Stream } from 'node:http2';

export interface Req {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  on(ev: 'data', cb: (chunk: Buffer) => void): unknown;
  on(ev: 'end' | 'close', cb: () => void): unknown;
  on(ev: 'error', cb: (e: Error) => void): unknown;
  off(ev: 'data' | 'end' | 'close' | 'error', cb: (...args: any[]) => void): unknown;
  destroy(): unknown;
}

export interface Res {
  writeHead(code: number, headers?: Record<string, string | string[]>): unknown;
  write(chunk: string | Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  readonly headersSent: boolean;
  /** Bytes written and not yet sent: what the connection (HTTP/1.1) or stream (HTTP/2) holds. */
  readonly writableLength: number;
  /** Sends the headers now (HTTP/1.1 would hold them back until the first write). */
  flushHeaders?(): void;
  /** 'drain': what was written has gone out; write more. */
  on(ev: 'close' | 'error' | 'drain', cb: () => void): unknown;
}

/**
 * An HTTP/2 stream as a request. node:http2's compatibility layer (Http2ServerRequest/Response)
 * cost ~10% of a create's server CPU; the server needs only this much of it.
 */
export class StreamRequest implements Req {
  readonly method: string;
  readonly url: string;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly headers: Http2Headers,
  ) {
    this.method = String(headers[':method'] ?? 'GET');
    this.url = String(headers[':path'] ?? '/');
  }

  on(ev: string, cb: (...args: any[]) => void): this {
    this.stream.on(ev, cb);
    return this;
  }

  off(ev: string, cb: (...args: any[]) => void): this {
    this.stream.off(ev, cb);
    return this;
  }

  destroy(): void {
    this.stream.destroy();
  }
}

export class StreamResponse implements Res {
  /** The reply asked for `connection: close`: HTTP/2 has no such header; the stream is reset once the reply is out. */
  private closeAfterEnd = false;

  constructor(private readonly stream: ServerHttp2Stream) {
    // A write to a stream the client reset fails asynchronously; that must not take the process down.
    stream.on('error', () => {});
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get writableLength(): number {
    return this.stream.writableLength;
  }

  writeHead(code: number, headers: Record<string, string | string[]> = {}): void {
    if (headers.connection !== undefined) {
      this.closeAfterEnd = headers.connection === 'close';
      headers = { ...headers };
      delete headers.connection;
    }
    this.stream.respond({ ...headers, ':status': code });
  }

  write(chunk: string | Buffer): boolean {
    return this.stream.write(chunk);
  }

  end(chunk?: string | Buffer): void {
    this.stream.end(chunk);
    // RST_STREAM(NO_ERROR) after the reply tells the client to stop sending its body (RFC 9113 8.1).
    if (this.closeAfterEnd) this.stream.close(h2.NGHTTP2_NO_ERROR);
  }

  on(ev: 'close' | 'error' | 'drain', cb: () => void): void {
    this.stream.on(ev, cb);
  }
}
