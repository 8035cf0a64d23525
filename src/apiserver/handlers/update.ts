/** update (PUT): replaces the object; there is no create-on-update for the kinds served here. */
import { notFound } from '../errors.js';
import { checkName, checkTypeMeta, dryRun, fieldManager, readObjectBody, toWire, writeRequest, type RequestScope } from './scope.js';

export async function update(s: RequestScope): Promise<void> {
  const body = checkTypeMeta(s, await readObjectBody(s));
  if (!body.metadata.name) body.metadata.name = s.name;
  checkName(s, body);
  const dry = dryRun(s);
  const old = s.services.rest.get(s.kind, s.namespace, s.name);
  if (!old) throw notFound(s.kind, s.name);
  // A resourceVersion or uid in the body makes the update conditional (registry/rest.ts checks both).
  const saved = s.services.rest.update(writeRequest(s, dry), old, body, { manager: fieldManager(s) });
  s.services.respond.send(s.res, 200, toWire(s, saved), s.warnings);
}
