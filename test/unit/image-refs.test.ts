import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import { defaultPolicy } from '../../src/config/policy.js';
import { imageMatchesGlobs, InvalidImageReference, normaliseImageGlob, normaliseReference, sameReference } from '../../src/config/image-refs.js';
import { renderDesired } from '../../src/controller/desired.js';
import { imageAllowed, pullPolicyFor } from '../../src/controller/image-policy.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references (normalised as Docker reads them)', () => {
  it('normalises references to registry/path:tag', () => {
    expect(normaliseReference('local/x')).to.equal('docker.io/local/x:latest');
    expect(normaliseReference('busybox')).to.equal('docker.io/library/busybox:latest');
    expect(normaliseReference('index.docker.io/library/busybox:1')).to.equal('docker.io/library/busybox:1');
    expect(normaliseReference('localhost:5000/a/b')).to.equal('localhost:5000/a/b:latest');
    expect(normaliseReference(`quay.io/jupyter/base@${DIGEST}`)).to.equal(`quay.io/jupyter/base@${DIGEST}`);
    expect(() => normaliseReference('Local/X')).to.throw(InvalidImageReference, /must be lowercase/);
    expect(() => normaliseReference('quay.io/jupyter/base@sha256:abc')).to.throw(InvalidImageReference);
  });

  it('normalises globs by the same rules; a glob starting with a wildcard is kept as written', () => {
    expect(normaliseImageGlob('local/*')).to.equal('docker.io/local/*');
    expect(normaliseImageGlob('busybox')).to.equal('docker.io/library/busybox:latest');
    expect(normaliseImageGlob('busybox*')).to.equal('docker.io/library/busybox*');
    expect(normaliseImageGlob('quay.io/jupyter/*')).to.equal('quay.io/jupyter/*');
    expect(normaliseImageGlob('index.docker.io/jupyter/*')).to.equal('docker.io/jupyter/*');
    expect(normaliseImageGlob('registry.local:5000/team/nb')).to.equal('registry.local:5000/team/nb:latest');
    expect(normaliseImageGlob('**')).to.equal('**');
    expect(normaliseImageGlob('*/jupyter/*')).to.equal('*/jupyter/*');
  });

  it('every spelling of one image matches the same globs, and nothing else does', () => {
    const globs = ['local/*', 'quay.io/jupyter/*'];
    for (const ref of ['local/x', 'local/x:latest', 'docker.io/local/x', 'index.docker.io/local/x:1', `local/x@${DIGEST}`]) {
      expect(imageMatchesGlobs(ref, globs), ref).to.equal(true);
    }
    for (const ref of ['local/sub/dir:1', 'evil.example/local/x', 'localhost/local/x', 'quay.io/jupyterx/scipy', 'jupyter/base', 'docker.io/library/local']) {
      expect(imageMatchesGlobs(ref, globs), ref).to.equal(false);
    }
    expect(imageMatchesGlobs('anything.example/a/b:c', ['**'])).to.equal(true);
    expect(imageMatchesGlobs('quay.io/jupyter/x:1', ['*/jupyter/*'])).to.equal(true);
    expect(sameReference('busybox', 'docker.io/library/busybox:latest')).to.equal(true);
    expect(sameReference('busybox:1', 'busybox')).to.equal(false);
  });

  it('the default policy: local/* in any spelling is allowed and never pulled; Jupyter stacks are pulled', () => {
    const p = defaultPolicy();
    for (const ref of ['local/x', 'docker.io/local/x:2']) {
      expect(imageAllowed(ref, p), ref).to.equal(true);
      expect(pullPolicyFor(ref, p), ref).to.equal('never');
    }
    expect(pullPolicyFor('jupyter/base-notebook:2024', p)).to.equal('ifNotPresent');
    expect(pullPolicyFor('quay.io/jupyter/base-notebook', { ...p, pullPolicy: 'always' })).to.equal('always');
    expect(imageAllowed('docker.io/library/local:1', p)).to.equal(false);
  });

  it('renderDesired: a local image is never pulled; an invalid reference fails on spec.image', () => {
    const obj = (image: string): NotebookServer => ({
      apiVersion: 'nbswarm.io/v1alpha1',
      kind: 'NotebookServer',
      metadata: { name: 'n', namespace: 'default', uid: 'u1', generation: 1 },
      spec: { user: 'alice', image },
    });
    const p = { ...defaultPolicy(), pullPolicy: 'always' as const };
    const r = renderDesired(obj('docker.io/local/x:1'), p, { secrets: () => undefined });
    expect(r.ok && r.desired.pullPolicy).to.equal('never');
    const bad = renderDesired(obj('Local/X'), p, { secrets: () => undefined });
    expect(bad.ok).to.equal(false);
    if (!bad.ok) expect([bad.field, bad.reason]).to.deep.equal(['spec.image', 'InvalidImage']);
  });
});
