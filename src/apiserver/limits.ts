/**
 * What one request, one user or one connection may ask of the API server. kube-apiserver's limits
 * are the model (its request body limit, etcd's object size, the annotation budget, JSON patch
 * limits, --max-requests-inflight, --request-timeout, the watch cache's bounded send buffers);
 * README's "Limits" table lists them for operators. Fixed limits are constants; the ones an
 * operator may want to tune are ServerLimits (ApiServerOptions.limits, `serve` flags).
 */

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest request body (kube: 3 MiB). Larger bodies get 413 without being buffered. */
export const MAX_REQUEST_BODY_BYTES = 3 * MiB;

/** Largest object as stored, in bytes of JSON (etcd's default request limit is 1.5 MiB). */
export const MAX_OBJECT_BYTES = 1.5 * MiB;

/** Annotations of one object, keys and values together (kube: 256 KiB). */
export const MAX_ANNOTATIONS_BYTES = 256 * KiB;

/**
 * Deepest nesting of arrays and objects in a body or a stored object. kube allows 10,000, but
 * Python's json module gives up near 1,000 and JSON.stringify near 5,000: a stored object every
 * client can read back must stay far below both. Real objects (CRD schemas included) stay under 40.
 */
export const MAX_JSON_DEPTH = 100;

/** Operations in one JSON patch (kube: 10,000). */
export const MAX_JSON_PATCH_OPERATIONS = 10_000;

/** Bytes that `copy` operations of one JSON patch may duplicate, together (kube: 3 MiB). */
export const MAX_JSON_PATCH_COPY_BYTES = 3 * MiB;

/**
 * A watch whose connection has held the last line it was given this long, while other watches need
 * room in the server's total (watchBuffersTotalBytes), is ended to make that room: a stalled client
 * never keeps the room from clients that read. (kube-apiserver's cacher waits a shared ~100 ms
 * budget per event before ending a watcher that cannot take it.)
 */
export const SLOW_WATCH_MS = 1000;

/** Limits an operator may tune. */
export interface ServerLimits {
  /**
   * A request that is not a watch must be answered within this (kube's --request-timeout): its body
   * must arrive and its reply be taken by the client; past it the body gets 408, a reply still in
   * flight is cut. Default 60 s.
   */
  requestTimeoutSeconds: number;
  /** An HTTP/1.1 connection between requests, or an HTTP/2 connection without streams, is closed after this. Default 90 s. */
  idleTimeoutSeconds: number;
  /** A request's headers must arrive within this (slow-header attacks; kube: 32 s). Default 30 s. */
  headersTimeoutSeconds: number;
  /** Requests one user may have in progress at once, watches aside (429 beyond). Default 100. */
  maxInflightPerUser: number;
  /** Watches one user may have open at once (429 beyond). Default 250. */
  maxWatchesPerUser: number;
  /**
   * Connections held at once, all clients together; past it a new connection is closed unanswered.
   * Lowered at start to leave 1,024 of the process's open files for the rest (connection-limits.ts).
   * Default 10,000.
   */
  maxConnections: number;
  /**
   * Connections one client address may hold at once; past it its new connection is closed
   * unanswered. Above what one user's requests and watches take (100 + 250), with room for several
   * users behind one address. Default 1,000.
   */
  maxConnectionsPerClient: number;
  /**
   * Bytes a watch may have waiting for a client that does not read; past it the watch is ended
   * (the client re-lists and watches again). Default 16 MiB.
   */
  watchBufferBytes: number;
  /** The same, summed over every watch: past it the most backed-up watches are ended first. Default 128 MiB. */
  watchBuffersTotalBytes: number;
  /** A watch whose client takes nothing for this long while bytes wait for it is ended. Default 60 s. */
  watchStallSeconds: number;
  /** Request bodies being received, all requests together; past it new bodies get 429. Default 64 MiB. */
  bodyBytesInFlight: number;
  /**
   * List replies being built or sent, all requests together; past it a list gets 429 — unless it is
   * the only one, so any list can be answered. Default 128 MiB.
   */
  listBytesInFlight: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = {
  requestTimeoutSeconds: 60,
  idleTimeoutSeconds: 90,
  headersTimeoutSeconds: 30,
  maxInflightPerUser: 100,
  maxWatchesPerUser: 250,
  maxConnections: 10_000,
  maxConnectionsPerClient: 1000,
  watchBufferBytes: 16 * MiB,
  watchBuffersTotalBytes: 128 * MiB,
  watchStallSeconds: 60,
  bodyBytesInFlight: 64 * MiB,
  listBytesInFlight: 128 * MiB,
};

/** Bytes a shared budget hands out; `take` fails when they would go past the total. */
export class ByteBudget {
  private used = 0;

  constructor(readonly total: number) {}

  get inUse(): number {
    return this.used;
  }

  /**
   * Takes `n` bytes if they fit. A caller that already holds `held` bytes and is the only holder
   * (everything in use is its own) may go past the total: one request of any size can proceed.
   */
  take(n: number, held?: number): boolean {
    if (this.used + n > this.total && this.used !== held) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}
