import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { notebookServerCRD } from '../../src/api/crd.js';
import { CRD_FILE, renderCrdYaml } from '../../src/api/gen-crd.js';
import { notebookServerSchema, walkSchema, type JSONSchemaProps } from '../../src/api/schema.js';
import { notebookServerValidator } from '../../src/api/validate.js';
import { MODES } from '../../src/api/types.js';
import { crdForModes, loadCrd } from '../../src/controller/crd.js';
import { repoPath } from '../../src/paths.js';

const genCrdJs = fileURLToPath(new URL('../../src/api/gen-crd.js', import.meta.url));

function examples(): Array<{ file: string; obj: any }> {
  const dir = repoPath('manifests/examples');
  const out: Array<{ file: string; obj: any }> = [];
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.yaml'))
    .sort()) {
    for (const doc of YAML.parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const obj = doc.toJS();
      if (obj?.kind === 'NotebookServer') out.push({ file: f, obj });
    }
  }
  return out;
}

function nbs(spec: Record<string, unknown>): any {
  return { apiVersion: 'nbswarm.io/v1alpha1', kind: 'NotebookServer', metadata: { name: 'x' }, spec };
}

describe('NotebookServer CRD', () => {
  it('the committed crds/notebookserver.yaml is exactly what gen-crd writes', () => {
    const committed = readFileSync(repoPath(CRD_FILE), 'utf8');
    expect(committed).to.equal(renderCrdYaml());
    expect(YAML.parse(committed)).to.deep.equal(notebookServerCRD());
    expect(committed.startsWith('# GENERATED FILE')).to.equal(true);
  });

  it('gen-crd --check passes on the committed file and fails on a stale one', () => {
    execFileSync(process.execPath, [genCrdJs, '--check'], { stdio: 'pipe' });
    const stale = join(mkdtempSync(join(tmpdir(), 'nbs-crd-')), 'crd.yaml');
    writeFileSync(stale, renderCrdYaml().replace('shortNames:', 'shortNames: # edited'));
    const r = spawnSync(process.execPath, [genCrdJs, '--check', '--out', stale], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('out of date');
    const w = spawnSync(process.execPath, [genCrdJs, '--out', stale], { encoding: 'utf8' });
    expect(w.status).to.equal(0);
    expect(readFileSync(stale, 'utf8')).to.equal(renderCrdYaml());
  });

  it('is structural: a type (or int-or-string) and a description on every node, no $ref', () => {
    const missing: string[] = [];
    walkSchema(notebookServerSchema, (path, node: JSONSchemaProps) => {
      if (!node.description) missing.push(`${path}: description`);
      if (!node.type && !node['x-kubernetes-int-or-string']) missing.push(`${path}: type`);
    });
    expect(missing).to.deep.equal([]);
    expect(JSON.stringify(notebookServerSchema)).not.to.contain('$ref');
    let count = 0;
    walkSchema(notebookServerSchema, () => count++);
    expect(count).to.be.greaterThan(50);
  });

  it('has the names (nbs), the status subresource and the printer columns USER SERVER MODE PHASE URL AGE', () => {
    const crd = notebookServerCRD();
    expect(crd.metadata.name).to.equal('notebookservers.nbswarm.io');
    expect(crd.spec.names.shortNames).to.deep.equal(['nbs']);
    const v = crd.spec.versions[0]!;
    expect(v.subresources).to.deep.equal({ status: {} });
    const cols = v.additionalPrinterColumns.filter((c) => !c.priority).map((c) => [c.name.toUpperCase(), c.jsonPath]);
    expect(cols).to.deep.equal([
      ['USER', '.spec.user'],
      ['SERVER', '.spec.servername'],
      ['MODE', '.status.mode'],
      ['PHASE', '.status.phase'],
      ['URL', '.status.endpoint.hostUrl'],
      ['AGE', '.metadata.creationTimestamp'],
    ]);
    const spec = v.schema.openAPIV3Schema.properties!.spec!;
    expect(spec.required).to.deep.equal(['user']);
    // Any DNS label: the policy may add modes; its description names the built-in ones.
    expect(spec.properties!.mode!.enum).to.equal(undefined);
    expect(spec.properties!.mode!.pattern).to.equal('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$');
    for (const m of ['notebook', 'lab', 'voila', 'streamlit', 'dash', 'panel', 'bokeh', 'rshiny', 'custom'])
      expect(spec.properties!.mode!.description).to.contain(m);
    const cond = v.schema.openAPIV3Schema.properties!.status!.properties!.conditions!;
    expect(Object.keys(cond.items!.properties!)).to.include.members(['type', 'status', 'reason', 'message', 'lastTransitionTime']);
    expect(cond['x-kubernetes-list-map-keys']).to.deep.equal(['type']);
  });

  it("the installed CRD names the policy's modes in spec.mode's description when the policy adds some", () => {
    const file = loadCrd();
    expect(crdForModes(file, [...MODES])).to.equal(file);
    const withShiny = crdForModes(file, [...MODES, 'shinyr']);
    const desc = withShiny.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!.properties!.mode!.description!;
    expect(desc).to.match(/This operator's policy serves the modes: bokeh, custom, dash, lab, notebook, panel, rshiny, shinyr, streamlit, voila\.$/);
    expect(file.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!.properties!.mode!.description).not.to.contain('shinyr');
  });

  it('ajv compiles the schema and accepts every example in manifests/examples', () => {
    const validate = notebookServerValidator();
    const ex = examples();
    expect(ex.map((e) => e.file)).to.include.members([
      'notebook.yaml',
      'named-server.yaml',
      'voila-dashboard.yaml',
      'rshiny-dashboard.yaml',
      'custom-busybox.yaml',
      'source-dashboard.yaml',
      'system-user.yaml',
      'with-secret-env.yaml',
    ]);
    for (const { file, obj } of ex) {
      const ok = validate(obj);
      expect(ok, `${file}: ${JSON.stringify(validate.errors)}`).to.equal(true);
    }
  });

  it('fills the defaults: servername "", stopped false, systemUser false; mode stays unset (the policy\'s defaultMode applies)', () => {
    const validate = notebookServerValidator({ useDefaults: true });
    const obj = nbs({ user: 'alice' });
    expect(validate(obj)).to.equal(true);
    expect(obj.spec).to.deep.equal({ user: 'alice', servername: '', stopped: false, systemUser: false });
  });

  const bad: Array<[string, any, string]> = [
    ['no user', nbs({ mode: 'notebook' }), '/spec'],
    ['no spec', { apiVersion: 'nbswarm.io/v1alpha1', kind: 'NotebookServer', metadata: {} }, ''],
    ['mode that is not a DNS label', nbs({ user: 'a', mode: 'Jupyter_Lab' }), '/spec/mode'],
    ['git without url', nbs({ user: 'a', git: { branch: 'main' } }), '/spec/git'],
    ['git branch read as an option', nbs({ user: 'a', git: { url: 'https://h/r.git', branch: '--upload-pack=x' } }), '/spec/git/branch'],
    ['git folder escaping home', nbs({ user: 'a', git: { url: 'https://h/r.git', folder: '../x' } }), '/spec/git/folder'],
    ['conda env read as an option', nbs({ user: 'a', app: { condaEnv: '-n' } }), '/spec/app/condaEnv'],
    ['viewer with a slash', nbs({ user: 'a', viewers: { users: ['a/b'] } }), '/spec/viewers/users/0'],
    ['user with a slash', nbs({ user: 'a/b' }), '/spec/user'],
    ['user with a newline', nbs({ user: 'alice\nbob' }), '/spec/user'],
    ['user with a C1 control character', nbs({ user: 'ali\u0085ce' }), '/spec/user'],
    ['user longer than JupyterHub allows', nbs({ user: 'a'.repeat(256) }), '/spec/user'],
    ['servername with a slash', nbs({ user: 'a', servername: 'x/y' }), '/spec/servername'],
    ['servername with a tab', nbs({ user: 'a', servername: 'x\ty' }), '/spec/servername'],
    ['app.path escaping home', nbs({ user: 'a', mode: 'voila', app: { path: 'work/../../etc' } }), '/spec/app/path'],
    ['absolute app.path', nbs({ user: 'a', mode: 'voila', app: { path: '/etc/passwd' } }), '/spec/app/path'],
    ['env name with =', nbs({ user: 'a', env: [{ name: 'A=B', value: '1' }] }), '/spec/env/0/name'],
    ['secretKeyRef without key', nbs({ user: 'a', env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's' } } }] }), '/spec/env/0/valueFrom/secretKeyRef'],
    ['memory not a quantity', nbs({ user: 'a', resources: { memory: 'lots' } }), '/spec/resources/memory'],
    ['stopped not a boolean', nbs({ user: 'a', stopped: 'yes' }), '/spec/stopped'],
    ['bad phase', { ...nbs({ user: 'a' }), status: { phase: 'Sleeping' } }, '/status/phase'],
    ['condition without status', { ...nbs({ user: 'a' }), status: { conditions: [{ type: 'Ready' }] } }, '/status/conditions/0'],
  ];
  for (const [what, obj, path] of bad) {
    it(`rejects ${what} at ${path || '(root)'}`, () => {
      const validate = notebookServerValidator();
      expect(validate(obj)).to.equal(false);
      expect(validate.errors!.map((e) => e.instancePath)).to.include(path);
    });
  }

  it('accepts the allowed edge cases: int quantities, every name JupyterHub accepts, dotted paths, empty servername', () => {
    const validate = notebookServerValidator();
    for (const spec of [
      { user: 'alice@example.com', servername: 'My.Server_1', resources: { cpu: 2, memory: '1.5Gi' } },
      { user: 'a', mode: 'voila', app: { path: 'work/.hidden/..dots/app.ipynb' } },
      { user: 'a', servername: '', app: { path: 'folder/' } },
      // Names JupyterHub accepts: spaces, punctuation, non-ASCII, a leading dot, 255 characters.
      { user: 'zoë', servername: 'My Dash!' },
      { user: 'ann lee', servername: 'ümlaut – ✓' },
      { user: '.alice.', servername: '-' },
      { user: 'é'.repeat(255), servername: 'x'.repeat(255) },
    ]) {
      expect(validate(nbs(spec)), JSON.stringify(validate.errors)).to.equal(true);
    }
  });
});
