/**
 * Every name nbswarm writes under its `nbswarm.io` prefix: the API group, the finalizer, the labels
 * on Docker objects, volumes and built images, and the annotations people and the culler set on a
 * NotebookServer. One module, so a label is spelled once and a reader finds them all here.
 */
export const GROUP = 'nbswarm.io';
/** What every nbswarm label and annotation key starts with. */
export const KEY_PREFIX = `${GROUP}/`;
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'NotebookServer';
export const PLURAL = 'notebookservers';
export const SINGULAR = 'notebookserver';
export const SHORT_NAMES = ['nbs'];

/** Holds a NotebookServer until its Docker object is removed. */
export const FINALIZER = 'nbswarm.io/cleanup';

/** Value of LABELS.managedBy on everything this operator creates. */
export const MANAGED_BY = 'nbswarm';

/**
 * Labels on Docker objects. Docker objects are found by label, never by name alone, so a restart,
 * a rename or a half-done create never duplicates a server.
 */
export const LABELS = {
  /** metadata.uid of the owning NotebookServer: how a server's object is found. */
  uid: 'nbswarm.io/uid',
  namespace: 'nbswarm.io/namespace',
  name: 'nbswarm.io/name',
  user: 'nbswarm.io/user',
  servername: 'nbswarm.io/servername',
  /** metadata.generation the object was last written for. */
  generation: 'nbswarm.io/generation',
  /** Hash of everything that shapes the object: "unchanged" costs no Docker write. */
  specHash: 'nbswarm.io/spec-hash',
  /** The image reference the server runs, as named (the object itself is pinned to an ID or digest). */
  image: 'nbswarm.io/image',
  /**
   * On a Swarm service (not its tasks): the pinned image nbswarm last wrote. A running server keeps
   * it when its tag moves, until it restarts; an image set by someone else differs from it.
   */
  writtenImage: 'nbswarm.io/written-image',
  /** Port the server listens on; with host networking also the host port, kept across updates. */
  port: 'nbswarm.io/port',
  /** Host IP the published port was asked for ('' with host networking), read back by observe. */
  hostIp: 'nbswarm.io/host-ip',
  mode: 'nbswarm.io/mode',
  /**
   * On a Swarm service pinned to the node that holds its node-local volumes: that node's hostname
   * (the placement constraint says the same; the label is how the pin is read back).
   */
  node: 'nbswarm.io/node',
  managedBy: 'nbswarm.io/managed-by',
  /** Set on volumes: they outlive servers ('server' or 'user' scoped). */
  volume: 'nbswarm.io/volume',
  /** On volumes the policy marks deleteWithServer: the operator may remove them with the server. */
  deleteWithServer: 'nbswarm.io/delete-with-server',
  /** On images built from a source server's container. */
  sourceUid: 'nbswarm.io/source-uid',
  builtForUid: 'nbswarm.io/built-for-uid',
  source: 'nbswarm.io/source',
  sourceGeneration: 'nbswarm.io/source-generation',
  /**
   * On a Swarm service (not its tasks): when the operator last wrote it (create, update, scale,
   * forced restart). Task failures from before it are history, not the server's state now.
   */
  writtenAt: 'nbswarm.io/written-at',
  /**
   * On the one-off Swarm job that commits a source server's container on its node and pushes the
   * image (multi-node Swarm): the image it builds (repository:tag). Builder jobs carry no
   * managed-by label, so they are never mistaken for servers.
   */
  buildTarget: 'nbswarm.io/build-target',
} as const;

/** Annotations on a NotebookServer. */
export const ANNOTATIONS = {
  /** Set by the culler (or a person) to stop a server without touching spec (Kubeflow's kubeflow-resource-stopped). */
  stopped: 'nbswarm.io/stopped',
  /** metadata.generation when `stopped` was set; a later spec change starts the server again. */
  stoppedGeneration: 'nbswarm.io/stopped-generation',
  /** Why it was stopped (e.g. Culled). */
  stoppedReason: 'nbswarm.io/stopped-reason',
  /** Change its value to rebuild a source-server image. */
  rebuild: 'nbswarm.io/rebuild',
  /**
   * RFC 3339 time by which a client that asked for a start (the hub's spawner) stops waiting. Not
   * Ready for its generation by then → the operator stops the server (annotation `stopped`, reason
   * StartDeadlineExceeded), so a start nobody waits for any more never runs unattended, whatever
   * crashed meanwhile. Removed by the operator once the server is Ready.
   */
  startDeadline: 'nbswarm.io/start-deadline',
  /**
   * Set by an admin: the node (hostname) that holds the server's node-local volumes, e.g. after
   * moving them to another node by hand. Overrides where the operator last saw them.
   */
  node: 'nbswarm.io/node',
  /**
   * "immediate": a running server moves to a newer image of its tag at once (a restart); default
   * (or "onStart", or the policy's imageUpdates) at its next start only.
   */
  imageUpdates: 'nbswarm.io/image-updates',
  /**
   * Any new value asks for a reconcile (`kubectl annotate --overwrite nbs NAME
   * nbswarm.io/reconcile=$(date +%s)`), like Flux's reconcile.fluxcd.io/requestedAt. A change to
   * any `nbswarm.io/` annotation does; labels and other tools' annotations do not (echoes.ts).
   */
  reconcile: 'nbswarm.io/reconcile',
} as const;

/** stoppedReason of a server stopped because it missed its start deadline. */
export const START_DEADLINE_EXCEEDED = 'StartDeadlineExceeded';
/** On the operator's leader Lease: where the leader's status page answers ('' when it has none). */
export const LEASE_STATUS_URL = 'nbswarm.io/status-url';
/** Name of the operator's leader Lease for a policy prefix (operators with different prefixes are independent). */
export const leaseNameFor = (prefix: string): string =>
  `nbswarm-operator-${prefix}`
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 63);
