import type { Obj } from './store.js';

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

export function matches(reqs: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists': if (!has) return false; break;
      case '!exists': if (has) return false; break;
      case 'in': if (!has || !r.values.includes(l[r.key])) return false; break;
      case 'notin': if (has && r.values.includes(l[r.key])) return false; break;
    }
  }
  return true;
}

export interface FieldReq {
  path: string;
  neg: boolean;
  value: string;
}

export function parseFieldSelector(s: string | null | undefined): FieldReq[] {
  if (!s || !s.trim()) return [];
  return s.split(',').map((p) => {
    const m = /^\s*([^!=\s]+)\s*(==|!=|=)\s*(.*?)\s*$/.exec(p);
    if (!m) throw new SelectorError(`invalid selector: '${s}'; can't understand '${p}'`);
    return { path: m[1], neg: m[2] === '!=', value: m[3] };
  });
}

export function getPath(obj: Obj, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Obj)[part];
  }
  return cur;
}

export function fieldMatches(reqs: FieldReq[], obj: Obj): boolean {
  for (const r of reqs) {
    const v = getPath(obj, r.path);
    const s = v === undefined || v === null ? '' : String(v);
    if ((s === r.value) === r.neg) return false;
  }
  return true;
}

/** A small JSONPath evaluator for printer columns: `.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`. */
export function jsonPath(obj: unknown, expr: string): unknown[] {
  let e = expr.trim();
  if (e.startsWith('{') && e.endsWith('}')) e = e.slice(1, -1);
  if (e.startsWith('$')) e = e.slice(1);
  let cur: unknown[] = [obj];
  const re = /\.([A-Za-z0-9_\-/]+)|\['([^']+)'\]|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*(==|!=)\s*["']?([^"')]*)["']?\)\]/y;
  let pos = 0;
  while (pos < e.length) {
    re.lastIndex = pos;
    const m = re.exec(e);
    if (!m) return [];
    pos = re.lastIndex;
    const next: unknown[] = [];
    for (const c of cur) {
      if (c === null || c === undefined) continue;
      if (m[1] !== undefined || m[2] !== undefined) {
        const k = m[1] ?? m[2];
        if (typeof c === 'object' && !Array.isArray(c) && (c as Obj)[k] !== undefined) next.push((c as Obj)[k]);
      } else if (m[3] !== undefined) {
        if (!Array.isArray(c)) continue;
        if (m[3] === '*') next.push(...c);
        else if (c[Number(m[3])] !== undefined) next.push(c[Number(m[3])]);
      } else if (m[4] !== undefined) {
        const arr = Array.isArray(c) ? c : [c];
        for (const item of arr) {
          const v = item && typeof item === 'object' ? getPath(item as Obj, m[4]) : undefined;
          if ((String(v) === m[6]) === (m[5] === '==')) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}

export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return `${d}d${h % 24 ? `${h % 24}h` : ''}`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

let isoSecond = -1;
let isoText = '';
/** The current time at second precision, as Kubernetes' metav1.Time (formatted once per second). */
export function nowIso(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoText = new Date(second * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  return isoText;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ka = Object.keys(a as Obj).filter((k) => (a as Obj)[k] !== undefined);
  const kb = Object.keys(b as Obj).filter((k) => (b as Obj)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Obj)[k], (b as Obj)[k]));
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * Strategic merge patch, reduced to what the core types served here need: maps merge, lists of
 * objects with a `name` (or `uid`) merge by that key, `$patch: delete|replace`, `$deleteFromPrimitiveList`,
 * `$setElementOrder` and `$retainKeys` directives.
 */
export function strategicMerge(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;  
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Obj = isObj(target) ? { ...target } : {};
  if (Array.isArray(patch.$retainKeys)) {
    for (const k of Object.keys(out)) if (!patch.$retainKeys.includes(k)) delete out[k];
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f])) out[f] = out[f].filter((x: unknown) => !(v as unknown[]).includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    if (Array.isArray(v) && Array.isArray(out[k]) && v.every(isObj) && out[k].every(isObj)) {
      const key = ['name', 'uid', 'type', 'key'].find((kk) => v.every((x: Obj) => x[kk] !== undefined || x.$patch) && out[k].every((x: Obj) => x[kk] !== undefined));
      if (key) {
        const merged: Obj[] = [...out[k]];
        for (const item of v as Obj[]) {
          const idx = merged.findIndex((x) => x[key] === item[key]);
          if (item.$patch === 'delete') {
            if (idx >= 0) merged.splice(idx, 1);
          } else if (idx >= 0) merged[idx] = strategicMerge(merged[idx], item) as Obj;
          else merged.push(strategicMerge(undefined, item) as Obj);
        }
        out[k] = merged;
        continue;
      }
    }
    const r = strategicMerge(out[k], v);
    if (r === undefined) delete out[k];
    else out[k] = r;
  }
  return out;
}
