/**
 * THE schema of NotebookServer: the one source of crds/notebookserver.yaml (./crd.ts), of API
 * validation and defaulting, and of `kubectl explain`. Structural in the Kubernetes sense: no $ref,
 * a type on every node (except int-or-string quantities, marked x-kubernetes-int-or-string), a
 * description on every field, defaults only where the policy has no say.
 *
 * Patterns are RE2-compatible (a real API server evaluates them with Go's regexp): no look-ahead.
 * - user / servername: what JupyterHub accepts (its database holds up to 255 characters; "ann lee",
 *   "zoë", "My Dash!" are all valid names), minus what no name can hold: "/" (a URL path segment
 *   in the hub) and control characters. After DockerSpawner-style escaping (src/config/templates.ts:
 *   everything but [a-z0-9] → "-" + hex of its UTF-8 bytes) only DNS-label characters remain;
 *   Docker names built from them are length-limited and made unique by the name template code.
 * - env names: `[A-Za-z_][A-Za-z0-9_.-]*` (Kubernetes' relaxed C identifier, never "=").
 * - app.path: relative segments, none of them "." or "..": it cannot leave the home directory.
 */
import { QUANTITY_PATTERN } from '../config/quantity.js';

export type JSONSchemaProps = {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps | boolean;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  anyOf?: JSONSchemaProps[];
  nullable?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
};

/** No "/", no C0/C1 control character, no DEL. */
export const NAME_PATTERN = '^[^/\\x00-\\x1f\\x7f-\\x9f]+$';
export const SERVERNAME_PATTERN = '^[^/\\x00-\\x1f\\x7f-\\x9f]*$';
/** JupyterHub's own limit (its user and spawner name columns). */
export const HUB_NAME_MAX_LENGTH = 255;
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_.-]*$';
/** Each segment is not "." or "..": starts with a non-dot, or "." + non-dot, or ".." + something. */
const SEG = '([^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+)';
export const APP_PATH_PATTERN = `^(${SEG}(/${SEG})*/?)?$`;
export const IMAGE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$';
/** A mode: a DNS label (built-in modes and the ones the operator policy adds). */
export const MODE_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
/** A name handed to a program as one option value (template, conda env): no leading "-", no "/", no spaces. */
export const TOKEN_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9._+-]*$';
/** A git branch or tag: no leading "-" (it would read as an option), none of git's forbidden characters. */
export const GIT_REF_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9._/+-]*$';
/** A JupyterHub group name. */
export const GROUP_PATTERN = '^[A-Za-z0-9]([A-Za-z0-9._@+-]{0,253}[A-Za-z0-9])?$';
/** DNS-1123 subdomain: the name of another NotebookServer. */
export const OBJECT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const s = (description: string, extra: Partial<JSONSchemaProps> = {}): JSONSchemaProps => ({ type: 'string', description, ...extra });
const int = (description: string, extra: Partial<JSONSchemaProps> = {}): JSONSchemaProps => ({ type: 'integer', format: 'int64', description, ...extra });
const bool = (description: string, extra: Partial<JSONSchemaProps> = {}): JSONSchemaProps => ({ type: 'boolean', description, ...extra });
const obj = (description: string, properties: Record<string, JSONSchemaProps>, extra: Partial<JSONSchemaProps> = {}): JSONSchemaProps => ({
  type: 'object',
  description,
  properties,
  ...extra,
});
const arr = (description: string, items: JSONSchemaProps, extra: Partial<JSONSchemaProps> = {}): JSONSchemaProps => ({
  type: 'array',
  description,
  items,
  ...extra,
});
const quantity = (description: string): JSONSchemaProps => ({
  description,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern: QUANTITY_PATTERN,
  'x-kubernetes-int-or-string': true,
});

const specSchema: JSONSchemaProps = obj(
  'Desired state of the notebook server. The operator policy decides what is allowed (images, modes, resources, system users); a NotebookServer never carries host paths or Docker options.',
  {
    user: s(
      'JupyterHub user the server belongs to ({username} in the policy templates), as JupyterHub spells it: any characters but "/" and control characters, at most 255; escaped for Docker names like DockerSpawner does.',
      { pattern: NAME_PATTERN, minLength: 1, maxLength: HUB_NAME_MAX_LENGTH },
    ),
    servername: s('Named-server name ({servername}); "" is the user\'s default server. Same characters as user, at most 255.', {
      pattern: SERVERNAME_PATTERN,
      maxLength: HUB_NAME_MAX_LENGTH,
      default: '',
    }),
    image: s(
      "Container image to run. Must match the policy's allowedImages globs; unset means the policy's defaultImage. The operator pins it to the local image ID or repo digest when it starts the server.",
      { pattern: IMAGE_PATTERN, maxLength: 512 },
    ),
    mode: s(
      "What the server runs. Built in: notebook (Jupyter Notebook / jupyterhub-singleuser), lab (JupyterLab), voila, streamlit, dash, panel, bokeh, rshiny (dashboards of spec.app.path, launched as cdsdashboards does), custom (spec.command). The operator policy's launcher table says the command of each mode, may disable modes and may add modes of its own (any DNS label, like cdsdashboards' extra_presentation_types): a mode the policy has no launcher for fails with a message listing the policy's modes. Unset means the policy's defaultMode (status.mode shows the mode that runs).",
      { pattern: MODE_PATTERN, maxLength: 63 },
    ),
    app: obj('The presentation a dashboard mode serves.', {
      path: s(
        'Notebook, script or folder to present, relative to the home directory (no leading "/", no ".." segments), or to spec.git.folder when spec.git is set. Required by the dashboard modes whose launcher says so; voila serves the whole folder when it is empty (cdsdashboards\' "leave blank").',
        { pattern: APP_PATH_PATTERN, maxLength: 4096 },
      ),
      args: arr(
        "Extra arguments for the app, appended to the launcher's command line (or placed where the launcher says {args}). Passed literally.",
        s('One argument.'),
        { 'x-kubernetes-list-type': 'atomic' },
      ),
      template: s(
        "Template of the app, for modes whose launcher has templateArgs (voila: --template=NAME, cdsdashboards' voila_template). Unset: the launcher's default template, if any.",
        { pattern: TOKEN_PATTERN, maxLength: 100 },
      ),
      condaEnv: s(
        "Conda environment the app runs in (cdsdashboards' conda_env; jhsingle-native-proxy --conda-env). Must be one of the operator policy's dashboards.conda.envs unless dashboards.conda.allowCustom is true; the image must have conda.",
        { pattern: TOKEN_PATTERN, maxLength: 100 },
      ),
    }),
    git: obj(
      "Take the presentation from a git repository (cdsdashboards' \"Git Repo\" source): the server's container clones it into the home before the app starts, as the server's user, and pulls it on each later start (a folder with local changes is served as it is). The image needs git.",
      {
        url: s(
          'Repository URL: https://HOST/PATH, ssh://[USER@]HOST/PATH or USER@HOST:PATH. Credentials never go in the URL: use secretName. The operator policy (dashboards.git) may restrict the URLs.',
          { pattern: '^\\S+$', minLength: 1, maxLength: 2048 },
        ),
        branch: s("Branch (or tag) to check out; unset: the repository's default branch.", { pattern: GIT_REF_PATTERN, maxLength: 255 }),
        folder: s(
          "Where the clone goes, relative to the home directory; unset: the policy's dashboards.git.directory joined with a name made from the URL (as cdsdashboards names its repo folders).",
          { pattern: APP_PATH_PATTERN, minLength: 1, maxLength: 4096 },
        ),
        secretName: s(
          'Secret in the same namespace with the credentials: username and password (https; a token as password), or identity (an ssh private key) and known_hosts (ssh); ca.crt for a private certificate authority. They reach the container as files (Docker secrets on Swarm), never as environment variables.',
          { pattern: OBJECT_NAME_PATTERN, maxLength: 253 },
        ),
      },
      { required: ['url'] },
    ),
    viewers: obj(
      'Who may open the server besides its owner (cdsdashboards\' "All Users" / "Selected Users"). The JupyterHub spawner grants them JupyterHub\'s access:servers scope for this server, and the server\'s OAuth check (jupyterhub-singleuser, or the dashboard proxy) enforces it. Needs a launcher that checks OAuth: a direct launcher without hubArgs is refused.',
      {
        allUsers: bool('Every JupyterHub user may open it.'),
        users: arr('JupyterHub user names.', s('A user name.', { pattern: NAME_PATTERN, maxLength: 63 }), { maxItems: 1000, 'x-kubernetes-list-type': 'set' }),
        groups: arr('JupyterHub group names: their members may open it.', s('A group name.', { pattern: GROUP_PATTERN, maxLength: 255 }), {
          maxItems: 1000,
          'x-kubernetes-list-type': 'set',
        }),
      },
    ),
    command: arr(
      'The argv to run in mode custom (or instead of the launcher when the policy sets allowCommandOverride). Placeholders {port} {ip} {home} {username} {servername} are filled by the operator.',
      s('One argument.'),
      { 'x-kubernetes-list-type': 'atomic' },
    ),
    source: obj("Build this server's image from another NotebookServer's container (docker commit), so packages installed there are here too.", {
      server: s('Name of the source NotebookServer in the same namespace.', { pattern: OBJECT_NAME_PATTERN, maxLength: 253 }),
      generation: int("Bump to rebuild the image from the source's current container; the image is otherwise built once.", { minimum: 0 }),
    }),
    env: arr(
      "Environment variables for the server (added after the policy's). The hub passes its JUPYTERHUB_* variables here.",
      obj(
        'One environment variable.',
        {
          name: s('Variable name.', { pattern: ENV_NAME_PATTERN, minLength: 1, maxLength: 256 }),
          value: s('Literal value. Use either value or valueFrom.'),
          valueFrom: obj(
            'Take the value from a Secret in the same namespace.',
            {
              secretKeyRef: obj(
                'A key of a Secret.',
                {
                  name: s('Name of the Secret.', { pattern: OBJECT_NAME_PATTERN, maxLength: 253 }),
                  key: s("Key in the Secret's data.", { minLength: 1, maxLength: 253 }),
                  optional: bool('If true, a missing Secret or key leaves the variable unset instead of failing the server.'),
                },
                { required: ['name', 'key'] },
              ),
            },
            { required: ['secretKeyRef'] },
          ),
        },
        { required: ['name'] },
      ),
      { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
    ),
    resources: obj("CPU and memory limits; unset values take the policy's defaults, and values above the policy's limits are refused.", {
      cpu: quantity('CPU limit as a Kubernetes quantity, e.g. "500m" or 2.'),
      memory: quantity('Memory limit as a Kubernetes quantity, e.g. "512Mi" or "2Gi".'),
      requests: obj(
        "CPU and memory reserved for the server on its node (Docker Swarm reservations: a node without that much unreserved is not chosen); unset values take the policy's resources.requests, and requests above the limits are refused.",
        {
          cpu: quantity('CPU to reserve, e.g. "250m".'),
          memory: quantity('Memory to reserve, e.g. "512Mi".'),
        },
      ),
    }),
    stopped: bool('Stop the server without deleting it (Swarm: scale to 0; container: stop). Volumes are kept.', { default: false }),
    systemUser: bool(
      "Run as the host account named by spec.user (its uid/gid) with its host home mounted, like DockerSpawner's SystemUserSpawner. Only when the operator policy enables system users.",
      { default: false },
    ),
  },
  { required: ['user'] },
);

const conditionSchema: JSONSchemaProps = obj(
  "One aspect of the server's state, as in Kubernetes conditions.",
  {
    type: s(
      "Condition type: Ready, Reconciling, Stalled, ImageReady, Scheduled, Degraded, Restarted (after a crash), or VolumeUnavailable (multi-node Swarm: the node holding the server's volumes is drained, down or gone).",
      { minLength: 1, maxLength: 316 },
    ),
    status: s('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    reason: s('One CamelCase word saying why the condition is in this status.', { maxLength: 1024 }),
    message: s('Human-readable detail, e.g. the spec field to fix.', { maxLength: 32768 }),
    lastTransitionTime: s('When the status last changed (RFC 3339).', { format: 'date-time' }),
    observedGeneration: int('metadata.generation the condition was computed for.', { minimum: 0 }),
  },
  { required: ['type', 'status'] },
);

const statusSchema: JSONSchemaProps = obj('Observed state, written by the operator only (status subresource).', {
  phase: s('Lifecycle phase: Pending, Creating, Running, Stopping, Stopped, Failed or Terminating.', {
    enum: ['Pending', 'Creating', 'Running', 'Stopping', 'Stopped', 'Failed', 'Terminating'],
  }),
  observedGeneration: int('metadata.generation the operator last acted on; equals metadata.generation once the spec has converged.', { minimum: 0 }),
  endpoint: obj('Where the server answers.', {
    url: s("URL for other containers on the policy's network (the Docker name resolves there); the hostUrl when no network is set."),
    hostUrl: s("URL on the Docker host: the published port on the policy's publishHostIp (or the port itself with host networking)."),
    host: s('Host address of hostUrl.'),
    port: int('Host port of hostUrl.', { minimum: 0, maximum: 65535 }),
  }),
  backend: obj('The Docker object running the server.', {
    kind: s('service (Docker Swarm) or container (plain Docker).', { enum: ['service', 'container'] }),
    id: s('Docker ID of the service or container.'),
    name: s("Docker name of the service or container (from the policy's nameTemplate)."),
    node: s('Node (host name) the server runs on.'),
    image: s('Image reference as requested.'),
    imageId: s('Image the object is pinned to (image ID or repo digest).'),
  }),
  node: s(
    'Node (host name) the server runs on. On a multi-node Swarm, a server with node-local volumes is pinned to the node that holds them, and this names that node even while the server is stopped or the node is down.',
  ),
  conditions: arr(
    'Ready, Reconciling (converging to metadata.generation), Stalled (cannot converge without a spec or policy change), ImageReady, Scheduled, Degraded, (after a crash) Restarted and (multi-node Swarm) VolumeUnavailable, each with the observedGeneration it was computed for; `kubectl wait --for=condition=Ready` works on them.',
    conditionSchema,
    {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
  ),
  lastActivity: s('Last time the server was seen active (RFC 3339), for idle culling.', { format: 'date-time' }),
  restartCount: int(
    "Times the server was restarted after a failure since its object was last written: by Docker (Swarm's restart policy) and by the operator after Docker stopped restarting it. Absent when none.",
    { minimum: 0 },
  ),
  build: obj('Image built from spec.source.server.', {
    image: s('The built image (repository:tag).'),
    builtAt: s('When it was built (RFC 3339).', { format: 'date-time' }),
    sourceGeneration: int('spec.source.generation it was built for.', { minimum: 0 }),
  }),
  message: s('One human sentence on what is happening or what is wrong.'),
  mode: s("The mode that runs: spec.mode, or the policy's defaultMode when spec.mode is unset (the MODE column)."),
});

/** openAPIV3Schema of the NotebookServer CRD version v1alpha1. */
export const notebookServerSchema: JSONSchemaProps = obj(
  'A Jupyter notebook server or dashboard run by nbswarm on Docker Swarm or a plain Docker host.',
  {
    apiVersion: s('APIVersion defines the versioned schema of this representation of an object: nbswarm.io/v1alpha1.'),
    kind: s('Kind is the REST resource kind: NotebookServer.'),
    metadata: { type: 'object', description: 'Standard object metadata.' },
    spec: specSchema,
    status: statusSchema,
  },
  { required: ['spec'] },
);

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/**
 * URL shows status.endpoint.hostUrl: the table is read by a person at the Docker host, who can
 * open that address; the network-internal url (only reachable from containers on the policy's
 * network) is the wide-output INTERNAL-URL column.
 */
export const printerColumns: PrinterColumn[] = [
  { name: 'User', type: 'string', jsonPath: '.spec.user', description: 'JupyterHub user' },
  { name: 'Server', type: 'string', jsonPath: '.spec.servername', description: 'Named server ("" = default)' },
  { name: 'Mode', type: 'string', jsonPath: '.status.mode', description: 'The mode that runs (spec.mode or the policy default)' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase' },
  { name: 'URL', type: 'string', jsonPath: '.status.endpoint.hostUrl', description: 'URL on the Docker host' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  { name: 'Internal-URL', type: 'string', jsonPath: '.status.endpoint.url', description: 'URL on the policy network', priority: 1 },
  { name: 'Node', type: 'string', jsonPath: '.status.node', description: 'Node the server runs on (or is pinned to)', priority: 1 },
  { name: 'Image', type: 'string', jsonPath: '.status.backend.image', description: 'Image', priority: 1 },
  { name: 'Message', type: 'string', jsonPath: '.status.message', description: 'What is happening', priority: 1 },
];

/** Every property path of a schema with its node, for checks like "every field is described". */
export function walkSchema(schema: JSONSchemaProps, visit: (path: string, node: JSONSchemaProps) => void, path = ''): void {
  visit(path || '.', schema);
  for (const [k, v] of Object.entries(schema.properties ?? {})) walkSchema(v, visit, `${path}.${k}`);
  if (schema.items) walkSchema(schema.items, visit, `${path}[]`);
  if (typeof schema.additionalProperties === 'object') walkSchema(schema.additionalProperties, visit, `${path}{}`);
}
