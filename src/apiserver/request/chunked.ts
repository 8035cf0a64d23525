/**
 * A watch's shared lines to its HTTP/1.1 connection without node:http's per-write work. A chunked
 * response's write() frames the data (size line, data, CRLF), corks the socket, and uncorks it on
 * the next tick as a writev of three buffers that TLS then copies into one: a live event sent to
 * 100 watches did that 100 times. Here a live event's line (shared by every watch that shows it)
 * is framed once for all of them, the frame kept beside the line, and each connection gets that one
 * buffer straight on its socket: the bytes node:http would have sent. Anything else (a watch's own
 * lines, the slices of a line too big for one write) goes through the response as before; both
 * reach the socket in the order they were written (a corked socket keeps its queue in order). Big
 * lines stay on that path on purpose: framing each 64 KiB slice here made a JS copy per connection,
 * and with 150 stalled clients of 1.4 MiB events that garbage kept the event loop from /healthz for
 * seconds. Only for a response that owns its socket with its headers sent (a request pipelined
 * behind another reply, or HTTP/2, keeps the ordinary path entirely).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Res } from './http.js';

/** Where a watch writes its lines. */
export interface LineWriter {
  /** Writes `piece`; false when the connection holds more than it wants (wait for onDrain). */
  write(piece: Buffer | string): boolean;
  /** Bytes the connection holds, not yet sent. */
  readonly writableLength: number;
  /** Calls `cb` each time the connection has sent what it held; `off()` stops it. */
  onDrain(cb: () => void): { off(): void };
}

const CRLF = Buffer.from('\r\n');
/** Chunk frames of shared lines, made once per line for every connection that sends it. */
const frames = new WeakMap<Buffer, Buffer>();

/** The line as one HTTP/1.1 chunk, made once for every connection that sends it. */
function framed(line: Buffer): Buffer {
  let f = frames.get(line);
  if (f === undefined) {
    f = Buffer.concat([Buffer.from(`${line.length.toString(16)}\r\n`), line, CRLF]);
    frames.set(line, f);
  }
  return f;
}

interface H1Response extends ServerResponse {
  /** node:http's own: the bytes of a response not yet handed to its socket. */
  outputData?: unknown[];
}

/**
 * A writer for the watch reply `res` (headers already flushed): shared lines straight to the socket
 * when that is sure to produce what node:http would have, the rest through `res`. `shared(piece)`
 * says whether a piece is a whole line many watches send.
 */
export function lineWriter(res: Res, shared: (piece: Buffer | string) => boolean): LineWriter {
  const h1 = res as Partial<H1Response>;
  const socket = h1.socket as (Socket & { _httpMessage?: unknown }) | null | undefined;
  const direct =
    socket != null &&
    socket._httpMessage === res &&
    h1.headersSent === true &&
    h1.chunkedEncoding === true &&
    Array.isArray(h1.outputData) &&
    h1.outputData.length === 0;
  if (!direct) {
    return {
      write: (piece) => res.write(piece),
      get writableLength() {
        return res.writableLength;
      },
      onDrain(cb) {
        // A reply (or HTTP/2 stream) serves one request: its listeners go with it.
        res.on('drain', cb);
        return { off: () => {} };
      },
    };
  }
  return {
    write: (piece) => (typeof piece !== 'string' && shared(piece) ? socket.write(framed(piece)) : res.write(piece)),
    get writableLength() {
      return socket.writableLength;
    },
    onDrain(cb) {
      // The socket outlives the watch (keep-alive): the listener must go with it. The socket's
      // 'drain' also covers what went through the response.
      socket.on('drain', cb);
      return { off: () => socket.off('drain', cb) };
    },
  };
}
