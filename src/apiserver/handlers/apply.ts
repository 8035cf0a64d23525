/** Server-side apply (PATCH with application/apply-patch+yaml): merges the applied fields and records who owns them. */
import { isObject } from '../../util/json.js';
import { nowIso } from '../../util/time.js';
import { ApiError, badRequest, conflict } from '../errors.js';
import { managersBefore } from '../fieldmanager/managed.js';
import { applyConfig, conflictMessage } from '../fieldmanager/manager.js';
import { parseBool } from '../request/info.js';
import type { KubeObject, StoredObject } from '../types.js';
import { checkName, checkNamespace, decodeMetadata, toWire, writeRequest, type RequestScope } from './scope.js';

/**
 * What an apply to this endpoint may set: the fields the write can change. Kube resets the rest
 * (status through the main resource of a kind with a status subresource, everything but status
 * through /status), so an applier never owns what it cannot write.
 */
function writable(s: RequestScope, config: KubeObject): KubeObject {
  if (!s.version.statusSubresource) return config;
  if (s.subresource === 'status') {
    const { name, namespace } = config.metadata;
    return {
      apiVersion: config.apiVersion,
      kind: config.kind,
      metadata: { name, namespace },
      ...(config.status !== undefined ? { status: config.status } : {}),
    };
  }
  const { status: _reset, ...rest } = config;
  return rest as KubeObject;
}

export function apply(s: RequestScope, old: StoredObject | undefined, body: unknown, dry: boolean): void {
  if (!isObject(body)) throw badRequest('the apply patch must be an object');
  const manager = s.query.get('fieldManager');
  if (!manager) throw badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
  if (manager.length > 128) throw badRequest('fieldManager: Too long: must have at most 128 bytes');
  if (body.apiVersion !== s.apiVersion || body.kind !== s.kind.kind) {
    throw badRequest(`invalid object type: ${String(body.apiVersion ?? '')}, Kind=${String(body.kind ?? '')}; expected ${s.apiVersion}, Kind=${s.kind.kind}`);
  }
  decodeMetadata(s, body);
  checkName(s, body);
  if (s.kind.namespaced) checkNamespace(s, body);
  if (Array.isArray(body.metadata.managedFields) && body.metadata.managedFields.length) throw badRequest('metadata.managedFields must be nil');
  delete body.metadata.managedFields;
  const rv = body.metadata.resourceVersion;
  delete body.metadata.resourceVersion;
  if (old && rv && rv !== old.metadata.resourceVersion) throw conflict(s.kind, s.name);
  const live = old ? toWire(s, old) : undefined;
  const owners = managersBefore(undefined, live?.metadata.managedFields, s.subresource);
  const who = { manager, apiVersion: s.apiVersion, subresource: s.subresource };
  const r = applyConfig(live, writable(s, body), owners, who, parseBool(s.query.get('force')), s.version.schema, nowIso());
  if ('conflicts' in r) {
    throw new ApiError(409, 'Conflict', conflictMessage(r.conflicts, s.apiVersion), {
      name: s.name,
      group: s.kind.group || undefined,
      kind: s.kind.resource,
      causes: r.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${s.apiVersion}`, field: c.field })),
    });
  }
  const next = r.object;
  next.apiVersion = s.apiVersion;
  next.kind = s.kind.kind;
  const req = writeRequest(s, dry);
  const fields = { applied: r.managedFields };
  const saved = old ? s.services.rest.update(req, old, next, fields) : s.services.rest.create(req, next, fields);
  s.services.respond.send(s.res, old ? 200 : 201, toWire(s, saved), s.warnings);
}
