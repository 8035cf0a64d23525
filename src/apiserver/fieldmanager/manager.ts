/**
 * The field manager (kube-apiserver's fieldmanager over structured-merge-diff's Updater): every
 * write records who owns which fields. An Update takes ownership of what it added or changed and
 * takes it away from everyone else; an Apply merges its configuration into the object, conflicts
 * with other managers over values it would change, shares ownership of values it sets to what
 * they already are, and removes what it applied before and applies no more, unless someone else
 * owns it.
 */
import { isObject, type JsonObject } from '../../util/json.js';
import type { KubeObject, ManagedFieldsEntry } from '../types.js';
import { ancestorsOf, compare, dottedPath, fieldSet, fieldsV1Of, fromFieldsV1, itemElements, pathTrie, toFieldsV1, type PathTrie } from './fieldset.js';
import { encodeManagedFields, sameManager, type ManagerEntry } from './managed.js';
import { atomicMap, childSchema, listType, type Schema } from './typed.js';

/** Who writes: the field manager, the apiVersion it speaks, and '' or the subresource. */
export interface Writer {
  manager: string;
  apiVersion: string;
  subresource: string;
}

/**
 * managedFields after an Update (create, update or non-apply patch) from `before` (undefined:
 * a create) to `after`, starting from `owners` (see managersBefore).
 */
export function recordUpdate(
  before: KubeObject | undefined,
  after: KubeObject,
  owners: ManagerEntry[],
  w: Writer,
  schema: Schema,
  now: string,
): ManagedFieldsEntry[] {
  if (!before && owners.length === 0) {
    // A create: nobody else owns anything, and the creator owns every member.
    const fieldsV1 = fieldsV1Of(after, schema);
    for (const _ in fieldsV1)
      return [
        {
          manager: w.manager,
          operation: 'Update',
          apiVersion: w.apiVersion,
          time: now,
          fieldsType: 'FieldsV1',
          fieldsV1,
          ...(w.subresource ? { subresource: w.subresource } : {}),
        },
      ];
    return [];
  }
  const c = compare(before ?? {}, after, schema);
  const changed = new Set([...c.added, ...c.modified]);
  let mine = owners.find((e) => sameManager(e, { ...w, operation: 'Update' }));
  if (!mine && changed.size)
    owners.push((mine = { manager: w.manager, operation: 'Update', apiVersion: w.apiVersion, subresource: w.subresource, fields: new Set() }));
  for (const e of owners) {
    for (const p of c.removed) e.fields.delete(p);
    if (e !== mine) for (const p of changed) e.fields.delete(p);
  }
  if (mine && changed.size) {
    for (const p of changed) mine.fields.add(p);
    mine.time = now;
  }
  return encodeManagedFields(owners);
}

export interface Conflict {
  manager: string;
  /** The conflicting field, dotted (`.spec.env[name="A"].value`). */
  field: string;
}

export type ApplyResult = { object: KubeObject; managedFields: ManagedFieldsEntry[] } | { conflicts: Conflict[] };

/** Server-side apply of `config` by `w` onto `live` (undefined: a create). */
export function applyConfig(
  live: KubeObject | undefined,
  config: KubeObject,
  owners: ManagerEntry[],
  w: Writer,
  force: boolean,
  schema: Schema,
  now: string,
): ApplyResult {
  const before: JsonObject = live ?? {};
  const merged = merge(live, config, schema, true) as KubeObject;
  const applied = fieldSet(config, schema);
  const c = compare(before, merged, schema);
  const changed = new Set([...c.added, ...c.modified]);
  let mine = owners.find((e) => sameManager(e, { ...w, operation: 'Apply' }));
  const conflicts: { entry: ManagerEntry; path: string }[] = [];
  for (const e of owners) {
    if (e === mine) continue;
    for (const p of e.fields) if (changed.has(p)) conflicts.push({ entry: e, path: p });
  }
  if (conflicts.length && !force) return { conflicts: conflicts.map((x) => ({ manager: x.entry.manager, field: dottedPath(x.path) })) };
  for (const x of conflicts) x.entry.fields.delete(x.path);
  const previously = mine?.fields ?? new Set<string>();
  if (!mine) owners.push((mine = { manager: w.manager, operation: 'Apply', apiVersion: w.apiVersion, subresource: w.subresource, fields: new Set() }));
  mine.fields = applied;
  mine.apiVersion = w.apiVersion;
  mine.time = now;
  // What this manager applied before and applies no more goes, unless someone else owns it (or something in it).
  const others = new Set<string>();
  for (const e of owners) if (e !== mine) for (const p of e.fields) others.add(p);
  const othersInside = ancestorsOf(others);
  const dropped = [...previously].filter((p) => !applied.has(p) && !others.has(p) && !othersInside.has(p));
  const object = dropped.length ? removeMembers(merged, dropped, schema, (p) => others.has(p)) : merged;
  for (const p of compare(before, object, schema).removed) for (const e of owners) e.fields.delete(p);
  return { object, managedFields: encodeManagedFields(owners) };
}

/** `config` merged into `live`: granular maps member by member, set and map lists item by item, the rest replaced. */
function merge(live: unknown, config: unknown, s: Schema, root = false): unknown {
  if (config === undefined) return structuredClone(live);
  if (isObject(live) && isObject(config) && !atomicMap(s)) {
    const out: JsonObject = { ...live };
    for (const k in config) if (config[k] !== undefined) out[k] = merge(live[k], config[k], childSchema(s, k, root));
    return out;
  }
  if (Array.isArray(live) && Array.isArray(config)) {
    // An empty set or map list adds no item: it only says the applier wants the list there.
    if (config.length === 0 && listType(s).type !== 'atomic') return structuredClone(live);
    const le = itemElements(live, s);
    const ce = itemElements(config, s);
    if (le && ce) {
      const out = structuredClone(live);
      const at = new Map(le.map((e, i) => [e, i]));
      const items = s?.items;
      const granular = listType(s).type === 'map';
      config.forEach((item, j) => {
        const i = at.get(ce[j]);
        if (i === undefined) out.push(structuredClone(item));
        else if (granular) out[i] = merge(out[i], item, items);
      });
      return out;
    }
  }
  return structuredClone(config);
}

/**
 * `obj` without the members at `paths` (a list item goes whole). A map or list emptied by the
 * removal goes too, unless `kept(path)` says someone owns it; `metadata` always stays.
 */
function removeMembers(obj: KubeObject, paths: string[], schema: Schema, kept: (p: string) => boolean): KubeObject {
  const root = pathTrie(paths);
  const path: string[] = [];
  const empty = (v: unknown) => (Array.isArray(v) ? v.length === 0 : isObject(v) && Object.keys(v).length === 0);
  /** Prunes the members of map `v` under `node`. */
  const inMap = (v: JsonObject, node: PathTrie, s: Schema, isRoot: boolean) => {
    for (const [e, child] of node.children) {
      if (!e.startsWith('f:')) continue;
      const k = e.slice(2);
      if (v[k] === undefined) continue;
      if (child.member) {
        delete v[k];
        continue;
      }
      const was = empty(v[k]);
      path.push(e);
      walk(v[k], child, childSchema(s, k, isRoot));
      if (!was && empty(v[k]) && !(isRoot && k === 'metadata') && !kept(JSON.stringify(path))) delete v[k];
      path.pop();
    }
  };
  const walk = (v: unknown, node: PathTrie, s: Schema) => {
    if (isObject(v) && !atomicMap(s)) return inMap(v, node, s, false);
    if (!Array.isArray(v)) return;
    const elems = itemElements(v, s);
    if (!elems) return;
    for (let i = v.length - 1; i >= 0; i--) {
      const child = node.children.get(elems[i]);
      if (!child) continue;
      if (child.member) v.splice(i, 1);
      else if (isObject(v[i])) {
        path.push(elems[i]);
        inMap(v[i] as JsonObject, child, s?.items, false);
        path.pop();
      }
    }
  };
  const out = structuredClone(obj);
  inMap(out, root, schema, true);
  return out;
}

/** kube's message for a refused apply. */
export function conflictMessage(conflicts: Conflict[], apiVersion: string): string {
  const n = conflicts.length;
  if (n === 1) return `Apply failed with 1 conflict: conflict with "${conflicts[0].manager}" using ${apiVersion}: ${conflicts[0].field}`;
  const byManager = new Map<string, string[]>();
  for (const c of conflicts) byManager.set(c.manager, [...(byManager.get(c.manager) ?? []), c.field]);
  const lines = [...byManager].flatMap(([m, fields]) => [`conflicts with "${m}" using ${apiVersion}:`, ...fields.map((f) => `- ${f}`)]);
  return `Apply failed with ${n} conflicts: ${lines.join('\n')}`;
}

/** `managedFields` without what `obj` does not have (fields the kind's strategy dropped, defaulted away or reset). */
export function onlyExisting(managedFields: ManagedFieldsEntry[], obj: KubeObject, schema: Schema): ManagedFieldsEntry[] {
  const present = fieldSet(obj, schema);
  const out: ManagedFieldsEntry[] = [];
  for (const e of managedFields) {
    const fields = [...fromFieldsV1(e.fieldsV1)].filter((p) => present.has(p));
    if (fields.length) out.push({ ...e, fieldsV1: toFieldsV1(fields) });
  }
  return out;
}
