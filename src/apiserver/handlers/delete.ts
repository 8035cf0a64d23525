/** delete and deletecollection. */
import { isObject, type JsonObject } from '../../util/json.js';
import { invalid } from '../errors.js';
import type { Preconditions, Propagation } from '../registry/rest.js';
import { decode } from '../request/body.js';
import { fieldMatches, matches } from '../request/selectors.js';
import type { StoredObject } from '../types.js';
import { listOf } from './get.js';
import { dryRun, getStored, namespaceFilter, selectors, toWire, writeRequest, type RequestScope } from './scope.js';

/** The DeleteOptions body, {} when there is none. */
async function deleteOptions(s: RequestScope): Promise<JsonObject> {
  const { raw, type } = await s.services.bodies.read(s.req);
  if (!raw.trim()) return {};
  const { value } = decode(raw, type || 'application/json');
  return isObject(value) ? value : {};
}

/** dryRun comes as a query parameter or in DeleteOptions. */
function deleteDryRun(s: RequestScope, opts: JsonObject): boolean {
  return dryRun(s) || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All'));
}

/** propagationPolicy from the query or DeleteOptions (orphanDependents: true is Orphan); Background by default. */
function propagation(s: RequestScope, opts: JsonObject): Propagation {
  const p = s.query.get('propagationPolicy') ?? opts.propagationPolicy;
  if (p === undefined || p === null) {
    const orphan = s.query.get('orphanDependents') ?? opts.orphanDependents;
    return orphan === true || orphan === 'true' ? 'Orphan' : 'Background';
  }
  if (p === 'Foreground' || p === 'Background' || p === 'Orphan') return p;
  throw invalid('DeleteOptions', '', '', [
    {
      reason: 'FieldValueNotSupported',
      message: `Unsupported value: ${JSON.stringify(p)}: supported values: "Foreground", "Background", "Orphan"`,
      field: 'propagationPolicy',
    },
  ]);
}

export async function deleteOne(s: RequestScope): Promise<void> {
  const opts = await deleteOptions(s);
  const dry = deleteDryRun(s, opts);
  const old = getStored(s);
  const pre: Preconditions = isObject(opts.preconditions) ? opts.preconditions : {};
  const r = s.services.rest.delete(writeRequest(s, dry), old, pre, propagation(s, opts));
  s.services.respond.send(s.res, 200, toWire(s, r), s.warnings);
}

export async function deleteCollection(s: RequestScope): Promise<void> {
  const opts = await deleteOptions(s);
  const dry = deleteDryRun(s, opts);
  const { labels, fields } = selectors(s);
  const { storage, rest, respond } = s.services;
  const items: StoredObject[] = [];
  // Namespaces are deleted one by one (deleting them all would take the system's with them).
  const namespaces = s.kind.group === '' && s.kind.resource === 'namespaces';
  for (const o of [...storage.iterate(s.kind.storageKey, namespaceFilter(s))]) {
    if (!matches(labels, o.metadata.labels) || (fields.length && !fieldMatches(fields, toWire(s, o)))) continue;
    if (namespaces) continue;
    items.push(toWire(s, rest.delete(writeRequest(s, dry), o, {}, propagation(s, opts))));
  }
  respond.send(s.res, 200, listOf(s, { resourceVersion: String(storage.currentRv) }, items), s.warnings);
}
