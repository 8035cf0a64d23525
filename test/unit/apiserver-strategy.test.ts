import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ApiError } from '../../src/apiserver/errors.js';
import { builtinKinds } from '../../src/apiserver/registry/builtins.js';
import { kindFromCrd } from '../../src/apiserver/registry/crd.js';
import type { ResourceKind } from '../../src/apiserver/registry/kinds.js';
import type { WriteContext } from '../../src/apiserver/registry/strategy.js';
import type { CustomResourceDefinition, KubeObject, StoredObject } from '../../src/apiserver/types.js';
import { repoPath } from '../../src/paths.js';

/** The built-in kinds, with hooks that record what the strategies ask of the server. */
function kinds(served: (group: string, resource: string) => ResourceKind | undefined = () => undefined) {
  const calls: string[] = [];
  const all = builtinKinds({
    namespaceTerminating: (name) => calls.push(`terminating ${name}`),
    crd: { served, register: (crd) => calls.push(`register ${crd.metadata.name}`), deleted: (crd) => calls.push(`deleted ${crd.metadata.name}`) },
    rbacChanged: () => calls.push('rbac changed'),
    tokenRequest: () => undefined,
    fillServiceAccountToken: (secret) => {
      calls.push(`fill ${secret.metadata.name}`);
      return [];
    },
  });
  const kind = (resource: string, group = '') => all.find((k) => k.resource === resource && k.group === group)!;
  return { calls, kind };
}

function ctx(kind: ResourceKind, extra: Partial<WriteContext> = {}): WriteContext {
  return { kind, version: kind.versions[0], subresource: '', fieldValidation: 'Warn', warnings: [], ...extra };
}

const stored = (o: KubeObject): StoredObject => o as StoredObject;
const widgetCrd = () => YAML.parse(readFileSync(repoPath('test/fixtures/widget-crd.yaml'), 'utf8')) as CustomResourceDefinition;

function thrown(f: () => void): ApiError {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected an ApiError');
}

describe('API server strategies', () => {
  describe('Secret', () => {
    const { kind } = kinds();
    const secrets = kind('secrets');

    it('merges stringData into data as base64, drops it, and defaults the type', () => {
      const s: KubeObject = { metadata: { name: 's' }, data: { b: 'eQ==' }, stringData: { a: 'x' } };
      secrets.strategy.prepareForCreate(s, ctx(secrets));
      expect(s).to.deep.equal({ metadata: { name: 's' }, data: { b: 'eQ==', a: 'eA==' }, type: 'Opaque' });
    });

    it('refuses data that is not base64 with a 400', () => {
      const err = thrown(() => secrets.strategy.prepareForCreate({ metadata: { name: 's' }, data: { a: 'not base64!' } }, ctx(secrets)));
      expect(err.code).to.equal(400);
      expect(err.message).to.contain('data["a"] is not valid base64');
    });

    it('an immutable secret keeps its data', () => {
      const old = stored({ metadata: { name: 's' }, immutable: true, data: { a: 'eA==' }, type: 'Opaque' });
      expect(
        secrets.strategy.validateUpdate({ metadata: { name: 's' }, immutable: true, data: { a: 'eQ==' }, type: 'Opaque' }, old, ctx(secrets)),
      ).to.deep.equal([{ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' }]);
      expect(
        secrets.strategy.validateUpdate({ metadata: { name: 's' }, immutable: true, data: { a: 'eA==' }, type: 'Opaque' }, old, ctx(secrets)),
      ).to.deep.equal([]);
    });
  });

  describe('Namespace', () => {
    it('follows deletionTimestamp in its phase, labels itself with its name, and waits for its sweep', () => {
      const { kind, calls } = kinds();
      const ns = kind('namespaces');
      const o: KubeObject = { metadata: { name: 'team-a', labels: { x: 'y' } } };
      ns.strategy.prepareForCreate(o, ctx(ns));
      expect(o).to.deep.equal({ metadata: { name: 'team-a', labels: { x: 'y', 'kubernetes.io/metadata.name': 'team-a' } }, status: { phase: 'Active' } });
      expect(ns.strategy.gracefulDeletion).to.equal(true);
      ns.strategy.prepareForDeletion(o);
      expect(o.status).to.deep.equal({ phase: 'Terminating' });
      ns.strategy.afterDeletionStarted(stored(o));
      expect(calls).to.deep.equal(['terminating team-a']);
    });

    it('names are DNS labels; other kinds take DNS subdomains', () => {
      const { kind } = kinds();
      const dotted = (): KubeObject => ({ metadata: { name: 'a.b' } });
      expect(
        kind('namespaces')
          .strategy.validate(dotted(), ctx(kind('namespaces')))
          .map((c) => c.field),
      ).to.deep.equal(['metadata.name']);
      expect(kind('configmaps').strategy.validate(dotted(), ctx(kind('configmaps')))).to.deep.equal([]);
    });
  });

  describe('custom resources', () => {
    const widgets = kindFromCrd(widgetCrd());
    const widget = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}): KubeObject => ({
      apiVersion: 'example.nbswarm.io/v1',
      kind: 'Widget',
      metadata: { name: 'w' },
      spec,
      ...extra,
    });

    it('track generation; a create through the main resource drops status, an update keeps the stored one', () => {
      expect(widgets.strategy.tracksGeneration).to.equal(true);
      const created = widget({ user: 'u' }, { status: { phase: 'forged' } });
      widgets.strategy.prepareForCreate(created, ctx(widgets));
      expect(created).to.not.have.property('status');
      const updated = widget({ user: 'u' }, { status: { phase: 'forged' } });
      widgets.strategy.prepareForUpdate(updated, stored(widget({ user: 'u' }, { status: { phase: 'real' } })), ctx(widgets));
      expect(updated.status).to.deep.equal({ phase: 'real' });
      const viaStatus = widget({ user: 'u' }, { status: { phase: 'new' } });
      widgets.strategy.prepareForUpdate(viaStatus, stored(widget({ user: 'u' }, { status: { phase: 'real' } })), ctx(widgets, { subresource: 'status' }));
      expect(viaStatus.status).to.deep.equal({ phase: 'new' });
    });

    it('prune unknown fields (a warning, or a 400 under fieldValidation=Strict) and fill defaults', () => {
      const warned = ctx(widgets);
      const o = widget({ user: 'u', bogus: 1 });
      widgets.strategy.prepareForCreate(o, warned);
      expect(o.spec).to.deep.equal({ user: 'u', size: 1, color: 'red' });
      expect(warned.warnings).to.deep.equal(['unknown field "spec.bogus"']);
      const err = thrown(() => widgets.strategy.prepareForCreate(widget({ user: 'u', bogus: 1 }), ctx(widgets, { fieldValidation: 'Strict' })));
      expect(err.code).to.equal(400);
      expect(err.message).to.contain('strict decoding error: unknown field "spec.bogus"');
      const ignored = ctx(widgets, { fieldValidation: 'Ignore' });
      widgets.strategy.prepareForCreate(widget({ user: 'u', bogus: 1 }), ignored);
      expect(ignored.warnings).to.deep.equal([]);
    });

    it('validate against the version schema, naming the field', () => {
      const causes = widgets.strategy.validate(widget({ user: 'Not A Label', size: -1 }), ctx(widgets));
      expect(causes.map((c) => c.field).sort()).to.deep.equal(['spec.size', 'spec.user']);
      expect(widgets.strategy.validate(widget({}), ctx(widgets))).to.deep.include({
        reason: 'FieldValueRequired',
        message: 'Required value',
        field: 'spec.user',
      });
    });
  });

  describe('CustomResourceDefinition', () => {
    it('names what a CRD lacks', () => {
      const { kind } = kinds();
      const crds = kind('customresourcedefinitions', 'apiextensions.k8s.io');
      const causes = crds.strategy.validate({ metadata: { name: 'x' }, spec: { names: { plural: 7 }, scope: 'Galaxy', versions: [] } }, ctx(crds));
      expect(causes.map((c) => c.field)).to.deep.equal(['spec.group', 'spec.names.plural', 'spec.names.kind', 'spec.scope', 'spec.versions']);
    });

    it('is established when its names are free, not when another CRD serves them', () => {
      const free = kinds().kind('customresourcedefinitions', 'apiextensions.k8s.io');
      const crd = widgetCrd();
      free.strategy.complete(crd, undefined);
      expect(crd.status?.conditions?.map((c) => [c.type, c.status])).to.deep.equal([
        ['NamesAccepted', 'True'],
        ['Established', 'True'],
      ]);
      expect(crd.status?.acceptedNames).to.include({ plural: 'widgets', kind: 'Widget', listKind: 'WidgetList' });
      expect(crd.status?.storedVersions).to.deep.equal(['v1']);

      const other = { ...kindFromCrd(widgetCrd()), crdName: 'widgets.other' };
      const taken = kinds((g, r) => (g === 'example.nbswarm.io' && r === 'widgets' ? other : undefined)).kind(
        'customresourcedefinitions',
        'apiextensions.k8s.io',
      );
      const second = widgetCrd();
      taken.strategy.complete(second, undefined);
      expect(second.status?.conditions?.map((c) => [c.type, c.status, c.reason])).to.deep.equal([
        ['NamesAccepted', 'False', 'MultipleNamesNotAllowed'],
        ['Established', 'False', 'NotAccepted'],
      ]);
      expect(second.status?.acceptedNames).to.deep.equal({});
    });

    it('keeps its plural, and tells the server to serve it and to clean up after it', () => {
      const { kind, calls } = kinds();
      const crds = kind('customresourcedefinitions', 'apiextensions.k8s.io');
      const old = stored(widgetCrd());
      const renamed = widgetCrd();
      renamed.spec.names.plural = 'gadgets';
      expect(crds.strategy.validateUpdate(renamed, old, ctx(crds)).map((c) => c.field)).to.deep.equal(['spec.names.plural']);
      expect(crds.strategy.validateUpdate(widgetCrd(), old, ctx(crds))).to.deep.equal([]);
      crds.strategy.afterWrite(old);
      crds.strategy.afterDelete(old);
      expect(calls).to.deep.equal(['register widgets.example.nbswarm.io', 'deleted widgets.example.nbswarm.io']);
    });
  });
});
