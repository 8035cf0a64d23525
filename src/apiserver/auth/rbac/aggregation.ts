/**
 * ClusterRole aggregation, as kube-controller-manager's clusterrole-aggregation controller does
 * it: a ClusterRole with an `aggregationRule` gets as its rules those of every other ClusterRole
 * a selector matches (selectors in order, matching roles by name, each rule once), and keeps them
 * up to date when the matched roles, their labels or the rule change. Rules written by hand into
 * an aggregated role are replaced. A pass runs after every ClusterRole change (coalesced).
 */
import { errorFields, type Logger } from '../../../log.js';
import { CoalescedPass } from '../../../util/coalesced-pass.js';
import { isObject, jsonEqual } from '../../../util/json.js';
import { kindKey } from '../../registry/kinds.js';
import { matches, type Requirement } from '../../request/selectors.js';
import type { Store } from '../../storage/sqlite.js';
import type { StoredObject } from '../../types.js';
import { isStringList, RBAC_GROUP } from './rules.js';

const CLUSTER_ROLES = kindKey(RBAC_GROUP, 'clusterroles');

const OPERATORS: Record<string, Requirement['op']> = { In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!exists' };

/**
 * A metav1.LabelSelector as requirements, or the reason it is not one. An empty selector matches
 * every ClusterRole, as in Kubernetes.
 */
export function selectorRequirements(sel: unknown): Requirement[] | string {
  if (!isObject(sel)) return 'a selector must be an object';
  const out: Requirement[] = [];
  if (sel.matchLabels !== undefined && sel.matchLabels !== null) {
    if (!isObject(sel.matchLabels)) return 'matchLabels must be a map of strings';
    for (const [key, value] of Object.entries(sel.matchLabels)) {
      if (typeof value !== 'string') return `matchLabels.${key} must be a string`;
      out.push({ key, op: 'in', values: [value] });
    }
  }
  if (sel.matchExpressions !== undefined && sel.matchExpressions !== null) {
    if (!Array.isArray(sel.matchExpressions)) return 'matchExpressions must be a list';
    for (const [i, e] of sel.matchExpressions.entries()) {
      if (!isObject(e) || typeof e.key !== 'string' || e.key === '') return `matchExpressions[${i}].key is required`;
      const op = typeof e.operator === 'string' ? OPERATORS[e.operator] : undefined;
      if (!op) return `matchExpressions[${i}].operator ${JSON.stringify(e.operator)} is not one of In, NotIn, Exists, DoesNotExist`;
      const values = e.values ?? [];
      if (!isStringList(values)) return `matchExpressions[${i}].values must be a list of strings`;
      if ((op === 'in' || op === 'notin') && values.length === 0) return `matchExpressions[${i}].values must be non-empty for ${String(e.operator)}`;
      if ((op === 'exists' || op === '!exists') && values.length > 0) return `matchExpressions[${i}].values must be empty for ${String(e.operator)}`;
      out.push({ key: e.key, op, values });
    }
  }
  return out;
}

/** The selectors of a ClusterRole's aggregationRule, or undefined when it does not aggregate. */
function aggregationSelectors(role: StoredObject): unknown[] | undefined {
  const rule = role.aggregationRule;
  if (!isObject(rule)) return undefined;
  return Array.isArray(rule.clusterRoleSelectors) ? rule.clusterRoleSelectors : [];
}

/** The rules `role` aggregates from `all` (every ClusterRole, sorted by name), or the reason it cannot. */
export function aggregatedRules(role: StoredObject, all: readonly StoredObject[]): unknown[] | string {
  const selectors = aggregationSelectors(role) ?? [];
  const rules: unknown[] = [];
  for (const [i, sel] of selectors.entries()) {
    const reqs = selectorRequirements(sel);
    if (typeof reqs === 'string') return `clusterRoleSelectors[${i}]: ${reqs}`;
    for (const other of all) {
      if (other.metadata.name === role.metadata.name || !matches(reqs, other.metadata.labels)) continue;
      for (const r of Array.isArray(other.rules) ? other.rules : []) if (!rules.some((have) => jsonEqual(have, r))) rules.push(r);
    }
  }
  return rules;
}

export class ClusterRoleAggregator {
  private closed = false;
  private readonly passes: CoalescedPass;
  private readonly stopWatching: () => void;

  constructor(
    private readonly storage: Store,
    private readonly log: Logger,
  ) {
    this.passes = new CoalescedPass(
      () => this.pass(),
      (e) => this.log.warn('ClusterRole aggregation failed; retrying', errorFields(e, 'clusterrole aggregation')),
    );
    this.stopWatching = storage.addWatcher({ gr: CLUSTER_ROLES, ns: '', send: () => this.kick() });
  }

  /** Schedules a pass (one, however many changes ask for it meanwhile). */
  kick(): void {
    this.passes.kick();
  }

  close(): void {
    this.closed = true;
    this.passes.close();
    this.stopWatching();
  }

  /** Brings every aggregated ClusterRole's rules up to date; whether it wrote anything. */
  pass(): boolean {
    if (this.closed) return false;
    return aggregateClusterRoles(this.storage, (role, why) => this.log.warn('a ClusterRole cannot be aggregated', { clusterRole: role, why }));
  }
}

/**
 * Brings every aggregated ClusterRole's rules up to date; whether it wrote anything. Aggregated
 * roles may select each other (`view` is part of `edit`, `edit` of `admin`), so it repeats until
 * nothing changes, with a bound against selectors that chase each other.
 */
export function aggregateClusterRoles(storage: Store, cannot: (role: string, why: string) => void = () => {}): boolean {
  let wrote = false;
  for (let round = 0; round < 10; round++) {
    const all = [...storage.iterate(CLUSTER_ROLES, '')].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    let changed = false;
    for (const role of all) {
      if (!aggregationSelectors(role) || role.metadata.deletionTimestamp) continue;
      const rules = aggregatedRules(role, all);
      if (typeof rules === 'string') {
        cannot(role.metadata.name, rules);
        continue;
      }
      if (jsonEqual(rules, role.rules ?? [])) continue;
      const cur = storage.get(CLUSTER_ROLES, '', role.metadata.name);
      if (!cur) continue;
      const next = structuredClone(cur);
      next.rules = rules;
      storage.write('MODIFIED', CLUSTER_ROLES, '', cur.metadata.name, next, cur);
      changed = true;
    }
    if (!changed) break;
    wrote = true;
  }
  return wrote;
}
