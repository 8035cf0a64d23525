/**
 * Label and field selectors (`labelSelector=`, `fieldSelector=` on list, watch and
 * deletecollection), parsed once per request and matched against each object.
 */

export interface Requirement {
  key: string;
  op: 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

export class SelectorError extends Error {}

/** Parses a label selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`. */
export function parseLabelSelector(s: string | null | undefined): Requirement[] {
  const out: Requirement[] = [];
  if (!s || !s.trim()) return out;
  // Split on commas that are not inside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  const keyRe = /^([A-Za-z0-9][-A-Za-z0-9_./]*)?[A-Za-z0-9]$/;
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) throw new SelectorError(`unable to parse requirement: empty requirement in "${s}"`);
    let m: RegExpExecArray | null;
    if ((m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p))) {
      out.push({ key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) });
    } else if ((m = /^(\S+?)\s*(==|!=|=)\s*(\S*)$/.exec(p))) {
      out.push({ key: m[1], op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]] });
    } else if ((m = /^!\s*(\S+)$/.exec(p))) {
      out.push({ key: m[1], op: '!exists', values: [] });
    } else if (keyRe.test(p)) {
      out.push({ key: p, op: 'exists', values: [] });
    } else throw new SelectorError(`unable to parse requirement: "${p}"`);
    if (!keyRe.test(out[out.length - 1].key)) throw new SelectorError(`invalid label key "${out[out.length - 1].key}"`);
  }
  return out;
}

/** Whether `labels` satisfy every requirement. */
export function matches(reqs: Requirement[], labels: Record<string, string> | null | undefined): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        if (!has) return false;
        break;
      case '!exists':
        if (has) return false;
        break;
      case 'in':
        if (!has || !r.values.includes(l[r.key])) return false;
        break;
      case 'notin':
        if (has && r.values.includes(l[r.key])) return false;
        break;
    }
  }
  return true;
}

export interface FieldReq {
  path: string;
  neg: boolean;
  value: string;
}

/** Parses a field selector: `path=value`, `path==value`, `path!=value`, comma-separated. */
export function parseFieldSelector(s: string | null | undefined): FieldReq[] {
  if (!s || !s.trim()) return [];
  return s.split(',').map((p) => {
    const m = /^\s*([^!=\s]+)\s*(==|!=|=)\s*(.*?)\s*$/.exec(p);
    if (!m) throw new SelectorError(`invalid selector: '${s}'; can't understand '${p}'`);
    return { path: m[1], neg: m[2] === '!=', value: m[3] };
  });
}

/** The value at a dotted path (`spec.user`), undefined when any part is missing. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Whether the object's fields satisfy every requirement (a missing field is the empty string). */
export function fieldMatches(reqs: FieldReq[], obj: object): boolean {
  for (const r of reqs) {
    const v = getPath(obj, r.path);
    const s = v === undefined || v === null ? '' : String(v);
    if ((s === r.value) === r.neg) return false;
  }
  return true;
}
