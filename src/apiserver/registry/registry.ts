/**
 * The registry of served kinds: the built-in ones and one per established CRD. Discovery,
 * OpenAPI and the dispatcher read it; a CRD write or delete changes it.
 */
import type { Logger } from '../../log.js';
import { errorFields } from '../../log.js';
import type { CustomResourceDefinition } from '../types.js';
import { kindFromCrd, namesRejected } from './crd.js';
import { kindKey, servedVersion, type KindVersion, type ResourceKind } from './kinds.js';

export class KindRegistry {
  private readonly kinds = new Map<string, ResourceKind>();
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly log: Logger) {}

  add(kind: ResourceKind): void {
    this.kinds.set(kindKey(kind.group, kind.resource), kind);
    this.changed();
  }

  get(group: string, resource: string): ResourceKind | undefined {
    return this.kinds.get(kindKey(group, resource));
  }

  /** The kind and version a request names, when that version is served. */
  resolve(group: string, version: string, resource: string): { kind: ResourceKind; version: KindVersion } | undefined {
    const kind = this.get(group, resource);
    const v = kind && servedVersion(kind, version);
    return kind && v ? { kind, version: v } : undefined;
  }

  all(): Iterable<ResourceKind> {
    return this.kinds.values();
  }

  /** The kinds served in group/version, each narrowed to that one version. */
  resourcesIn(group: string, version: string): ResourceKind[] {
    const out: ResourceKind[] = [];
    for (const k of this.kinds.values()) {
      if (k.group !== group) continue;
      const v = servedVersion(k, version);
      if (v) out.push({ ...k, versions: [v] });
    }
    return out;
  }

  /** Serves a stored CRD; one whose names clash with another is kept but not served. */
  registerCrd(crd: CustomResourceDefinition): void {
    if (namesRejected(crd)) return;
    try {
      this.add(kindFromCrd(crd));
    } catch (e) {
      this.log.warn('cannot serve CRD', { ...errorFields(e, `customresourcedefinitions/${crd.metadata.name}`), hint: 'fix the CRD schema and apply it again' });
      this.changed();
    }
  }

  unregisterCrd(crd: CustomResourceDefinition): void {
    const key = kindKey(crd.spec.group, crd.spec.names.plural);
    if (this.kinds.get(key)?.crdName === crd.metadata.name) this.kinds.delete(key);
    this.changed();
  }

  /** Calls `fn` whenever the set of served kinds may have changed (OpenAPI caches listen). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}
