/**
 * NamespaceLifecycle, as kube's plugin of that name: nothing is created in a namespace that does
 * not exist or is being deleted, and the namespaces the system relies on cannot be deleted.
 */
import { ApiError, notFound } from '../errors.js';
import type { Namespace } from '../types.js';
import type { AdmissionAttributes, AdmissionPlugin } from './admission.js';

const PROTECTED = new Set(['default', 'kube-system', 'kube-public', 'nbswarm']);

export class NamespaceLifecycle implements AdmissionPlugin {
  readonly name = 'NamespaceLifecycle';

  /** `namespace(name)`: the stored namespace, or undefined. */
  constructor(private readonly namespace: (name: string) => Readonly<Namespace> | undefined) {}

  admit(a: AdmissionAttributes): void {
    if (a.operation === 'DELETE' && a.kind.group === '' && a.kind.resource === 'namespaces' && PROTECTED.has(a.name)) {
      throw new ApiError(403, 'Forbidden', `namespaces "${a.name}" is forbidden: this namespace may not be deleted`, { name: a.name, kind: 'namespaces' });
    }
    if (a.operation !== 'CREATE' || !a.kind.namespaced) return;
    const ns = this.namespace(a.namespace);
    if (!ns) throw notFound({ group: '', resource: 'namespaces' }, a.namespace);
    if (ns.metadata.deletionTimestamp) {
      throw new ApiError(
        403,
        'Forbidden',
        `${a.kind.resource} "${a.name}" is forbidden: unable to create new content in namespace ${a.namespace} because it is being terminated`,
        {
          name: a.name,
          kind: a.kind.resource,
          causes: [{ reason: 'NamespaceTerminating', message: `namespace ${a.namespace} is being terminated`, field: 'metadata.namespace' }],
        },
      );
    }
  }
}
