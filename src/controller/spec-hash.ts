/** The spec hash: what decides whether a server's Docker object must be written again. Pure (with a memo). */
import { createHash } from 'node:crypto';
import { LABELS } from '../api/names.js';
import type { DesiredServer } from '../backends/types.js';
import { canonicalJson } from '../util/json.js';

/** Spec hashes by a digest of their input's JSON text (see computeSpecHash). */
const specHashes = new Map<string, string>();

/**
 * sha256 of everything that shapes the Docker object. Left out: generation (a spec change that
 * renders the same object must not cause a write), the generation/spec-hash labels, the host-IP
 * label (it only restates networkMode and publishHostIp, which are hashed; leaving it out keeps
 * the hashes of objects written before it was part of the desired labels), stopped
 * (scaling/starting is not a re-create), pullPolicy (it governs how the image is fetched, not
 * what runs) and imageUpdates (when a newer image of the tag is taken, not which tag).
 */
export function computeSpecHash(d: Omit<DesiredServer, 'specHash'>): string {
  const { generation: _g, stopped: _s, pullPolicy: _p, pinNode: _pin, imageUpdates: _iu, labels, ...rest } = d;
  const { [LABELS.generation]: _lg, [LABELS.specHash]: _lh, [LABELS.hostIp]: _ip, ...hashedLabels } = labels;
  const hashed = { ...rest, labels: hashedLabels };
  // The same JSON text is the same value, so the same hash: a digest of the plain text (a third of
  // the cost of the canonical one) finds a hash already computed for a server polled while it starts.
  const text = createHash('sha1').update(JSON.stringify(hashed)).digest('base64');
  let hash = specHashes.get(text);
  if (hash === undefined) {
    hash = createHash('sha256').update(canonicalJson(hashed)).digest('hex');
    if (specHashes.size >= 10_000) specHashes.clear();
    specHashes.set(text, hash);
  }
  return hash;
}
