/** Table output (`kubectl get`): printer columns evaluated with a small JSONPath. */
import { isObject } from '../../util/json.js';
import { getPath } from '../request/selectors.js';
import type { JsonObject, KubeObject, ListMeta, PrinterColumn } from '../types.js';
import type { ResourceKind } from './kinds.js';

export const ageColumn: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};

const keyCount = (m: unknown) => (isObject(m) ? Object.keys(m).length : 0);

/** Columns for Table output: Name first, then printer columns (CRDs without any get Age). */
export function columnsFor(kind: ResourceKind, version: string): PrinterColumn[] {
  const v = kind.versions.find((x) => x.name === version) ?? kind.versions[0];
  const name: PrinterColumn = {
    name: 'Name',
    type: 'string',
    format: 'name',
    jsonPath: '.metadata.name',
    description: 'Name must be unique within a namespace.',
  };
  return [name, ...(v.columns && v.columns.length ? v.columns : [ageColumn])];
}

function cell(obj: KubeObject, c: PrinterColumn, now: number): unknown {
  // Secrets and ConfigMaps show how many keys they hold, not the data.
  if (c.jsonPath === '.data' && c.name === 'Data') return keyCount(obj.data) + keyCount(obj.binaryData);
  // A binding shows the role it grants as Kind/name.
  if (c.jsonPath === '.roleRef' && isObject(obj.roleRef)) return `${String(obj.roleRef.kind)}/${String(obj.roleRef.name)}`;
  const vals = jsonPath(obj, c.jsonPath);
  if (vals.length === 0) return c.type === 'date' ? '<unknown>' : null;
  const v = vals.length === 1 ? vals[0] : vals.map(String).join(',');
  if (c.type === 'date' && typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? v : humanDuration(now - t);
  }
  if (c.type === 'integer' || c.type === 'number') return typeof v === 'number' ? v : Number(v);
  if (c.type === 'boolean') return typeof v === 'boolean' ? v : String(v) === 'true';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** A meta.k8s.io/v1 Table of `objs`; `withColumns` false leaves out the column definitions (watch events after the first). */
export function toTable(kind: ResourceKind, version: string, objs: KubeObject[], includeObject: string, listMeta: ListMeta, withColumns = true): JsonObject {
  const cols = columnsFor(kind, version);
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withColumns
      ? cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))
      : [],
    rows: objs.map((o) => ({
      cells: cols.map((c) => cell(o, c, now)),
      object:
        includeObject === 'None'
          ? undefined
          : includeObject === 'Object'
            ? o
            : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
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
        if (isObject(c) && Object.hasOwn(c, k) && c[k] !== undefined) next.push(c[k]);
      } else if (m[3] !== undefined) {
        if (!Array.isArray(c)) continue;
        if (m[3] === '*') next.push(...c);
        else if (c[Number(m[3])] !== undefined) next.push(c[Number(m[3])]);
      } else if (m[4] !== undefined) {
        const arr = Array.isArray(c) ? c : [c];
        for (const item of arr) {
          const v = item && typeof item === 'object' ? getPath(item, m[4]) : undefined;
          if ((String(v) === m[6]) === (m[5] === '==')) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}

/** An age as kubectl prints it: `45s`, `3m20s`, `5h`, `12d`, `2y`. */
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
