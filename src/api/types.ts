/**
 * The NotebookServer resource as TypeScript types.
 * The JSON schema in ./schema.ts is the one source of the CRD; these types mirror it.
 */
import type { API_VERSION, KIND } from './names.js';

// The names moved to ./names.ts; re-exported for the importers that know them from here.
export { API_VERSION, FINALIZER, GROUP, KIND, LABELS, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './names.js';

/** The built-in modes; the operator policy may add more (any DNS label with a launcher). */
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
  /** A built-in Mode or a mode the operator policy adds. */
  mode?: string;
  app?: { path?: string; args?: string[]; template?: string; condaEnv?: string };
  /** Clone (start) or pull (restart) a git repository into the home before the app starts. */
  git?: { url: string; branch?: string; folder?: string; secretName?: string };
  /** JupyterHub users and groups that may open the server (the hub spawner grants them access). */
  viewers?: { allUsers?: boolean; users?: string[]; groups?: string[] };
  command?: string[];
  source?: { server?: string; generation?: number };
  env?: EnvVar[];
  /** Kubernetes quantities; like Kubernetes, a bare number is accepted (cpu: 1). */
  resources?: { cpu?: string | number; memory?: string | number; requests?: { cpu?: string | number; memory?: string | number } };
  stopped?: boolean;
  systemUser?: boolean;
}

export type Phase = 'Pending' | 'Creating' | 'Running' | 'Stopping' | 'Stopped' | 'Failed' | 'Terminating';
export type ConditionType = 'Ready' | 'Reconciling' | 'Stalled' | 'ImageReady' | 'Scheduled' | 'Degraded' | 'Restarted' | 'VolumeUnavailable';

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
  /** The node the server runs on; on a multi-node Swarm, the node its node-local volumes live on (it is pinned there). */
  node?: string;
  conditions?: Condition[];
  lastActivity?: string;
  restartCount?: number;
  build?: { image?: string; builtAt?: string; sourceGeneration?: number };
  message?: string;
  /** The mode that runs: spec.mode, else the policy's defaultMode. */
  mode?: string;
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
