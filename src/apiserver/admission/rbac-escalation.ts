/**
 * RBAC's escalation check (kube's rbac registry validation): nobody grants permissions they do
 * not hold. Writing a Role or ClusterRole needs every rule it grants (at its namespace, or the
 * cluster scope), unless the user may `escalate` it; writing a binding needs every rule of the
 * role it binds, unless the user may `bind` that role. Setting or changing a ClusterRole's
 * aggregationRule needs `escalate`.
 */
import type { Attributes } from '../auth/authorizer.js';
import type { RBACAuthorizer } from '../auth/rbac/authorizer.js';
import { userGroups } from '../auth/rbac/authorizer.js';
import { describeRule, RBAC_GROUP, uncoveredRules, type PolicyRule } from '../auth/rbac/rules.js';
import { ApiError } from '../errors.js';
import { isObject, jsonEqual } from '../../util/json.js';
import type { AdmissionAttributes, AdmissionPlugin } from './admission.js';

export class RbacEscalation implements AdmissionPlugin {
  readonly name = 'RBACEscalation';

  constructor(private readonly authorizer: RBACAuthorizer) {}

  validate(a: AdmissionAttributes): void {
    if (a.kind.group !== RBAC_GROUP || a.operation === 'DELETE' || !a.object) return;
    const namespace = a.kind.namespaced ? a.namespace : '';
    const name = a.object.metadata.name ?? a.name;
    const may = (verb: string, resource: string, objectName: string) => {
      const attrs: Attributes = {
        user: a.user,
        verb,
        resourceRequest: true,
        group: RBAC_GROUP,
        resource,
        subresource: '',
        name: objectName,
        namespace,
        namespaced: a.kind.namespaced,
      };
      return this.authorizer.authorize(attrs).allowed;
    };
    let requested: PolicyRule[];
    if (a.kind.resource === 'roles' || a.kind.resource === 'clusterroles') {
      if (may('escalate', a.kind.resource, name)) return;
      // An aggregationRule can gather any rule of any ClusterRole: only who may escalate sets or changes one.
      const agg = a.object.aggregationRule ?? null;
      if (agg !== null && !jsonEqual(agg, a.oldObject?.aggregationRule ?? null))
        throw new ApiError(
          403,
          'Forbidden',
          `${a.kind.resource}.${RBAC_GROUP} "${name}" is forbidden: must have cluster-admin privileges to use an aggregationRule`,
          { name, group: RBAC_GROUP, kind: a.kind.resource },
        );
      requested = this.authorizer.rulesOfObject(a.object);
    } else if (a.kind.resource === 'rolebindings' || a.kind.resource === 'clusterrolebindings') {
      const ref = a.object.roleRef;
      if (!isObject(ref) || typeof ref.kind !== 'string' || typeof ref.name !== 'string') return;
      if (may('bind', ref.kind === 'Role' ? 'roles' : 'clusterroles', ref.name)) return;
      requested = this.authorizer.roleRules(ref.kind, ref.name, namespace);
    } else return;
    const missing = uncoveredRules(this.authorizer.rulesFor(a.user, namespace), requested);
    if (!missing.length) return;
    const groups = userGroups(a.user)
      .map((g) => JSON.stringify(g))
      .join(' ');
    throw new ApiError(
      403,
      'Forbidden',
      `${a.kind.resource}.${RBAC_GROUP} "${name}" is forbidden: user "${a.user.name}" (groups=[${groups}]) is attempting to grant RBAC permissions not currently held:\n${missing.map(describeRule).join('\n')}`,
      { name, group: RBAC_GROUP, kind: a.kind.resource },
    );
  }
}
