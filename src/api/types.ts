/**
 * The NotebookServer resource (DESIGN.md §2) as TypeScript types.
 * The JSON schema in ./schema.ts is the one source of the CRD; these types mirror it.
 */
export const GROUP = 'nbswarm.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'NotebookServer';
export const PLURAL = 'notebookservers';
export const SINGULAR = 'notebookserver';
export const SHORT_NAMES = ['nbs'];
export const FINALIZER = 'nbswarm.io/cleanup';

/** Labels every Docker object the operator owns carries (DESIGN.md §3). */
export const LABELS = {
  uid: 'nbswarm.io/uid',
  namespace: 'nbswarm.io/namespace',
  name: 'nbswarm.io/name',
  user: 'nbswarm.io/user',
  servername: 'nbswarm.io/servername',
  generation: 'nbswarm.io/generation',
  specHash: 'nbswarm.io/spec-hash',
  image: 'nbswarm.io/image',
  port: 'nbswarm.io/port',
  managedBy: 'nbswarm.io/managed-by',
  /** Set on volumes: they outlive servers. */
  volume: 'nbswarm.io/volume',
} as const;

export type Mode = 'notebook' | 'lab' | 'voila' | 'streamlit' | 'dash' | 'panel' | 'bokeh' | 'rshiny' | 'custom';
export const MODES: readonly Mode[] = ['notebook', 'lab', 'voila', 'streamlit', 'dash', 'panel', 'bokeh', 'rshiny', 'custom'];

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string; optional?: boolean } };
}

export interface NotebookServerSpec {
  user: string;
  servername?: string;
  image?: string;
  mode?: Mode;
  app?: { path?: string; args?: string[] };
  command?: string[];
  source?: { server?: string; generation?: number };
  env?: EnvVar[];
  /** Kubernetes quantities; like Kubernetes, a bare number is accepted (cpu: 1). */
  resources?: { cpu?: string | number; memory?: string | number };
  stopped?: boolean;
  systemUser?: boolean;
}

export type Phase = 'Pending' | 'Creating' | 'Running' | 'Stopping' | 'Stopped' | 'Failed' | 'Terminating';
export type ConditionType = 'Ready' | 'ImageReady' | 'Scheduled' | 'Degraded';

export interface Condition {
  type: ConditionType | string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface NotebookServerStatus {
  phase?: Phase;
  observedGeneration?: number;
  endpoint?: { url?: string; hostUrl?: string; host?: string; port?: number };
  backend?: { kind?: 'service' | 'container'; id?: string; name?: string; node?: string; image?: string; imageId?: string };
  conditions?: Condition[];
  lastActivity?: string;
  build?: { image?: string; builtAt?: string; sourceGeneration?: number };
  message?: string;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}

export interface NotebookServer {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: NotebookServerSpec;
  status?: NotebookServerStatus;
}
