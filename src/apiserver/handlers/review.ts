/**
 * Reviews answered for the caller, nothing stored: SelfSubjectReview (`kubectl auth whoami`),
 * SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectRulesReview
 * (`kubectl auth can-i --list`).
 */
import { isObject } from '../../util/json.js';
import { pathAttributes } from '../auth/authorizer.js';
import { userGroups } from '../auth/rbac/authorizer.js';
import type { RequestScope } from './scope.js';

export async function review(s: RequestScope): Promise<void> {
  const { value: body } = await s.services.bodies.readObject(s.req);
  const { user } = s;
  const { registry, authorizer, respond } = s.services;
  const meta = { creationTimestamp: null };
  const spec = isObject(body.spec) ? body.spec : {};
  if (s.kind.kind === 'SelfSubjectReview') {
    return respond.send(s.res, 201, {
      apiVersion: s.apiVersion,
      kind: 'SelfSubjectReview',
      metadata: meta,
      status: { userInfo: { username: user.name, ...(user.uid ? { uid: user.uid } : {}), groups: userGroups(user) } },
    });
  }
  if (s.kind.kind === 'SelfSubjectRulesReview') {
    const namespace = typeof spec.namespace === 'string' ? spec.namespace : '';
    const rules = authorizer.rulesFor(user, namespace);
    const resourceRules = rules
      .filter((r) => !r.nonResourceURLs)
      .map((r) => ({
        verbs: r.verbs,
        apiGroups: r.apiGroups ?? [],
        resources: r.resources ?? [],
        ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
      }));
    const nonResourceRules = rules.filter((r) => r.nonResourceURLs).map((r) => ({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs }));
    return respond.send(s.res, 201, {
      apiVersion: s.apiVersion,
      kind: 'SelfSubjectRulesReview',
      metadata: meta,
      spec: { namespace },
      status: { resourceRules, nonResourceRules, incomplete: false },
    });
  }
  let decision;
  if (isObject(spec.resourceAttributes)) {
    const attrs = spec.resourceAttributes;
    const group = String(attrs.group ?? '');
    const resource = String(attrs.resource ?? '');
    const kind = registry.get(group, resource);
    // A resource this server does not serve is judged by the rules alone, as kube's RBAC does.
    const namespaced = kind ? kind.namespaced : true;
    const namespace = namespaced ? String(attrs.namespace ?? '') : '';
    decision = authorizer.authorize({
      user,
      verb: String(attrs.verb ?? ''),
      resourceRequest: true,
      group,
      resource,
      subresource: String(attrs.subresource ?? ''),
      name: String(attrs.name ?? ''),
      namespace,
      namespaced,
    });
  } else if (isObject(spec.nonResourceAttributes)) {
    const attrs = spec.nonResourceAttributes;
    decision = authorizer.authorize(pathAttributes(user, String(attrs.verb ?? ''), String(attrs.path ?? '')));
  } else decision = { allowed: false, reason: 'spec has neither resourceAttributes nor nonResourceAttributes' };
  respond.send(s.res, 201, {
    apiVersion: s.apiVersion,
    kind: 'SelfSubjectAccessReview',
    metadata: meta,
    spec: body.spec ?? {},
    status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) },
  });
}
