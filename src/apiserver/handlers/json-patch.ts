/**
 * RFC 6902 JSON patch, applied within the limits kube-apiserver sets: at most
 * MAX_JSON_PATCH_OPERATIONS operations, `copy` operations duplicating at most
 * MAX_JSON_PATCH_COPY_BYTES together, nothing placed deeper than MAX_JSON_DEPTH. Each operation
 * costs what it touches (fast-json-patch's validating mode cloned the whole document per
 * operation: a few hundred `copy` operations held the event loop for minutes). Member names are
 * own properties only: `constructor` is an ordinary name and `__proto__` is refused.
 */
import { isObject, jsonEqual, type JsonObject } from '../../util/json.js';
import { MAX_JSON_DEPTH, MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS } from '../limits.js';

/** Why a patch cannot be applied; `tooLarge` ones are 413, a failed `test` and the rest 422. */
export class JsonPatchError extends Error {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'test' | 'tooLarge' = 'invalid',
  ) {
    super(message);
  }
}

type Container = JsonObject | unknown[];

interface Operation {
  op: string;
  path: string[];
  from?: string[];
  value?: unknown;
}

function parsePointer(p: unknown, what: string, index: number): string[] {
  if (typeof p !== 'string') throw new JsonPatchError(`operation ${index}: ${what} must be a string`);
  if (p === '') return [];
  if (!p.startsWith('/')) throw new JsonPatchError(`operation ${index}: ${what} ${JSON.stringify(p)} is not a JSON pointer (it must start with "/")`);
  const tokens = p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (tokens.includes('__proto__')) throw new JsonPatchError(`operation ${index}: ${what} ${JSON.stringify(p)} names "__proto__"`);
  return tokens;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

function parseOperations(patch: unknown[]): Operation[] {
  if (patch.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new JsonPatchError(`The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${patch.length}`, 'tooLarge');
  }
  return patch.map((raw, i) => {
    if (!isObject(raw)) throw new JsonPatchError(`operation ${i} is not an object`);
    const op = raw.op;
    if (typeof op !== 'string' || !OPS.has(op))
      throw new JsonPatchError(`operation ${i}: unsupported op ${JSON.stringify(op ?? null)} (add, remove, replace, move, copy or test)`);
    const out: Operation = { op, path: parsePointer(raw.path, 'path', i) };
    if (op === 'move' || op === 'copy') out.from = parsePointer(raw.from, 'from', i);
    if (op === 'add' || op === 'replace' || op === 'test') {
      if (!Object.hasOwn(raw, 'value')) throw new JsonPatchError(`operation ${i}: ${op} needs a value`);
      out.value = raw.value;
    }
    return out;
  });
}

const pointer = (tokens: string[]) => (tokens.length ? '/' + tokens.map((t) => t.replace(/~/g, '~0').replace(/\//g, '~1')).join('/') : '');

/** An array index token: decimal, no leading zeros. */
function arrayIndex(token: string, length: number, allowEnd: boolean, where: string): number {
  if (allowEnd && token === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`${where}: ${JSON.stringify(token)} is not an array index`);
  const i = Number(token);
  if (i > length || (!allowEnd && i === length)) throw new JsonPatchError(`${where}: index ${i} is out of bounds (the array has ${length} elements)`);
  return i;
}

function child(c: Container, token: string): unknown {
  if (Array.isArray(c)) return /^(0|[1-9][0-9]*)$/.test(token) ? c[Number(token)] : undefined;
  return Object.hasOwn(c, token) ? c[token] : undefined;
}

/** The container holding `tokens`' last member, which must exist. */
function parentOf(doc: unknown, tokens: string[], where: string): Container {
  let cur = doc;
  for (let i = 0; i < tokens.length - 1; i++) {
    if (cur === null || typeof cur !== 'object') break;
    cur = child(cur as Container, tokens[i]);
  }
  if (cur === null || typeof cur !== 'object')
    throw new JsonPatchError(`${where}: the path's parent ${pointer(tokens.slice(0, -1)) || '(the document)'} does not exist`);
  return cur as Container;
}

function valueAt(doc: unknown, tokens: string[], where: string): unknown {
  if (!tokens.length) return doc;
  const parent = parentOf(doc, tokens, where);
  const last = tokens[tokens.length - 1];
  const v = child(parent, last);
  const present = Array.isArray(parent) ? v !== undefined : Object.hasOwn(parent, last);
  if (!present) throw new JsonPatchError(`${where}: ${pointer(tokens)} does not exist`);
  return v;
}

/** Levels of arrays and objects in `v` (a scalar is 0), counted without recursion, up to `cap`. */
function depthOf(v: unknown, cap: number): number {
  let max = 0;
  const todo: [unknown, number][] = [[v, 0]];
  while (todo.length) {
    const [x, d] = todo.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d + 1 > max) max = d + 1;
    if (max > cap) return max;
    for (const y of Array.isArray(x) ? x : Object.values(x)) if (y !== null && typeof y === 'object') todo.push([y, d + 1]);
  }
  return max;
}

/** Bytes of `v` as JSON (close enough: string lengths, not their escapes), counted up to `cap`. */
function sizeOf(v: unknown, cap: number): number {
  let n = 0;
  const todo: unknown[] = [v];
  while (todo.length && n <= cap) {
    const x = todo.pop();
    if (typeof x === 'string') n += x.length + 2;
    else if (x === null || typeof x !== 'object') n += String(x).length;
    else if (Array.isArray(x)) {
      n += 2 + x.length;
      for (const y of x) todo.push(y);
    } else {
      n += 2;
      for (const [k, y] of Object.entries(x)) {
        n += k.length + 4;
        todo.push(y);
      }
    }
  }
  return n;
}

function setAt(doc: unknown, tokens: string[], value: unknown, insert: boolean, where: string): unknown {
  if (tokens.length + depthOf(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new JsonPatchError(`${where}: the value would sit more than ${MAX_JSON_DEPTH} levels deep`);
  }
  if (!tokens.length) return value;
  const parent = parentOf(doc, tokens, where);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const i = arrayIndex(last, parent.length, insert, where);
    if (insert) parent.splice(i, 0, value);
    else parent[i] = value;
  } else {
    if (!insert && !Object.hasOwn(parent, last)) throw new JsonPatchError(`${where}: ${pointer(tokens)} does not exist`);
    parent[last] = value;
  }
  return doc;
}

function removeAt(doc: unknown, tokens: string[], where: string): unknown {
  if (!tokens.length) throw new JsonPatchError(`${where}: the whole document cannot be removed`);
  const parent = parentOf(doc, tokens, where);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, false, where), 1);
  else {
    if (!Object.hasOwn(parent, last)) throw new JsonPatchError(`${where}: ${pointer(tokens)} does not exist`);
    delete parent[last];
  }
  return doc;
}

/** Applies `patch` to `doc`, which it may change in place; returns the patched document. */
export function applyJsonPatch(doc: unknown, patch: unknown[]): unknown {
  const ops = parseOperations(patch);
  let copied = 0;
  ops.forEach((o, i) => {
    const where = `operation ${i} (${o.op} ${pointer(o.path)})`;
    switch (o.op) {
      case 'add':
        doc = setAt(doc, o.path, o.value, true, where);
        break;
      case 'replace':
        valueAt(doc, o.path, where);
        doc = setAt(doc, o.path, o.value, false, where);
        break;
      case 'remove':
        doc = removeAt(doc, o.path, where);
        break;
      case 'test':
        if (!jsonEqual(valueAt(doc, o.path, where), o.value)) throw new JsonPatchError(`${where}: testing value failed`, 'test');
        break;
      case 'move': {
        const from = o.from!;
        if (from.length < o.path.length && from.every((t, k) => t === o.path[k])) throw new JsonPatchError(`${where}: a value cannot be moved into itself`);
        const v = valueAt(doc, from, where);
        doc = removeAt(doc, from, where);
        doc = setAt(doc, o.path, v, true, where);
        break;
      }
      case 'copy': {
        const v = valueAt(doc, o.from!, where);
        copied += sizeOf(v, MAX_JSON_PATCH_COPY_BYTES - copied);
        if (copied > MAX_JSON_PATCH_COPY_BYTES) {
          throw new JsonPatchError(
            `Unable to complete the copy, the accumulated size increase of copy is more than the limit of ${MAX_JSON_PATCH_COPY_BYTES} bytes`,
            'tooLarge',
          );
        }
        doc = setAt(doc, o.path, v !== null && typeof v === 'object' ? structuredClone(v) : v, true, where);
        break;
      }
    }
  });
  return doc;
}
