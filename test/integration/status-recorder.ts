/**
 * A recorder of every status a NotebookServer goes through: a watch sees each write, so a short-lived
 * progress state cannot slip between two polls.
 */
import { Watch } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { waitFor } from '../helpers/docker.js';
import { NS, type Env } from './operator-harness.js';

export interface StatusStep {
  phase?: string;
  ready?: string;
  readyReason?: string;
  message?: string;
  hostUrl?: string;
}

export interface StatusRecorder {
  steps: StatusStep[];
  /** Wait until a recorded step satisfies `pred`. */
  until(what: string, pred: (s: StatusStep) => boolean, timeoutMs?: number): Promise<StatusStep>;
  stop(): void;
}

/**
 * Watch one NotebookServer by name and record each distinct (phase, Ready) it is written with.
 * The watch starts at the collection's current resourceVersion, so every later write is replayed
 * even if the connection is set up after the object is created.
 */
export async function recordStatuses(env: Env, name: string): Promise<StatusRecorder> {
  const steps: StatusStep[] = [];
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
  const list = (await env.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: NS })) as {
    metadata?: { resourceVersion?: string };
  };
  const watch = new Watch(env.kc);
  let errored: unknown;
  // Not awaited: the request resolves only once the server sends its first bytes.
  const req = watch.watch(
    path,
    { resourceVersion: list.metadata?.resourceVersion },
    (_type: string, obj: NotebookServer) => {
      if (obj?.metadata?.name !== name) return;
      const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
      const step: StatusStep = {
        phase: obj.status?.phase,
        ready: ready?.status,
        readyReason: ready?.reason,
        message: obj.status?.message,
        hostUrl: obj.status?.endpoint?.hostUrl,
      };
      const last = steps[steps.length - 1];
      if (!last || last.phase !== step.phase || last.readyReason !== step.readyReason || last.ready !== step.ready) steps.push(step);
    },
    (err) => {
      if (err && (err as Error).name !== 'AbortError') errored = err;
    },
  );
  req.catch((err: unknown) => (errored = err));
  return {
    steps,
    until: (what, pred, timeoutMs = 60_000) =>
      waitFor(
        what,
        async () => {
          if (errored) throw new Error(`status watch failed: ${(errored as Error).message ?? String(errored)}`);
          return steps.find(pred);
        },
        timeoutMs,
        100,
      ),
    stop: () => {
      req.then((c) => c.abort()).catch(() => undefined);
    },
  };
}
