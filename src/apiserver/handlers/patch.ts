/** patch: JSON patch, merge patch, strategic merge patch; apply patches go to server-side apply. */
import { isObject } from '../../util/json.js';
import { ApiError, badRequest, invalid, notFound, requestEntityTooLarge, unsupportedMediaType } from '../errors.js';
import { decode } from '../request/body.js';
import { apply } from './apply.js';
import { applyJsonPatch, JsonPatchError } from './json-patch.js';
import { mergePatch, strategicMerge } from './merge.js';
import { checkDuplicates, checkMetadata, checkName, checkTypeMeta, dryRun, fieldManager, toWire, writeRequest, type RequestScope } from './scope.js';

const JSON_PATCH = 'application/json-patch+json';
const MERGE_PATCH = 'application/merge-patch+json';
const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
const APPLY_PATCH = 'application/apply-patch+yaml';
const PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH];

export async function patch(s: RequestScope): Promise<void> {
  const { raw, type } = await s.services.bodies.read(s.req);
  const dry = dryRun(s);
  if (!PATCH_TYPES.includes(type)) throw unsupportedMediaType(PATCH_TYPES.join(', '));
  const { value: body, duplicates } = decode(raw, type);
  checkDuplicates(s, duplicates);
  const old = s.services.rest.get(s.kind, s.namespace, s.name);
  if (type === APPLY_PATCH) return apply(s, old, body, dry);
  if (!old) throw notFound(s.kind, s.name);
  const next = patched(s, toWire(s, old), body, type);
  if (!isObject(next)) throw badRequest('the patch did not produce an object');
  checkMetadata(next);
  checkName(s, next);
  const obj = checkTypeMeta(s, next);
  // A resourceVersion or uid the patch leaves in the object makes it conditional (registry/rest.ts checks both).
  const saved = s.services.rest.update(writeRequest(s, dry), old, obj, { manager: fieldManager(s) });
  s.services.respond.send(s.res, 200, toWire(s, saved), s.warnings);
}

/** `current` with the patch applied. */
function patched(s: RequestScope, current: object, body: unknown, type: string): unknown {
  if (type === JSON_PATCH) {
    if (!Array.isArray(body)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
    try {
      return applyJsonPatch(structuredClone(current), body);
    } catch (e) {
      if (!(e instanceof JsonPatchError)) throw e;
      if (e.kind === 'tooLarge') throw requestEntityTooLarge(e.message);
      if (e.kind === 'test') throw invalid(s.kind.kind, s.kind.group, s.name, [{ reason: 'FieldValueInvalid', message: 'testing value failed', field: '' }]);
      throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${e.message}`);
    }
  }
  if (!isObject(body)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
  // Custom resources have no patch strategy: kube applies their strategic merge patches as merge patches.
  return type === STRATEGIC_MERGE_PATCH && s.kind.builtin ? strategicMerge(current, body) : mergePatch(current, body);
}
