/** Reading and decoding request bodies: JSON, YAML, and kube's protobuf for core kinds. */
import YAML from 'yaml';
import { isObject, type JsonObject } from '../../util/json.js';
import { ApiError, badRequest, requestEntityTooLarge, tooManyRequests, unsupportedMediaType } from '../errors.js';
import { ByteBudget, MAX_JSON_DEPTH, MAX_REQUEST_BODY_BYTES } from '../limits.js';
import { decodeK8sProtobuf } from './protobuf.js';
import type { Req } from './http.js';
import { BodyShapeError, checkShape, parseJson, yamlFlowDepth } from './json.js';

/** Largest body accepted (kube's limit for one object is about this). */
export const MAX_BODY = MAX_REQUEST_BODY_BYTES;

const YAML_TYPES = new Set(['application/yaml', 'application/apply-patch+yaml', 'application/x-yaml', 'text/yaml']);
const OBJECT_TYPES = new Set(['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml', '*/*']);

export interface Body {
  raw: string;
  /** The media type without parameters, lower case ('' when none was sent). */
  type: string;
  buf: Buffer;
}

/** A decoded body, with the member names it gave twice (for the request's fieldValidation). */
export interface Decoded<T = unknown> {
  value: T;
  duplicates: string[];
}

/**
 * Receives request bodies within the server's limits: at most MAX_BODY bytes each, all bodies in
 * flight together within `budget` (429 beyond, as kube's max-inflight answers), each complete
 * within `timeoutMs` (408). A refused body's connection is closed after the reply (see
 * ApiError.closeConnection), so a client cannot keep the upload going.
 */
export class BodyReader {
  constructor(
    private readonly budget: ByteBudget,
    private readonly timeoutMs: number,
  ) {}

  /** Reads the whole body (events, not async iteration: that was ~2% of a create's CPU). */
  read(req: Req): Promise<Body> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let held = 0;
      let settled = false;
      const release = () => {
        this.budget.give(held);
        held = 0;
        clearTimeout(timer);
      };
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        release();
        chunks.length = 0;
        reject(e);
      };
      const timer = setTimeout(() => {
        fail(closing(new ApiError(408, 'Timeout', `the request body did not arrive within ${this.timeoutMs / 1000}s (the server's request timeout)`)));
      }, this.timeoutMs);
      const tooLarge = () => closing(requestEntityTooLarge(`limit is ${MAX_BODY}`));
      const onData = (c: Buffer) => {
        size += c.length;
        if (settled) {
          // A refused body is drained (so the client can read the reply), never buffered; absurd sizes end the connection.
          if (size > MAX_BODY * 16) req.destroy();
          return;
        }
        if (size > MAX_BODY) return fail(tooLarge());
        if (!this.budget.take(c.length)) {
          return fail(closing(tooManyRequests('the server is receiving too many request bodies at once')));
        }
        held += c.length;
        chunks.push(c);
      };
      req.on('data', onData);
      // A client that goes away mid-upload is no server failure: 499 (nginx's code) in the metrics, nothing logged.
      // Every stream closes once its reply is out: the error is built only for a body still arriving.
      const gone = () => {
        if (!settled) fail(new ApiError(499, 'ClientClosedRequest', 'the client closed the request before sending all of its body'));
      };
      req.on('error', gone);
      req.on('close', gone);
      const onEnd = () => {
        if (settled) return;
        settled = true;
        release();
        // A closed HTTP/2 stream often outlives young-generation GCs, and keeps what its listeners
        // hold: let go of them, so the body dies with the request (P6's creates: a third fewer
        // bytes promoted to the old generation per scavenge).
        req.off('data', onData);
        req.off('error', gone);
        req.off('close', gone);
        req.off('end', onEnd);
        const type = String(req.headers['content-type'] ?? '')
          .split(';')[0]
          .trim()
          .toLowerCase();
        const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        chunks.length = 0;
        resolve({ raw: buf.toString('utf8'), type, buf });
      };
      req.on('end', onEnd);
    });
  }

  /** Reads a body that must be one object (create, update, reviews). */
  async readObject(req: Req): Promise<Decoded<JsonObject>> {
    const { raw, type, buf } = await this.read(req);
    if (type === 'application/vnd.kubernetes.protobuf') {
      try {
        return { value: decodeK8sProtobuf(buf), duplicates: [] };
      } catch (e) {
        throw unsupportedMediaType('application/json, application/yaml', ` (${(e as Error).message})`);
      }
    }
    if (type && !OBJECT_TYPES.has(type)) throw unsupportedMediaType('application/json, application/yaml');
    const d = decode(raw, type);
    if (!isObject(d.value)) throw badRequest('the object provided is not a JSON object');
    return d as Decoded<JsonObject>;
  }
}

/** Marks an error whose reply must also end the connection (HTTP/1.1) or the client's upload (HTTP/2). */
function closing(e: ApiError): ApiError {
  e.closeConnection = true;
  return e;
}

/**
 * Decodes JSON or (for YAML media types) exactly one YAML document. Either way the value is at most
 * MAX_JSON_DEPTH levels deep and has no member named `__proto__` (400 otherwise).
 */
export function decode(raw: string, type: string): Decoded {
  if (!raw.trim()) throw badRequest("Object 'Kind' is missing in ''");
  if (YAML_TYPES.has(type)) {
    if (yamlFlowDepth(raw) > MAX_JSON_DEPTH) throw badRequest(`error decoding YAML: the body nests collections more than ${MAX_JSON_DEPTH} levels deep`);
    let value: unknown;
    try {
      const docs = YAML.parseAllDocuments(raw);
      if (docs.length !== 1 || docs[0].errors.length) throw new Error(docs[0]?.errors[0]?.message ?? 'expected one YAML document');
      value = docs[0].toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw badRequest(`error decoding YAML: ${(e as Error).message}`);
    }
    try {
      checkShape(value);
    } catch (e) {
      if (e instanceof BodyShapeError) throw badRequest(`error decoding YAML: ${e.message}`);
      throw e;
    }
    // The yaml library refuses keys given twice itself ("Map keys must be unique").
    return { value, duplicates: [] };
  }
  try {
    return parseJson(raw);
  } catch (e) {
    throw badRequest(`error decoding JSON: ${(e as Error).message}`);
  }
}
