/** get and list. */
import { ApiError, badRequest, gone, tooManyRequests } from '../errors.js';
import { toTable } from '../registry/table.js';
import { resourceVersionMatchParam, resourceVersionParam, wholeNumberParam } from '../request/params.js';
import { fieldMatches, matches } from '../request/selectors.js';
import { CachedRow } from '../storage/cache.js';
import type { JsonObject, KubeObject, ListMeta, StoredObject } from '../types.js';
import { getStored, namespaceFilter, selectors, toWire, wantsMetadataOnly, wantsTable, type RequestScope } from './scope.js';

const partialMetadata = (o: KubeObject) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata });

export function get(s: RequestScope): void {
  resourceVersionParam(s.query);
  const o = toWire(s, getStored(s));
  const { respond } = s.services;
  if (wantsTable(s))
    return respond.send(
      s.res,
      200,
      toTable(s.kind, s.version.name, [o], s.query.get('includeObject') ?? 'Metadata', { resourceVersion: o.metadata.resourceVersion }),
      s.warnings,
    );
  if (wantsMetadataOnly(s)) return respond.send(s.res, 200, partialMetadata(o));
  respond.send(s.res, 200, o, s.warnings);
}

/** Where a page starts: after (ns, name), at the list's resourceVersion. */
interface Continue {
  after: [string, string];
  rv: number;
}

function parseContinue(s: RequestScope, token: string): Continue {
  let c: Continue;
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { ns: unknown; name: unknown; rv: unknown };
    c = { after: [String(t.ns), String(t.name)], rv: Number(t.rv) };
    if (!Number.isFinite(c.rv)) throw new Error('bad rv');
  } catch {
    throw badRequest('continue key is not valid: illegal base64 data or JSON');
  }
  if (c.rv < s.services.storage.compactedRv) {
    throw gone('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
  }
  return c;
}

/** resourceVersion/resourceVersionMatch: only the current state can be listed. */
function checkListResourceVersion(s: RequestScope): void {
  const { storage } = s.services;
  const n = resourceVersionParam(s.query);
  const match = resourceVersionMatchParam(s.query);
  if (n === undefined) return;
  if (match === 'Exact' && n !== storage.currentRv) {
    if (n < storage.compactedRv) throw gone(`too old resource version: ${n} (${storage.compactedRv})`);
    throw new ApiError(400, 'BadRequest', `resourceVersionMatch=Exact for an older resourceVersion (${n}) is not supported here`);
  }
}

/** Bytes a list takes from the server's list budget at a time. */
const LIST_BUDGET_STEP = 1024 * 1024;

export function list(s: RequestScope): void {
  const { labels, fields } = selectors(s);
  const { storage, respond, lists } = s.services;
  const limit = wholeNumberParam(s.query, 'limit') ?? 0;
  const token = s.query.get('continue');
  const page = token ? parseContinue(s, token) : undefined;
  if (!page) checkListResourceVersion(s);
  const listRv = page?.rv ?? storage.currentRv;
  const table = wantsTable(s);
  const metaOnly = wantsMetadataOnly(s);
  // A plain list whose rows are stored in the requested version is their stored bytes spliced
  // together (from the list cache): parsing and re-serialising 10,000 objects was most of a full
  // list's server time, and after that encoding their texts for the socket.
  const spliced = !labels.length && !fields.length && !s.kind.fromStorage && !table && !metaOnly;
  const rowHead = Buffer.from(`{"apiVersion":${JSON.stringify(s.apiVersion)},`);
  const items: StoredObject[] = [];
  const texts: Buffer[] = [];
  let count = 0;
  let next: string | undefined;
  let lastKey: [string, string] | null = null;
  // What the reply holds counts against the server's budget for lists in flight (429 past it).
  let bytes = 0;
  let held = 0;
  const release = () => {
    lists.give(held);
    held = 0;
  };
  try {
    for (const row of storage.listRows(s.kind.storageKey, namespaceFilter(s), page?.after)) {
      let text: Buffer | undefined;
      let view: StoredObject | undefined;
      if (spliced) {
        const stored = row instanceof CachedRow ? row.bytes : Buffer.from(row.data);
        if (startsWith(stored, rowHead)) text = stored;
      }
      if (!text) {
        const o = JSON.parse(row.data) as StoredObject;
        if (!matches(labels, o.metadata.labels)) continue;
        view = toWire(s, o);
        if (fields.length && !fieldMatches(fields, view)) continue;
      }
      if (limit && count >= limit) {
        if (lastKey) next = Buffer.from(JSON.stringify({ rv: listRv, ns: lastKey[0], name: lastKey[1] })).toString('base64url');
        break;
      }
      count++;
      if (spliced) texts.push(text ?? Buffer.from(JSON.stringify(view)));
      else items.push(view!);
      lastKey = [row.ns, row.name];
      bytes += text?.length ?? row.data.length;
      while (bytes > held) {
        if (!lists.take(LIST_BUDGET_STEP, held)) {
          throw tooManyRequests(`the server is sending too many large lists at once (more than ${lists.total} bytes); ask for pages with limit and continue`);
        }
        held += LIST_BUDGET_STEP;
      }
    }
  } catch (e) {
    release();
    throw e;
  }
  s.res.on('close', release);
  const metadata: ListMeta = { resourceVersion: String(listRv), ...(next ? { continue: next } : {}) };
  if (table) return respond.send(s.res, 200, toTable(s.kind, s.version.name, items, s.query.get('includeObject') ?? 'Metadata', metadata), s.warnings);
  if (metaOnly)
    return respond.send(s.res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: items.map(partialMetadata) });
  if (!spliced) return respond.send(s.res, 200, listOf(s, metadata, items), s.warnings);
  const head = JSON.stringify(listOf(s, metadata));
  respond.sendParts(s.res, 200, `${head.slice(0, -1)},"items":[`, texts, ']}', s.warnings);
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length >= prefix.length && bytes.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** A <Kind>List; without `items` its JSON ends where the spliced items go. */
export function listOf(s: RequestScope, metadata: ListMeta, items?: KubeObject[]): JsonObject {
  return { apiVersion: s.apiVersion, kind: s.kind.listKind, metadata, ...(items ? { items } : {}) };
}
