/** update (PUT): replaces the object; there is no create-on-update for the kinds served here. */
import { conflict, notFound } from '../errors.js';
import { readObject } from '../request/body.js';
import { checkName, checkTypeMeta, dryRun, fieldManager, toWire, writeRequest, type RequestScope } from './scope.js';

export async function update(s: RequestScope): Promise<void> {
  const body = checkTypeMeta(s, await readObject(s.req));
  if (!body.metadata.name) body.metadata.name = s.name;
  checkName(s, body);
  const dry = dryRun(s);
  const old = s.services.rest.get(s.kind, s.namespace, s.name);
  if (!old) throw notFound(s.kind, s.name);
  const rv = body.metadata.resourceVersion;
  if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw conflict(s.kind, s.name);
  const saved = s.services.rest.update(writeRequest(s, dry), old, body, { manager: fieldManager(s) });
  s.services.respond.send(s.res, 200, toWire(s, saved), s.warnings);
}
