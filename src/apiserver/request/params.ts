/**
 * Query parameters with a type (kube converts them into ListOptions and friends and refuses what
 * does not convert): `limit=1.5` or `resourceVersion=-5` are a 400 naming the parameter, never a
 * number the handler half-understands.
 */
import { badRequest } from '../errors.js';

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A non-negative whole number in decimal; undefined when absent or empty. */
export function wholeNumberParam(query: URLSearchParams, name: string): number | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  const n = DECIMAL.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw badRequest(`${name}: Invalid value: ${JSON.stringify(v.slice(0, 100))}: must be a non-negative whole number`);
  return n;
}

/** `resourceVersion`: undefined when absent, empty or "0" (any version will do), else the version as a number. */
export function resourceVersionParam(query: URLSearchParams): number | undefined {
  const n = wholeNumberParam(query, 'resourceVersion');
  return n === 0 ? undefined : n;
}

/** `resourceVersionMatch`: Exact, NotOlderThan, or nothing. */
export function resourceVersionMatchParam(query: URLSearchParams): 'Exact' | 'NotOlderThan' | undefined {
  const v = query.get('resourceVersionMatch');
  if (v === null || v === '') return undefined;
  if (v === 'Exact' || v === 'NotOlderThan') return v;
  throw badRequest(`resourceVersionMatch: Unsupported value: ${JSON.stringify(v.slice(0, 100))}: supported values: "Exact", "NotOlderThan"`);
}
