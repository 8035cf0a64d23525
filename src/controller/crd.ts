/** Install crds/notebookserver.yaml through the API (any API server) and wait until it is Established. */
import { ApiextensionsV1Api, KubeConfig, loadYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { MODES } from '../api/types.js';
import { repoPath } from '../paths.js';
import { makeApiClient } from './kube.js';

/** The CRD file as plain JSON (for raw HTTP clients). */
export function loadCrd(path = repoPath('crds', 'notebookserver.yaml')): V1CustomResourceDefinition {
  return YAML.parse(readFileSync(path, 'utf8')) as V1CustomResourceDefinition;
}

/**
 * The CRD file as client-node's typed model. Its API clients serialize a body from that model
 * (`x-kubernetes-list-type` is the property `xKubernetesListType` there), so a plain object would
 * reach the server without its x-kubernetes-* markers: spec.env would become an atomic list
 * under server-side apply, and quantities would lose int-or-string.
 */
export function loadCrdForClient(path = repoPath('crds', 'notebookserver.yaml')): V1CustomResourceDefinition {
  return loadYaml<V1CustomResourceDefinition>(readFileSync(path, 'utf8'));
}

/**
 * The CRD with spec.mode's description naming the modes this operator's policy serves, when they
 * differ from the built-in ones (`kubectl explain nbs.spec.mode` then lists a policy's own modes).
 */
export function crdForModes(crd: V1CustomResourceDefinition, modes: readonly string[] | undefined): V1CustomResourceDefinition {
  if (!modes) return crd;
  const builtIn = [...MODES].sort().join(',');
  if ([...modes].sort().join(',') === builtIn) return crd;
  const out = structuredClone(crd);
  for (const v of out.spec.versions) {
    const mode = v.schema?.openAPIV3Schema?.properties?.spec?.properties?.mode;
    if (mode) mode.description = `${mode.description ?? ''} This operator's policy serves the modes: ${[...modes].sort().join(', ')}.`;
  }
  return out;
}

export async function installCrd(
  kc: KubeConfig,
  opts: { path?: string; timeoutMs?: number; modes?: readonly string[] } = {},
): Promise<'created' | 'updated' | 'unchanged'> {
  const api = makeApiClient(kc, ApiextensionsV1Api);
  const crd = crdForModes(loadCrdForClient(opts.path), opts.modes);
  const name = crd.metadata?.name ?? '';
  let result: 'created' | 'updated' | 'unchanged';
  try {
    const cur = await api.readCustomResourceDefinition({ name });
    if (JSON.stringify(cur.spec) === JSON.stringify({ ...cur.spec, ...crd.spec })) result = 'unchanged';
    else {
      await api.replaceCustomResourceDefinition({ name, body: { ...crd, metadata: { ...crd.metadata, resourceVersion: cur.metadata?.resourceVersion } } });
      result = 'updated';
    }
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    await api.createCustomResourceDefinition({ body: crd });
    result = 'created';
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const cur = await api.readCustomResourceDefinition({ name });
    if (cur.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return result;
    if (Date.now() > deadline) throw new Error(`CRD ${name} was not Established within ${opts.timeoutMs ?? 30_000} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
