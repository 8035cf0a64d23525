/**
 * OpenAPI schemas of rbac.authorization.k8s.io/v1 and of ServiceAccounts, with the fields and
 * meanings Kubernetes gives them, so `kubectl explain role.rules` or `rolebinding.subjects` can
 * answer. Only discovery reads them: the RBAC strategies validate what is written.
 */
import type { JsonSchema } from '../types.js';

const strings = (description: string): JsonSchema => ({ type: 'array', items: { type: 'string', default: '' }, description });

const policyRule: JsonSchema = {
  type: 'object',
  description:
    'PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.',
  required: ['verbs'],
  properties: {
    verbs: strings(
      "Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs (get, list, watch, create, update, patch, delete, deletecollection).",
    ),
    apiGroups: strings(
      'APIGroups is the name of the APIGroup that contains the resources. If multiple API groups are specified, any action requested against one of the enumerated resources in any API group will be allowed. "" represents the core API group and "*" represents all API groups.',
    ),
    resources: strings(
      "Resources is a list of resources this rule applies to. '*' represents all resources; 'pods/log' names a subresource and '*/scale' a subresource of every resource.",
    ),
    resourceNames: strings('ResourceNames is an optional white list of names that the rule applies to. An empty set means that everything is allowed.'),
    nonResourceURLs: strings(
      'NonResourceURLs is a set of partial urls that a user should have access to. *s are allowed, but only as the full, final step in the path. Rules can either apply to API resources (such as "pods" or "secrets") or non-resource URL paths (such as "/api"), but not both. Only ClusterRoles may name them.',
    ),
  },
};

const labelSelector: JsonSchema = {
  type: 'object',
  description:
    'A label selector is a label query over a set of resources. The result of matchLabels and matchExpressions are ANDed. An empty label selector matches all objects.',
  'x-kubernetes-map-type': 'atomic',
  properties: {
    matchLabels: {
      type: 'object',
      additionalProperties: { type: 'string', default: '' },
      description: 'matchLabels is a map of {key,value} pairs; each is equivalent to an element of matchExpressions with operator "In" and that single value.',
    },
    matchExpressions: {
      type: 'array',
      description: 'matchExpressions is a list of label selector requirements. The requirements are ANDed.',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', default: '', description: 'key is the label key that the selector applies to.' },
          operator: {
            type: 'string',
            default: '',
            description: "operator represents a key's relationship to a set of values: In, NotIn, Exists and DoesNotExist.",
          },
          values: strings('values is an array of string values: non-empty for In and NotIn, empty for Exists and DoesNotExist.'),
        },
      },
    },
  },
};

const rules = (who: string): JsonSchema => ({ type: 'array', items: policyRule, description: `Rules holds all the PolicyRules for this ${who}` });

const subject: JsonSchema = {
  type: 'object',
  description:
    'Subject contains a reference to the object or user identities a role binding applies to. This can either hold a direct API object reference, or a value for non-objects such as user and group names.',
  required: ['kind', 'name'],
  'x-kubernetes-map-type': 'atomic',
  properties: {
    kind: {
      type: 'string',
      default: '',
      description: 'Kind of object being referenced. Values defined by this API group are "User", "Group", and "ServiceAccount".',
    },
    apiGroup: {
      type: 'string',
      description:
        'APIGroup holds the API group of the referenced subject. Defaults to "" for ServiceAccount subjects and to "rbac.authorization.k8s.io" for User and Group subjects.',
    },
    name: { type: 'string', default: '', description: 'Name of the object being referenced.' },
    namespace: {
      type: 'string',
      description: 'Namespace of the referenced object. Required for a ServiceAccount subject of a ClusterRoleBinding; empty for User and Group.',
    },
  },
};

const roleRef = (kinds: string): JsonSchema => ({
  type: 'object',
  description: `RoleRef can reference ${kinds}. This field is immutable.`,
  required: ['apiGroup', 'kind', 'name'],
  'x-kubernetes-map-type': 'atomic',
  properties: {
    apiGroup: { type: 'string', default: '', description: 'APIGroup is the group for the resource being referenced (rbac.authorization.k8s.io).' },
    kind: { type: 'string', default: '', description: 'Kind is the type of resource being referenced.' },
    name: { type: 'string', default: '', description: 'Name is the name of resource being referenced.' },
  },
});

const subjects: JsonSchema = { type: 'array', items: subject, description: 'Subjects holds references to the objects the role applies to.' };

export const rbacSchemas: Record<string, JsonSchema> = {
  Role: {
    description: 'Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.',
    properties: { rules: rules('Role') },
  },
  ClusterRole: {
    description: 'ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.',
    properties: {
      rules: rules('ClusterRole'),
      aggregationRule: {
        type: 'object',
        description:
          'AggregationRule is an optional field that describes how to build the Rules for this ClusterRole. If AggregationRule is set, then the Rules are controller managed and direct changes to Rules will be stomped by the controller.',
        properties: {
          clusterRoleSelectors: {
            type: 'array',
            items: labelSelector,
            description:
              "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules. If any of the selectors match, then the ClusterRole's permissions will be added",
          },
        },
      },
    },
  },
  RoleBinding: {
    description:
      'RoleBinding references a role, but does not contain it. It can reference a Role in the same namespace or a ClusterRole in the global namespace. It adds who information via Subjects and namespace information by which namespace it exists in.',
    required: ['roleRef'],
    properties: { subjects, roleRef: roleRef('a Role in the current namespace or a ClusterRole in the global namespace') },
  },
  ClusterRoleBinding: {
    description: 'ClusterRoleBinding references a ClusterRole, but not contain it. It adds who information via Subjects.',
    required: ['roleRef'],
    properties: { subjects, roleRef: roleRef('only a ClusterRole in the global namespace') },
  },
  ServiceAccount: {
    description: 'ServiceAccount binds together a name, understood by users, and perhaps by peripheral systems, for an identity; and a set of secrets.',
    properties: {
      secrets: {
        type: 'array',
        description: 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.',
        items: {
          type: 'object',
          'x-kubernetes-map-type': 'atomic',
          properties: { name: { type: 'string', description: 'Name of the referent.' }, namespace: { type: 'string' }, kind: { type: 'string' } },
        },
      },
      imagePullSecrets: {
        type: 'array',
        description:
          'ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling images (nbswarm keeps them; it does not run pods).',
        items: {
          type: 'object',
          'x-kubernetes-map-type': 'atomic',
          properties: { name: { type: 'string', default: '', description: 'Name of the referent.' } },
        },
      },
      automountServiceAccountToken: {
        type: 'boolean',
        description: 'AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted.',
      },
    },
  },
};
