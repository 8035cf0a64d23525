/**
 * The OpenAPI v2 document as gnostic protobuf: kubectl asks for /openapi/v2 only in this form.
 * A hand-written encoder of the few messages involved (Document, Info, Schema, NamedSchema…).
 */
import YAML from 'yaml';
import type { JsonSchema } from '../types.js';
import type { OpenApiV2 } from './openapi.js';

function vint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(Math.trunc(n));
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const key = (no: number, wire: number) => vint((no << 3) | wire);
const pbBytes = (no: number, b: Buffer) => Buffer.concat([key(no, 2), vint(b.length), b]);
const pbStr = (no: number, s: string) => pbBytes(no, Buffer.from(s, 'utf8'));
const pbVarint = (no: number, n: number) => Buffer.concat([key(no, 0), vint(n)]);
function pbDouble(no: number, n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n);
  return Buffer.concat([key(no, 1), b]);
}
const pbAnyYaml = (v: unknown) => pbStr(2, YAML.stringify(v).trimEnd());

function pbSchema(s: JsonSchema): Buffer {
  const parts: Buffer[] = [];
  if (typeof s.$ref === 'string') parts.push(pbStr(1, s.$ref));
  if (typeof s.format === 'string') parts.push(pbStr(2, s.format));
  if (typeof s.title === 'string') parts.push(pbStr(3, s.title));
  if (typeof s.description === 'string') parts.push(pbStr(4, s.description));
  if (typeof s.maximum === 'number') parts.push(pbDouble(7, s.maximum));
  if (typeof s.minimum === 'number') parts.push(pbDouble(9, s.minimum));
  if (typeof s.maxLength === 'number') parts.push(pbVarint(11, s.maxLength));
  if (typeof s.minLength === 'number') parts.push(pbVarint(12, s.minLength));
  if (typeof s.pattern === 'string') parts.push(pbStr(13, s.pattern));
  if (typeof s.maxItems === 'number') parts.push(pbVarint(14, s.maxItems));
  if (typeof s.minItems === 'number') parts.push(pbVarint(15, s.minItems));
  for (const r of Array.isArray(s.required) ? s.required : []) parts.push(pbStr(19, String(r)));
  for (const e of Array.isArray(s.enum) ? s.enum : []) parts.push(pbBytes(20, pbAnyYaml(e)));
  if (s.additionalProperties !== undefined) {
    parts.push(
      pbBytes(21, typeof s.additionalProperties === 'boolean' ? pbVarint(2, s.additionalProperties ? 1 : 0) : pbBytes(1, pbSchema(s.additionalProperties))),
    );
  }
  if (s.type !== undefined) parts.push(pbBytes(22, Buffer.concat((Array.isArray(s.type) ? s.type : [s.type]).map((t: string) => pbStr(1, t)))));
  if (s.items) parts.push(pbBytes(23, pbBytes(1, pbSchema(s.items))));
  for (const a of Array.isArray(s.allOf) ? s.allOf : []) parts.push(pbBytes(24, pbSchema(a)));
  if (s.properties) {
    parts.push(pbBytes(25, Buffer.concat(Object.entries(s.properties).map(([n, v]) => pbBytes(1, Buffer.concat([pbStr(1, n), pbBytes(2, pbSchema(v))]))))));
  }
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-')) parts.push(pbBytes(31, Buffer.concat([pbStr(1, k), pbBytes(2, pbAnyYaml(v))])));
  }
  return Buffer.concat(parts);
}

/**
 * The v2 document as gnostic protobuf: definitions only (kubectl 1.27 `explain` and client-side
 * validation read them; the fieldValidation probe reads /openapi/v3 first).
 */
export function openapiV2Protobuf(doc: OpenApiV2): Buffer {
  const info = Buffer.concat([pbStr(1, doc.info.title), pbStr(2, doc.info.version)]);
  const defs = Object.entries(doc.definitions).map(([n, v]) => pbBytes(1, Buffer.concat([pbStr(1, n), pbBytes(2, pbSchema(v))])));
  return Buffer.concat([pbStr(1, '2.0'), pbBytes(2, info), pbBytes(9, Buffer.concat(defs))]);
}
