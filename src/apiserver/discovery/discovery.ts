/**
 * Discovery (/api, /apis, /apis/<group>[/<version>], aggregated discovery) and the OpenAPI
 * documents, all derived from the registry of served kinds.
 */
import type { KindRegistry } from '../registry/registry.js';
import type { ResourceKind } from '../registry/kinds.js';
import { VERBS } from '../request/info.js';
import { UNSERVED_VERBS } from '../registry/unserved.js';
import type { JsonObject } from '../types.js';
import { hashOf, openapiV2, openapiV3, type KindAtVersion } from './openapi.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-nbswarm',
  gitCommit: 'nbswarm',
  gitTreeState: 'clean',
  buildDate: '2026-11-25T00:00:00Z',
  goVersion: 'n/a',
  compiler: 'node',
  platform: `${process.platform}/${process.arch}`,
};

interface GroupVersion {
  groupVersion: string;
  version: string;
}

export interface ApiGroup {
  name: string;
  versions: GroupVersion[];
  preferredVersion: GroupVersion;
}

/** Kube's version priority: GA before beta before alpha, higher numbers first, others last by name. */
export function kubeVersionCompare(a: string, b: string): number {
  const rank = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [3, 0, 0] as const;
    return [m[2] === 'alpha' ? 2 : m[2] === 'beta' ? 1 : 0, -Number(m[1]), -Number(m[3] ?? 0)] as const;
  };
  const ra = rank(a),
    rb = rank(b);
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A kind's subresources as aggregated discovery lists them: status, then those with their own handler. */
function subresources(kind: ResourceKind, version: string): JsonObject[] {
  const own = { group: kind.group, version, kind: kind.kind };
  const out: JsonObject[] = kind.versions[0].statusSubresource ? [{ subresource: 'status', responseKind: own, verbs: ['get', 'patch', 'update'] }] : [];
  for (const [name, route] of Object.entries(kind.subresources ?? {}))
    out.push({ subresource: name, responseKind: route.responseKind ?? own, verbs: [...route.verbs] });
  return out;
}

/** A kind's entries in an APIResourceList: the resource, its status subresource and those with their own handler. */
export function apiResources(kind: ResourceKind): JsonObject[] {
  const v = kind.versions[0];
  const out: JsonObject[] = [
    {
      name: kind.resource,
      singularName: kind.singular,
      namespaced: kind.namespaced,
      kind: kind.kind,
      verbs: kind.review ? ['create'] : kind.unserved ? UNSERVED_VERBS : VERBS,
      ...(kind.shortNames.length ? { shortNames: kind.shortNames } : {}),
      ...(kind.categories.length ? { categories: kind.categories } : {}),
      storageVersionHash: Buffer.from(kind.storageKey).toString('base64').slice(0, 11),
    },
  ];
  if (v.statusSubresource)
    out.push({ name: `${kind.resource}/status`, singularName: '', namespaced: kind.namespaced, kind: kind.kind, verbs: ['get', 'patch', 'update'] });
  for (const [name, route] of Object.entries(kind.subresources ?? {})) {
    const rk = route.responseKind;
    out.push({
      name: `${kind.resource}/${name}`,
      singularName: '',
      namespaced: kind.namespaced,
      ...(rk ? { group: rk.group, version: rk.version, kind: rk.kind } : { kind: kind.kind }),
      verbs: [...route.verbs],
    });
  }
  return out;
}

export class Discovery {
  private readonly openapiCache = new Map<string, { body: JsonObject; hash: string }>();

  constructor(private readonly registry: KindRegistry) {
    registry.onChange(() => this.openapiCache.clear());
  }

  /** Every served API group (not core), versions in kube's priority order. */
  groups(): ApiGroup[] {
    const byGroup = new Map<string, Set<string>>();
    const preferred = new Map<string, string>();
    for (const k of this.registry.all()) {
      if (!k.group) continue;
      const set = byGroup.get(k.group) ?? new Set<string>();
      for (const v of k.versions) if (v.served) set.add(v.name);
      byGroup.set(k.group, set);
      const st = k.versions.find((v) => v.storage && v.served) ?? k.versions.find((v) => v.served);
      if (st && !preferred.has(k.group)) preferred.set(k.group, st.name);
    }
    return [...byGroup.entries()]
      .filter(([, vs]) => vs.size)
      .map(([g, vs]) => {
        const versions = [...vs].sort(kubeVersionCompare).map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
        const p = preferred.get(g) ?? versions[0].version;
        return { name: g, versions, preferredVersion: { groupVersion: `${g}/${p}`, version: p } };
      });
  }

  coreVersions(): JsonObject {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '' }] };
  }

  groupList(): JsonObject {
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups() };
  }

  group(name: string): JsonObject | undefined {
    const g = this.groups().find((x) => x.name === name);
    return g && { kind: 'APIGroup', apiVersion: 'v1', ...g };
  }

  resourceList(group: string, version: string): JsonObject | undefined {
    const kinds = this.registry.resourcesIn(group, version);
    if (!kinds.length) return undefined;
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: kinds.flatMap(apiResources) };
  }

  /** Aggregated discovery (apidiscovery.k8s.io `v`): every group, version and resource in one document. */
  aggregated(core: boolean, v: string): JsonObject {
    const groupList = core ? [{ name: '', versions: [{ version: 'v1' }] }] : this.groups();
    const items = groupList.map((g) => ({
      metadata: { name: g.name, creationTimestamp: null },
      versions: g.versions.map((gv) => ({
        version: gv.version,
        freshness: 'Current',
        resources: this.registry.resourcesIn(g.name, gv.version).map((k) => {
          const responseKind = { group: k.group, version: gv.version, kind: k.kind };
          const subs = subresources(k, gv.version);
          return {
            resource: k.resource,
            responseKind,
            scope: k.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: k.singular,
            verbs: k.review ? ['create'] : k.unserved ? UNSERVED_VERBS : VERBS,
            ...(k.shortNames.length ? { shortNames: k.shortNames } : {}),
            ...(k.categories.length ? { categories: k.categories } : {}),
            ...(subs.length ? { subresources: subs } : {}),
          };
        }),
      })),
    }));
    return { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${v}`, metadata: {}, items };
  }

  /** `api/v1` and `apis/<group>/<version>` for every served group version. */
  groupVersionPaths(): string[] {
    const out = ['api/v1'];
    for (const g of this.groups()) for (const v of g.versions) out.push(`apis/${v.groupVersion}`);
    return out;
  }

  openapiV2(): ReturnType<typeof openapiV2> {
    const all: KindAtVersion[] = [];
    for (const k of this.registry.all()) for (const v of k.versions) if (v.served) all.push([k, v.name]);
    return openapiV2(all);
  }

  /** The /openapi/v3 index: each group version's document with the hash clients cache it by. */
  openapiV3Index(): JsonObject {
    const paths: JsonObject = {};
    for (const gv of this.groupVersionPaths()) paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${this.openapiV3(gv)!.hash}` };
    return { paths };
  }

  /** The OpenAPI v3 document of `gv` (`api/v1`, `apis/<group>/<version>`), built once per change of the registry. */
  openapiV3(gv: string): { body: JsonObject; hash: string } | undefined {
    if (!this.groupVersionPaths().includes(gv)) return undefined;
    let c = this.openapiCache.get(gv);
    if (!c) {
      const [, group, version] = gv.startsWith('api/') ? ['', '', gv.slice(4)] : gv.split('/');
      const body = openapiV3(this.registry.resourcesIn(group, version).map((k): KindAtVersion => [k, version]));
      c = { body, hash: hashOf(body) };
      this.openapiCache.set(gv, c);
    }
    return c;
  }
}
