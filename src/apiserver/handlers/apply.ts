/** Server-side apply (PATCH with application/apply-patch+yaml): merges the applied fields and records who owns them. */
import { isObject } from '../../util/json.js';
import { ApiError, badRequest, conflict } from '../errors.js';
import { parseBool } from '../request/info.js';
import { apply as serverSideApply, conflictMessage } from '../ssa.js';
import type { StoredObject } from '../types.js';
import { checkName, checkNamespace, decodeMetadata, toWire, writeRequest, type RequestScope } from './scope.js';

export function apply(s: RequestScope, old: StoredObject | undefined, body: unknown, dry: boolean): void {
  if (!isObject(body)) throw badRequest('the apply patch must be an object');
  const manager = s.query.get('fieldManager');
  if (!manager) throw badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
  if (body.apiVersion !== s.apiVersion || body.kind !== s.kind.kind) {
    throw badRequest(`invalid object type: ${String(body.apiVersion ?? '')}, Kind=${String(body.kind ?? '')}; expected ${s.apiVersion}, Kind=${s.kind.kind}`);
  }
  decodeMetadata(s, body);
  checkName(s, body);
  if (s.kind.namespaced) checkNamespace(s, body);
  delete body.metadata.managedFields;
  const rv = body.metadata.resourceVersion;
  delete body.metadata.resourceVersion;
  if (old && rv && rv !== old.metadata.resourceVersion) throw conflict(s.kind, s.name);
  const live = old ? toWire(s, old) : undefined;
  const r = serverSideApply(live, body, manager, s.apiVersion, parseBool(s.query.get('force')), s.subresource || undefined, s.version.schema);
  if ('conflicts' in r) {
    throw new ApiError(409, 'Conflict', conflictMessage(r.conflicts, s.apiVersion), {
      name: s.name, group: s.kind.group || undefined, kind: s.kind.resource,
      causes: r.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${s.apiVersion}`, field: c.field })),
    });
  }
  const next = r.object;
  next.apiVersion = s.apiVersion;
  next.kind = s.kind.kind;
  const req = writeRequest(s, dry);
  const fields = { applied: next.metadata.managedFields };
  const saved = old ? s.services.rest.update(req, old, next, fields) : s.services.rest.create(req, next, fields);
  s.services.respond.send(s.res, old ? 200 : 201, toWire(s, saved), s.warnings);
}
