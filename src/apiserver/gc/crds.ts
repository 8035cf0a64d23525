/** A deleted CRD takes its objects with it, each with a DELETED event for its watchers. */
import { kindKey } from '../registry/kinds.js';
import type { Store } from '../storage/sqlite.js';
import type { CustomResourceDefinition } from '../types.js';

/** Deletes every object of `crd`'s kind and ends the watches on it once those deletes are committed. */
export function deleteCustomResources(storage: Store, crd: CustomResourceDefinition): void {
  const key = kindKey(crd.spec.group, crd.spec.names.plural);
  for (const o of [...storage.iterate(key, null)]) storage.write('DELETED', key, o.metadata.namespace ?? '', o.metadata.name, o, o);
  storage.closeWatchers(key);
}
