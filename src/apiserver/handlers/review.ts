/** SelfSubjectReview (`kubectl auth whoami`) and SelfSubjectAccessReview (`kubectl auth can-i`): answered for the caller, nothing stored. */
import { isObject } from '../../util/json.js';
import { userGroups } from '../auth/authorizer.js';
import { VERBS } from '../request/info.js';
import type { RequestScope } from './scope.js';

export async function review(s: RequestScope): Promise<void> {
  const { value: body } = await s.services.bodies.readObject(s.req);
  const { user } = s;
  const { registry, authorizer, respond } = s.services;
  const meta = { creationTimestamp: null };
  if (s.kind.kind === 'SelfSubjectReview') {
    return respond.send(s.res, 201, { apiVersion: s.apiVersion, kind: 'SelfSubjectReview', metadata: meta, status: { userInfo: { username: user.name, groups: userGroups(user) } } });
  }
  const spec = isObject(body.spec) ? body.spec : undefined;
  const attrs = isObject(spec?.resourceAttributes) ? spec.resourceAttributes : {};
  let allowed = false;
  let reason = '';
  const group = String(attrs.group ?? '');
  const resource = String(attrs.resource ?? '');
  const kind = registry.get(group, resource);
  if (kind || attrs.resource === '*') {
    const namespaced = kind ? kind.namespaced : true;
    const verb = String(attrs.verb ?? '');
    const namespace = namespaced ? String(attrs.namespace ?? '') : '';
    const decisions = (verb === '*' ? VERBS : [verb]).map((v) => authorizer.authorize({
      user, verb: v, resourceRequest: true, group, resource, subresource: String(attrs.subresource ?? ''), name: String(attrs.name ?? ''), namespace, namespaced,
    }));
    allowed = decisions.every((d) => d.allowed);
    reason = allowed ? decisions[0].reason : '';
  } else if (spec?.nonResourceAttributes) {
    allowed = true;
  }
  respond.send(s.res, 201, { apiVersion: s.apiVersion, kind: 'SelfSubjectAccessReview', metadata: meta, spec: body.spec ?? {}, status: { allowed, ...(reason ? { reason } : {}) } });
}
