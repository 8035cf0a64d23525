/**
 * The checks a body gets besides its syntax: nesting depth, refused before anything recurses over
 * the value (JSON.stringify, structuredClone and every tree walk fail near 5,000 levels, Python's
 * json module near 1,000); member names given twice (kube's strict decoding reports them); and
 * members named `__proto__`, which an assignment to a plain object turns into a prototype change.
 */
import { MAX_JSON_DEPTH } from '../limits.js';

/** A body the server refuses for its shape; the handler answers 400 with the message. */
export class BodyShapeError extends Error {}

/** What a scan found that the request's fieldValidation decides about. */
export interface ScanResult {
  /** Dotted paths of members named more than once (`spec.user`, `items[2].name`). */
  duplicates: string[];
}

interface Frame {
  array: boolean;
  /** The member name (object parent) or index (array parent) this container sits at; '' at the top. */
  label: string;
  /** Objects: the next string is a member name. */
  expectKey: boolean;
  /** Objects: the member being read. Arrays: the element's index. */
  key: string;
  index: number;
  names: Set<string> | null;
}

const pathOf = (stack: Frame[], last?: string): string => {
  let out = '';
  const add = (parentArray: boolean, label: string) => {
    out = parentArray ? `${out}[${label}]` : out ? `${out}.${label}` : label;
  };
  for (let i = 1; i < stack.length; i++) add(stack[i - 1].array, stack[i].label);
  if (last !== undefined && stack.length) add(stack[stack.length - 1].array, last);
  return out;
};

/** The JSON string starting at `text[start]` (a quote) ends at the returned index (its closing quote), -1 if it never does. */
function stringEnd(text: string, start: number): number {
  let j = text.indexOf('"', start + 1);
  while (j > 0) {
    let backslashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === 92 /* \ */; k--) backslashes++;
    if (backslashes % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
  return -1;
}

function memberName(raw: string): string {
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw; // JSON.parse of the whole body reports it
  }
}

/**
 * Scans JSON text without building it: throws BodyShapeError past `maxDepth` levels or at a
 * member named `__proto__`; returns the duplicated member names. Text that is not JSON is left for
 * JSON.parse to report (the scan only promises to end).
 */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): ScanResult {
  const duplicates: string[] = [];
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 123 /* { */ || c === 91 /* [ */) {
      const parent = stack[stack.length - 1];
      if (stack.length >= maxDepth)
        throw new BodyShapeError(`the body nests objects and arrays more than ${maxDepth} levels deep (at ${pathOf(stack) || 'the top'})`);
      stack.push({
        array: c === 91,
        label: parent ? (parent.array ? String(parent.index) : parent.key) : '',
        expectKey: c === 123,
        key: '',
        index: 0,
        names: null,
      });
      i++;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      stack.pop();
      i++;
    } else if (c === 44 /* , */) {
      const top = stack[stack.length - 1];
      if (top) {
        if (top.array) top.index++;
        else top.expectKey = true;
      }
      i++;
    } else if (c === 34 /* " */) {
      const end = stringEnd(text, i);
      if (end < 0) break;
      const top = stack[stack.length - 1];
      if (top && !top.array && top.expectKey) {
        const name = memberName(text.slice(i + 1, end));
        if (name === '__proto__') throw new BodyShapeError(`a member named "__proto__" is not allowed (at ${pathOf(stack, name)})`);
        top.names ??= new Set();
        if (top.names.has(name)) duplicates.push(pathOf(stack, name));
        else top.names.add(name);
        top.key = name;
        top.expectKey = false;
      }
      i = end + 1;
    } else i++;
  }
  return { duplicates };
}

/**
 * Parses JSON text after scanJson's checks. Most bodies need no more than a count: a quick pass
 * checks the depth and counts member names, and when the parsed value has as many members, no
 * name was given twice (JSON.parse keeps one member per name). Only a body where the counts
 * differ, or whose member names hold an escape or `__proto__`, or that nests too deep, is
 * scanned in full for the paths and the error to report.
 */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): { value: unknown } & ScanResult {
  const members = countMemberNames(text, maxDepth);
  if (members === null) {
    const scan = scanJson(text, maxDepth);
    return { value: JSON.parse(text), ...scan };
  }
  const value = JSON.parse(text) as unknown;
  if (countMembers(value) === members) return { value, duplicates: [] };
  return { value, ...scanJson(text, maxDepth) };
}

/**
 * The member names in JSON text, or null when scanJson must look: the text nests deeper than
 * `maxDepth`, or a member name holds an escape or is `__proto__`. Text that is not JSON gets some
 * count (JSON.parse reports it).
 */
function countMemberNames(text: string, maxDepth: number): number | null {
  const inObject = new Uint8Array(maxDepth);
  const n = text.length;
  let depth = 0;
  let expectKey = false;
  let members = 0;
  let backslash = text.indexOf('\\');
  if (backslash < 0) backslash = n;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 123 /* { */ || c === 91 /* [ */) {
      if (depth >= maxDepth) return null;
      expectKey = c === 123;
      inObject[depth++] = expectKey ? 1 : 0;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === 44 /* , */) {
      expectKey = depth > 0 && inObject[depth - 1] === 1;
    } else if (c === 34 /* " */) {
      const end = stringEnd(text, i);
      if (end < 0) break;
      if (expectKey) {
        if (backslash < i) {
          backslash = text.indexOf('\\', i);
          if (backslash < 0) backslash = n;
        }
        if (backslash < end || (end - i === 10 && text.startsWith('__proto__', i + 1))) return null;
        members++;
        expectKey = false;
      }
      i = end;
    }
  }
  return members;
}

/** Members of every object in a parsed value (its depth was checked before it was parsed). */
function countMembers(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) n += countMembers(x);
    return n;
  }
  for (const k in v) {
    n++;
    n += countMembers((v as Record<string, unknown>)[k]);
  }
  return n;
}

/**
 * The deepest flow collection (`[…]`, `{…}`) in YAML text, outside quotes and comments: the yaml
 * library's parser runs out of memory on a few thousand levels, so they are counted before it runs.
 */
export function yamlFlowDepth(text: string): number {
  let depth = 0,
    max = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 91 || c === 123) {
      if (++depth > max) max = depth;
    } else if (c === 93 || c === 125) {
      if (depth > 0) depth--;
    } else if (c === 34 /* " */) {
      for (i++; i < n && text.charCodeAt(i) !== 34; i++) if (text.charCodeAt(i) === 92) i++;
    } else if (c === 39 /* ' */) {
      // '' inside a single-quoted scalar is an escaped quote: the loop just enters the next one.
      for (i++; i < n && text.charCodeAt(i) !== 39; i++);
    } else if (c === 35 /* # */ && (i === 0 || /\s/.test(text[i - 1]))) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? n : eol;
    }
  }
  return max;
}

/**
 * Walks a decoded value without recursion: throws BodyShapeError past `maxDepth` levels or at a
 * member named `__proto__` (YAML documents, and objects a patch produced).
 */
export function checkShape(value: unknown, maxDepth = MAX_JSON_DEPTH): void {
  const todo: [unknown, number][] = [[value, 0]];
  while (todo.length) {
    const [v, d] = todo.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= maxDepth) throw new BodyShapeError(`the object nests objects and arrays more than ${maxDepth} levels deep`);
    if (Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object') todo.push([x, d + 1]);
      continue;
    }
    if (Object.hasOwn(v, '__proto__')) throw new BodyShapeError('a member named "__proto__" is not allowed');
    for (const x of Object.values(v)) if (x !== null && typeof x === 'object') todo.push([x, d + 1]);
  }
}
