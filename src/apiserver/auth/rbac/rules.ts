/**
 * RBAC's vocabulary and how one rule is matched, as Kubernetes' rbac authorizer reads a
 * PolicyRule: `*` in verbs, apiGroups, resources and nonResourceURLs means all; `res/sub` names a
 * subresource, `*\/sub` that subresource of every resource and `res/*` every subresource of
 * `res`; resourceNames, when present, limit the rule to those names (so never to list or create);
 * a nonResourceURL ending in `*` is a prefix.
 */
import { isObject } from '../../../util/json.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface Subject {
  kind: 'User' | 'Group' | 'ServiceAccount';
  name: string;
  namespace?: string;
  apiGroup?: string;
}

export interface RoleRef {
  apiGroup: string;
  kind: 'Role' | 'ClusterRole';
  name: string;
}

/** What a rule is asked about: a resource request or a non-resource path. */
export interface RuleRequest {
  verb: string;
  resourceRequest: boolean;
  group: string;
  resource: string;
  subresource: string;
  name: string;
  path: string;
}

const ALL = '*';

export function verbMatches(rule: PolicyRule, verb: string): boolean {
  return rule.verbs.includes(ALL) || rule.verbs.includes(verb);
}

export function apiGroupMatches(rule: PolicyRule, group: string): boolean {
  const groups = rule.apiGroups ?? [];
  return groups.includes(ALL) || groups.includes(group);
}

export function resourceMatches(rule: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  for (const r of rule.resources ?? []) {
    if (r === ALL || r === combined) return true;
    if (!subresource) continue;
    if (r === `*/${subresource}`) return true;
    if (r === `${resource}/*`) return true;
  }
  return false;
}

export function resourceNameMatches(rule: PolicyRule, name: string): boolean {
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(name);
}

export function nonResourceURLMatches(rule: PolicyRule, path: string): boolean {
  for (const u of rule.nonResourceURLs ?? []) {
    if (u === ALL || u === path) return true;
    if (u.endsWith(ALL) && path.startsWith(u.slice(0, -1))) return true;
  }
  return false;
}

export function ruleAllows(rule: PolicyRule, r: RuleRequest): boolean {
  if (r.resourceRequest) {
    return verbMatches(rule, r.verb) && apiGroupMatches(rule, r.group) && resourceMatches(rule, r.resource, r.subresource) && resourceNameMatches(rule, r.name);
  }
  return verbMatches(rule, r.verb) && nonResourceURLMatches(rule, r.path);
}

/**
 * Whether `owner` covers every permission `requested` grants (the escalation check): each rule is
 * broken into single (group, resource, name, verb) or (URL, verb) grants, and each must be granted
 * by one owner rule. A requested `*` is only covered by an owner `*`, as in Kubernetes.
 */
export function uncoveredRules(owner: readonly PolicyRule[], requested: readonly PolicyRule[]): PolicyRule[] {
  const missing: PolicyRule[] = [];
  for (const rule of requested) {
    for (const atom of breakdown(rule)) {
      if (!owner.some((o) => covers(o, atom))) missing.push(atom);
    }
  }
  return missing;
}

function breakdown(rule: PolicyRule): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const group of rule.apiGroups ?? []) {
    for (const resource of rule.resources ?? []) {
      for (const verb of rule.verbs) {
        const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
        for (const name of names)
          out.push({ apiGroups: [group], resources: [resource], verbs: [verb], ...(name !== undefined ? { resourceNames: [name] } : {}) });
      }
    }
  }
  for (const url of rule.nonResourceURLs ?? []) for (const verb of rule.verbs) out.push({ nonResourceURLs: [url], verbs: [verb] });
  return out;
}

/** Whether `o` grants the single grant `atom` (see breakdown). */
function covers(o: PolicyRule, atom: PolicyRule): boolean {
  const verb = atom.verbs[0];
  if (!o.verbs.includes(ALL) && !o.verbs.includes(verb)) return false;
  if (atom.nonResourceURLs) {
    const url = atom.nonResourceURLs[0];
    return (o.nonResourceURLs ?? []).some((u) => u === ALL || u === url || (u.endsWith(ALL) && url.startsWith(u.slice(0, -1))));
  }
  const group = atom.apiGroups![0];
  if (!(o.apiGroups ?? []).some((g) => g === ALL || g === group)) return false;
  const resource = atom.resources![0];
  const [res, sub = ''] = resource.split(/\/(.*)/s);
  const resOk = (o.resources ?? []).some((r) => r === ALL || r === resource || (sub !== '' && (r === `${res}/*` || (res !== ALL && r === `*/${sub}`))));
  if (!resOk) return false;
  const ownerNames = o.resourceNames ?? [];
  if (ownerNames.length === 0) return true;
  const name = atom.resourceNames?.[0];
  return name !== undefined && ownerNames.includes(name);
}

/** A rule read from a stored object, or undefined when its shape is not a PolicyRule. */
export function readRule(v: unknown): PolicyRule | undefined {
  if (!isObject(v) || !isStringList(v.verbs)) return undefined;
  for (const f of ['apiGroups', 'resources', 'resourceNames', 'nonResourceURLs'])
    if (v[f] !== undefined && v[f] !== null && !isStringList(v[f])) return undefined;
  const rule: PolicyRule = { verbs: v.verbs };
  if (isStringList(v.apiGroups)) rule.apiGroups = v.apiGroups;
  if (isStringList(v.resources)) rule.resources = v.resources;
  if (isStringList(v.resourceNames)) rule.resourceNames = v.resourceNames;
  if (isStringList(v.nonResourceURLs)) rule.nonResourceURLs = v.nonResourceURLs;
  return rule;
}

export function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** One rule as Kubernetes prints it in an escalation error. */
export function describeRule(r: PolicyRule): string {
  const parts: string[] = [];
  if (r.apiGroups) parts.push(`APIGroups:${JSON.stringify(r.apiGroups)}`);
  if (r.resources) parts.push(`Resources:${JSON.stringify(r.resources)}`);
  if (r.resourceNames) parts.push(`ResourceNames:${JSON.stringify(r.resourceNames)}`);
  if (r.nonResourceURLs) parts.push(`NonResourceURLs:${JSON.stringify(r.nonResourceURLs)}`);
  parts.push(`Verbs:${JSON.stringify(r.verbs)}`);
  return `{${parts.join(', ')}}`;
}
