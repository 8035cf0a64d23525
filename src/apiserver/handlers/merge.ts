/**
 * The merge patches of PATCH: RFC 7386 JSON merge patch and strategic merge patch for core kinds.
 * Member names are own properties only (`constructor` is an ordinary name; bodies never carry
 * `__proto__`, request/json.ts refuses it).
 */
import { isObject, type JsonObject } from '../../util/json.js';

const own = (o: JsonObject, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(own(out, k), v);
  }
  return out;
}

/**
 * Strategic merge patch, reduced to what the core types served here need: maps merge, lists of
 * objects with a `name` (or `uid`) merge by that key, `$patch: delete|replace`, `$deleteFromPrimitiveList`,
 * `$setElementOrder` and `$retainKeys` directives.
 */
export function strategicMerge(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  if (Array.isArray(patch.$retainKeys)) {
    for (const k of Object.keys(out)) if (!patch.$retainKeys.includes(k)) delete out[k];
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      const list = own(out, f);
      if (Array.isArray(list)) out[f] = list.filter((x: unknown) => !(v as unknown[]).includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = own(out, k);
    if (Array.isArray(v) && Array.isArray(cur) && v.every(isObject) && cur.every(isObject)) {
      const key = ['name', 'uid', 'type', 'key'].find((kk) => v.every((x) => x[kk] !== undefined || x.$patch) && cur.every((x) => x[kk] !== undefined));
      if (key) {
        const merged: JsonObject[] = [...cur];
        for (const item of v) {
          const idx = merged.findIndex((x) => x[key] === item[key]);
          if (item.$patch === 'delete') {
            if (idx >= 0) merged.splice(idx, 1);
          } else if (idx >= 0) merged[idx] = strategicMerge(merged[idx], item) as JsonObject;
          else merged.push(strategicMerge(undefined, item) as JsonObject);
        }
        out[k] = merged;
        continue;
      }
    }
    const r = strategicMerge(cur, v);
    if (r === undefined) delete out[k];
    else out[k] = r;
  }
  return out;
}
