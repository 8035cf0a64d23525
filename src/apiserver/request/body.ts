/** Reading and decoding request bodies: JSON, YAML, and kube's protobuf for core kinds. */
import YAML from 'yaml';
import { isObject, type JsonObject } from '../../util/json.js';
import { ApiError, badRequest, unsupportedMediaType } from '../errors.js';
import { decodeK8sProtobuf } from './protobuf.js';
import type { Req } from './http.js';

/** Largest body accepted (kube's limit for one object is about this). */
export const MAX_BODY = 3 * 1024 * 1024;

const YAML_TYPES = new Set(['application/yaml', 'application/apply-patch+yaml', 'application/x-yaml', 'text/yaml']);
const OBJECT_TYPES = new Set(['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml', '*/*']);

export interface Body {
  raw: string;
  /** The media type without parameters, lower case ('' when none was sent). */
  type: string;
  buf: Buffer;
}

/** Reads the whole body (events, not async iteration: that was ~2% of a create's CPU). */
export function readBody(req: Req): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    const tooLarge = () => new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY}`);
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Past the limit keep draining (so the client can read the 413) but stop buffering; give up on absurd sizes.
      if (size > MAX_BODY * 16) {
        fail(tooLarge());
        req.destroy();
      } else if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('error', fail);
    req.on('close', () => fail(new Error('the client closed the request before sending all of its body')));
    req.on('end', () => {
      if (settled) return;
      settled = true;
      if (size > MAX_BODY) return reject(tooLarge());
      const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const buf = Buffer.concat(chunks);
      resolve({ raw: buf.toString('utf8'), type, buf });
    });
  });
}

/** Decodes JSON or (for YAML media types) exactly one YAML document. */
export function decode(raw: string, type: string): unknown {
  if (!raw.trim()) throw badRequest('Object \'Kind\' is missing in \'\'');
  if (YAML_TYPES.has(type)) {
    try {
      const docs = YAML.parseAllDocuments(raw);
      if (docs.length !== 1 || docs[0].errors.length) throw new Error(docs[0]?.errors[0]?.message ?? 'expected one YAML document');
      return docs[0].toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw badRequest(`error decoding YAML: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw badRequest(`error decoding JSON: ${(e as Error).message}`);
  }
}

/** Reads a body that must be one object (create, update, reviews). */
export async function readObject(req: Req): Promise<JsonObject> {
  const { raw, type, buf } = await readBody(req);
  if (type === 'application/vnd.kubernetes.protobuf') {
    try {
      return decodeK8sProtobuf(buf);
    } catch (e) {
      throw unsupportedMediaType('application/json, application/yaml', ` (${(e as Error).message})`);
    }
  }
  if (type && !OBJECT_TYPES.has(type)) throw unsupportedMediaType('application/json, application/yaml');
  const o = decode(raw, type);
  if (!isObject(o)) throw badRequest('the object provided is not a JSON object');
  return o;
}
