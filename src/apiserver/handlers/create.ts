/** create (POST to a collection). */
import { randomInt } from 'node:crypto';
import { checkTypeMeta, dryRun, fieldManager, readObjectBody, toWire, writeRequest, type RequestScope } from './scope.js';

/** The characters kube's generateName suffixes use (no vowels, no look-alikes). */
const GENERATED_NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export async function create(s: RequestScope): Promise<void> {
  const body = checkTypeMeta(s, await readObjectBody(s));
  const dry = dryRun(s);
  const md = body.metadata;
  if (!md.name && md.generateName) {
    md.name = String(md.generateName) + Array.from({ length: 5 }, () => GENERATED_NAME_CHARS[randomInt(GENERATED_NAME_CHARS.length)]).join('');
  }
  s.name = md.name ?? '';
  const saved = s.services.rest.create(writeRequest(s, dry), body, { manager: fieldManager(s) });
  s.services.respond.send(s.res, 201, toWire(s, saved), s.warnings);
}
