/**
 * The NotebookServer resource as TypeScript types.
 * The JSON schema in ./schema.ts is the one source of the CRD; these types mirror it.
 */
import type { API_VERSION, KIND } from './names.js';

// The names moved to ./names.ts; re-exported for the importers that know them from here.
export { API_VERSION, FINALIZER, GROUP, KIND, LABELS, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './names.js';

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
export type ConditionType = 'Ready' | 'Reconciling' | 'Stalled' | 'ImageReady' | 'Scheduled' | 'Degraded';

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
