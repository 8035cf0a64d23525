/**
 * Strategies of rbac.authorization.k8s.io/v1 Roles, ClusterRoles and their bindings, as kube
 * validates them: rules need verbs, and either API groups with resources or (ClusterRoles only)
 * non-resource URLs; a binding's roleRef names a Role or ClusterRole and never changes; subjects
 * are Users, Groups or ServiceAccounts (these with a namespace). Every change tells the authorizer.
 */
import { isObject, jsonEqual } from '../../util/json.js';
import { selectorRequirements } from '../auth/rbac/aggregation.js';
import { isStringList, RBAC_GROUP } from '../auth/rbac/rules.js';
import type { Cause, KubeObject, StoredObject } from '../types.js';
import { GenericStrategy, type WriteContext } from './strategy.js';

const required = (field: string, what: string): Cause => ({ reason: 'FieldValueRequired', message: `Required value: ${what}`, field });
const invalidValue = (field: string, value: unknown, why: string): Cause => ({
  reason: 'FieldValueInvalid',
  message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
  field,
});

/** Strategies that must tell the authorizer when what they store changes. */
abstract class RbacStrategy extends GenericStrategy {
  constructor(private readonly changed: () => void) {
    super();
  }
  override afterWrite(_saved: StoredObject): void {
    this.changed();
  }
  override afterDelete(_gone: StoredObject): void {
    this.changed();
  }
}

export class RoleStrategy extends RbacStrategy {
  constructor(
    private readonly cluster: boolean,
    changed: () => void,
  ) {
    super(changed);
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const causes = super.validate(obj, ctx);
    const rules = obj.rules ?? [];
    if (!Array.isArray(rules)) return [...causes, invalidValue('rules', rules, 'must be a list of PolicyRules')];
    rules.forEach((rule: unknown, i) => causes.push(...ruleProblems(rule, `rules[${i}]`, this.cluster)));
    const agg = obj.aggregationRule;
    if (agg !== undefined && agg !== null) {
      if (!this.cluster || !isObject(agg)) causes.push(invalidValue('aggregationRule', agg, this.cluster ? 'must be an object' : 'a Role cannot aggregate'));
      else causes.push(...aggregationProblems(agg.clusterRoleSelectors));
    }
    return causes;
  }
}

/** kube's checks of an aggregationRule: at least one selector, each a valid LabelSelector. */
function aggregationProblems(selectors: unknown): Cause[] {
  const field = 'aggregationRule.clusterRoleSelectors';
  if (selectors === undefined || selectors === null || (Array.isArray(selectors) && selectors.length === 0))
    return [required(field, 'at least one clusterRoleSelector required if aggregationRule is non-nil')];
  if (!Array.isArray(selectors)) return [invalidValue(field, selectors, 'must be a list of label selectors')];
  const out: Cause[] = [];
  selectors.forEach((sel, i) => {
    const reqs = selectorRequirements(sel);
    if (typeof reqs === 'string') out.push(invalidValue(`${field}[${i}]`, sel, reqs));
  });
  return out;
}

function ruleProblems(rule: unknown, field: string, cluster: boolean): Cause[] {
  if (!isObject(rule)) return [invalidValue(field, rule, 'must be an object')];
  const out: Cause[] = [];
  for (const f of ['verbs', 'apiGroups', 'resources', 'resourceNames', 'nonResourceURLs']) {
    if (rule[f] !== undefined && rule[f] !== null && !isStringList(rule[f])) out.push(invalidValue(`${field}.${f}`, rule[f], 'must be a list of strings'));
  }
  if (out.length) return out;
  const list = (f: string) => (isStringList(rule[f]) ? rule[f] : []);
  if (list('verbs').length === 0) out.push(required(`${field}.verbs`, 'verbs must contain at least one value'));
  const urls = list('nonResourceURLs');
  const resources = list('resources');
  if (urls.length) {
    if (!cluster) out.push(invalidValue(`${field}.nonResourceURLs`, urls, 'namespaced rules cannot apply to non-resource URLs'));
    if (resources.length || list('apiGroups').length || list('resourceNames').length)
      out.push(invalidValue(`${field}.nonResourceURLs`, urls, 'rules cannot apply to both regular resources and non-resource URLs'));
    return out;
  }
  if (resources.length === 0) out.push(required(`${field}.resources`, 'resource rules must supply at least one resource'));
  if (list('apiGroups').length === 0) out.push(required(`${field}.apiGroups`, 'resource rules must supply at least one api group'));
  return out;
}

export class BindingStrategy extends RbacStrategy {
  constructor(
    private readonly cluster: boolean,
    changed: () => void,
  ) {
    super(changed);
  }

  /** kube's defaults: User and Group subjects are in the RBAC API group, ServiceAccounts in the core one. */
  protected override normalise(obj: KubeObject): void {
    if (!Array.isArray(obj.subjects)) return;
    for (const s of obj.subjects as unknown[]) {
      if (!isObject(s) || s.apiGroup) continue;
      if (s.kind === 'User' || s.kind === 'Group') s.apiGroup = RBAC_GROUP;
      else if (s.kind === 'ServiceAccount') s.apiGroup = '';
    }
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const causes = super.validate(obj, ctx);
    const ref = obj.roleRef;
    if (!isObject(ref)) causes.push(required('roleRef', 'the Role or ClusterRole to bind'));
    else {
      const kinds = this.cluster ? ['ClusterRole'] : ['Role', 'ClusterRole'];
      if (ref.apiGroup !== RBAC_GROUP) causes.push(invalidValue('roleRef.apiGroup', ref.apiGroup, `must be "${RBAC_GROUP}"`));
      if (typeof ref.kind !== 'string' || !kinds.includes(ref.kind))
        causes.push({
          reason: 'FieldValueNotSupported',
          message: `Unsupported value: ${JSON.stringify(ref.kind)}: supported values: ${kinds.map((k) => `"${k}"`).join(', ')}`,
          field: 'roleRef.kind',
        });
      if (typeof ref.name !== 'string' || ref.name === '') causes.push(required('roleRef.name', 'the name of the role'));
    }
    const subjects = obj.subjects ?? [];
    if (!Array.isArray(subjects)) return [...causes, invalidValue('subjects', subjects, 'must be a list of subjects')];
    subjects.forEach((s: unknown, i) => {
      const f = `subjects[${i}]`;
      if (!isObject(s)) return causes.push(invalidValue(f, s, 'must be an object'));
      if (typeof s.name !== 'string' || s.name === '') causes.push(required(`${f}.name`, "the subject's name"));
      if (s.kind === 'ServiceAccount') {
        if (s.apiGroup !== '') causes.push(invalidValue(`${f}.apiGroup`, s.apiGroup, 'must be "" for a ServiceAccount'));
        if (this.cluster && !s.namespace) causes.push(required(`${f}.namespace`, "the ServiceAccount's namespace"));
      } else if (s.kind === 'User' || s.kind === 'Group') {
        if (s.apiGroup !== RBAC_GROUP) causes.push(invalidValue(`${f}.apiGroup`, s.apiGroup, `must be "${RBAC_GROUP}"`));
      } else
        causes.push({
          reason: 'FieldValueNotSupported',
          message: `Unsupported value: ${JSON.stringify(s.kind)}: supported values: "ServiceAccount", "User", "Group"`,
          field: `${f}.kind`,
        });
      return undefined;
    });
    return causes;
  }

  override validateUpdate(obj: KubeObject, old: StoredObject): Cause[] {
    if (!jsonEqual(obj.roleRef, old.roleRef)) return [invalidValue('roleRef', obj.roleRef, 'cannot change roleRef (delete the binding and create a new one)')];
    return [];
  }
}
