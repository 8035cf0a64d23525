/**
 * The start-up steps of `nbswarm up` and `nbswarm operator` that meet the outside world (policy
 * file, Docker, kubeconfig, API server, ports): each fails with a StartupError, one line and a
 * hint, never a stack trace.
 */
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import type { Registry } from 'prom-client';
import { GROUP, PLURAL, VERSION } from '../api/types.js';
import type { RunningApiServer } from '../apiserver/index.js';
import { connectDocker, createBackend } from '../backends/docker.js';
import { instrumentDocker, type DockerMetrics } from '../backends/docker-metrics.js';
import { BackendError, type Backend } from '../backends/types.js';
import { loadPolicy } from '../config/policy.js';
import type { Policy } from '../config/types.js';
import type { Logger } from '../log.js';
import { describePortInUse } from '../port-holder.js';
import { makeApiClient } from './kube.js';

export class StartupError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function readPolicy(file: string | undefined, backend?: string): Policy {
  const overrides: Partial<Policy> = {};
  if (backend) overrides.backend = backend as Policy['backend'];
  return loadPolicy({ file, env: process.env, overrides });
}

/** The Docker connection with every API call counted into `registry`, and the backend on it. */
export async function connectBackend(policy: Policy, log: Logger, registry: Registry): Promise<{ backend: Backend; docker: Docker; docker$: DockerMetrics }> {
  const docker = connectDocker();
  const docker$ = instrumentDocker(docker, registry);
  try {
    const backend = await createBackend(policy.backend, {
      docker,
      pullPolicy: policy.pullPolicy,
      log,
      registry: policy.registry,
      builderImage: policy.sourceImages.builderImage,
    });
    return { backend, docker, docker$ };
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new StartupError(`cannot use Docker: ${(err as Error).message}`, 'is dockerd running and is /var/run/docker.sock (or DOCKER_HOST) reachable?');
  }
}

/** Ask the daemon once, so "Docker unreachable" is a start-up error, not a stream of reconcile errors. */
export async function checkBackend(backend: Backend): Promise<void> {
  try {
    await backend.listManaged();
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new StartupError(`Docker did not answer: ${(err as Error).message}`, 'start dockerd, or set DOCKER_HOST');
  }
}

/** One list call, so a wrong kubeconfig or a missing CRD is a clear start-up error rather than retries forever. */
export async function preflightApi(kc: KubeConfig, namespace?: string): Promise<void> {
  const api = makeApiClient(kc, CustomObjectsApi);
  const server = kc.getCurrentCluster()?.server ?? '(no server in kubeconfig)';
  try {
    if (namespace) await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, limit: 1 });
    else await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 });
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404)
      throw new StartupError(`the API server at ${server} does not serve ${PLURAL}.${GROUP}`, 'install the CRD: kubectl apply -f crds/notebookserver.yaml');
    if (code === 401 || code === 403)
      throw new StartupError(
        `the API server at ${server} refused to list ${PLURAL} (HTTP ${code})`,
        'the kubeconfig user needs list/watch on notebookservers and patch on notebookservers/status',
      );
    throw new StartupError(
      `cannot reach the API server at ${server}: ${(err as Error).message.split('\n')[0]}`,
      'is the API server running, and is this the right kubeconfig?',
    );
  }
}

/**
 * --kubeconfig, else $KUBECONFIG, else the pod's service account (what the Deployment in
 * manifests/kubernetes relies on): never client-node's silent fallback to http://localhost:8080.
 */
export function loadKubeconfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  const fromEnv = process.env.KUBECONFIG;
  if (!file && !fromEnv) {
    if (process.env.KUBERNETES_SERVICE_HOST) {
      kc.loadFromCluster();
      return kc;
    }
    throw new StartupError(
      'no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set and this is not a Kubernetes pod',
      'pass --kubeconfig FILE (the file `nbswarm up` printed, or one for your cluster)',
    );
  }
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault(); // KUBECONFIG may list several files; merged as kubectl merges them
  } catch (err) {
    throw new StartupError(
      `cannot read kubeconfig ${file ?? fromEnv}: ${(err as Error).message}`,
      'pass the file `nbswarm up` printed, or one for your cluster',
    );
  }
  return kc;
}

export type EmbeddedServer = RunningApiServer;

export async function startEmbedded(dataDir: string, port: number, address: string, log: Logger): Promise<EmbeddedServer> {
  try {
    // Loaded here, not at start-up: `nbswarm operator` never needs the server's modules.
    const { startApiServer } = await import('../apiserver/index.js');
    return await startApiServer({ dataDir, port, host: address, log });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new StartupError(describePortInUse(port, address), 'pass another --port, or stop that process');
    throw new StartupError(`cannot start the embedded API server: ${(err as Error).message}`, `check that ${dataDir} is writable`);
  }
}

export function portNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new StartupError(`${flag} must be a port number (0-65535), not "${value}"`, `e.g. ${flag} 9090`);
  return n;
}
