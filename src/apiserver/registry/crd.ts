/**
 * CustomResourceDefinitions: checking one, its status (names accepted, established), and the
 * kind it makes the server serve.
 */
import { isObject } from '../../util/json.js';
import { nowIso } from '../../util/time.js';
import type { Condition, CrdVersion, Cause, CustomResourceDefinition, KubeObject, StoredObject } from '../types.js';
import { CustomResourceStrategy } from './custom.js';
import type { ResourceKind } from './kinds.js';
import { kindKey } from './kinds.js';
import { compileValidator } from './schema.js';
import { GenericStrategy, type WriteContext } from './strategy.js';

/** Problems with a CRD's spec, as field causes. */
export function crdProblems(crd: KubeObject): Cause[] {
  const p: Cause[] = [];
  const s = isObject(crd.spec) ? crd.spec : {};
  const names = isObject(s.names) ? s.names : {};
  const req = (field: string) => p.push({ field, message: 'Required value', reason: 'FieldValueRequired' });
  // Names must be strings too: they become map keys, URL parts and kube's names.
  const text = (v: unknown) => typeof v === 'string' && v !== '';
  if (!text(s.group)) req('spec.group');
  if (!text(names.plural)) req('spec.names.plural');
  if (!text(names.kind)) req('spec.names.kind');
  if (s.scope !== 'Namespaced' && s.scope !== 'Cluster')
    p.push({
      field: 'spec.scope',
      message: `Unsupported value: ${JSON.stringify(s.scope)}: supported values: "Cluster", "Namespaced"`,
      reason: 'FieldValueNotSupported',
    });
  if (!Array.isArray(s.versions) || s.versions.length === 0) req('spec.versions');
  else if (s.versions.filter((v: unknown) => isObject(v) && v.storage).length !== 1)
    p.push({ field: 'spec.versions', message: 'Invalid value: must have exactly one version marked as storage version', reason: 'FieldValueInvalid' });
  if (text(s.group) && text(names.plural) && crd.metadata.name !== `${names.plural}.${s.group}`) {
    p.push({
      field: 'metadata.name',
      message: `Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group`,
      reason: 'FieldValueInvalid',
    });
  }
  return p;
}

const customResources = new CustomResourceStrategy();

/** The kind a stored CRD defines; throws when a version's schema does not compile. */
export function kindFromCrd(crd: CustomResourceDefinition): ResourceKind {
  const s = crd.spec;
  return {
    group: s.group,
    resource: s.names.plural,
    singular: s.names.singular ?? s.names.kind.toLowerCase(),
    kind: s.names.kind,
    listKind: s.names.listKind ?? `${s.names.kind}List`,
    namespaced: s.scope === 'Namespaced',
    shortNames: s.names.shortNames ?? [],
    categories: s.names.categories ?? [],
    storageKey: kindKey(s.group, s.names.plural),
    builtin: false,
    crdName: crd.metadata.name,
    strategy: customResources,
    versions: s.versions.map((v: CrdVersion) => ({
      name: v.name,
      served: v.served !== false,
      storage: !!v.storage,
      schema: v.schema?.openAPIV3Schema,
      validator: compileValidator(v.schema?.openAPIV3Schema),
      columns: v.additionalPrinterColumns,
      statusSubresource: !!v.subresources?.status,
      scaleSubresource: !!v.subresources?.scale,
      selectableFields: (v.selectableFields ?? []).map((f) => String(f.jsonPath).replace(/^\./, '')),
    })),
  };
}

/** Whether a stored CRD lost the race for its names: it is kept but not served. */
export function namesRejected(crd: CustomResourceDefinition): boolean {
  return !!crd.status?.conditions?.some((c) => c.type === 'NamesAccepted' && c.status === 'False');
}

/** What the CRD strategy needs from the server around it. */
export interface CrdHooks {
  /** The kind currently served under group/resource, if any. */
  served(group: string, resource: string): ResourceKind | undefined;
  /** Serve (or serve anew) a stored CRD. */
  register(crd: CustomResourceDefinition): void;
  /** The CRD is gone: remove its objects and stop serving it. */
  deleted(crd: CustomResourceDefinition): void;
}

export class CrdStrategy extends GenericStrategy {
  override readonly tracksGeneration = true;
  protected override readonly dropsStatusOnCreate = true;

  constructor(private readonly hooks: CrdHooks) {
    super();
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    return [...super.validate(obj, ctx), ...crdProblems(obj)];
  }

  override validateUpdate(obj: KubeObject, old: StoredObject): Cause[] {
    const plural = (o: KubeObject) => (isObject(o.spec) && isObject(o.spec.names) ? o.spec.names.plural : undefined);
    // The plural is the URL and the storage key of every object of the kind.
    if (plural(obj) !== plural(old)) return [{ reason: 'FieldValueInvalid', message: 'Invalid value: field is immutable', field: 'spec.names.plural' }];
    return [];
  }

  /** Conditions as kube's CRD controllers would set them, decided here at once. */
  override complete(obj: KubeObject): void {
    const crd = obj as CustomResourceDefinition;
    const now = nowIso();
    const s = crd.spec;
    const holder = this.hooks.served(s.group, s.names.plural);
    const clash = holder !== undefined && holder.crdName !== crd.metadata.name;
    const prevConds = crd.status?.conditions ?? [];
    const cond = (type: string, ok: boolean, reason: string, message: string): Condition => {
      const old = prevConds.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now, reason, message };
    };
    const storageVersion = s.versions.find((v) => v.storage)?.name;
    crd.status = {
      conditions: [
        cond(
          'NamesAccepted',
          !clash,
          clash ? 'MultipleNamesNotAllowed' : 'NoConflicts',
          clash ? `"${s.names.plural}" is already in use` : 'no conflicts found',
        ),
        cond(
          'Established',
          !clash,
          clash ? 'NotAccepted' : 'InitialNamesAccepted',
          clash ? 'not all names are accepted' : 'the initial names have been accepted',
        ),
      ],
      acceptedNames: clash
        ? {}
        : {
            plural: s.names.plural,
            singular: s.names.singular ?? s.names.kind.toLowerCase(),
            kind: s.names.kind,
            listKind: s.names.listKind ?? `${s.names.kind}List`,
            ...(s.names.shortNames ? { shortNames: s.names.shortNames } : {}),
            ...(s.names.categories ? { categories: s.names.categories } : {}),
          },
      storedVersions: [...new Set([...(crd.status?.storedVersions ?? []), storageVersion])].filter((v): v is string => !!v),
    };
  }

  override afterWrite(saved: StoredObject): void {
    this.hooks.register(saved as unknown as CustomResourceDefinition);
  }

  override afterDelete(gone: StoredObject): void {
    this.hooks.deleted(gone as unknown as CustomResourceDefinition);
  }
}
