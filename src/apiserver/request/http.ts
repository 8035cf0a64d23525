import type { IncomingHttpHeaders } from 'node:http';

/** The request surface shared by node:http and node:http2's compatibility API. */
export interface Req {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  on(ev: 'data', cb: (chunk: Buffer) => void): unknown;
  on(ev: 'end' | 'close', cb: () => void): unknown;
  on(ev: 'error', cb: (e: Error) => void): unknown;
  destroy(): unknown;
}

/** The response surface shared by node:http and node:http2's compatibility API. */
export interface Res {
  writeHead(code: number, headers?: Record<string, string | string[]>): unknown;
  write(chunk: string | Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  setHeader(name: string, value: string | string[]): unknown;
  headersSent: boolean;
  on(ev: 'close' | 'error', cb: () => void): unknown;
}
