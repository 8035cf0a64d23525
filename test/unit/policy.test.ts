import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_LAUNCHERS } from '../../src/config/launchers.js';
import { deepMerge, defaultPolicy, enabledModes, loadPolicy, PolicyError } from '../../src/config/policy.js';
import { didYouMean } from '../../src/config/did-you-mean.js';
import { repoPath } from '../../src/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'nbs-policy-'));
let n = 0;
function file(text: string): string {
  const f = join(dir, `policy-${n++}.yaml`);
  writeFileSync(f, text);
  return f;
}
function loadError(opts: Parameters<typeof loadPolicy>[0]): PolicyError {
  try {
    loadPolicy(opts);
  } catch (e) {
    expect(e).to.be.instanceOf(PolicyError);
    return e as PolicyError;
  }
  throw new Error('loadPolicy did not fail');
}

describe('policy', () => {
  it('defaults are valid and as documented', () => {
    const p = loadPolicy();
    expect(p).to.deep.equal(defaultPolicy());
    expect(p.nameTemplate).to.equal('{prefix}-{namespace}-{username}-{servername}');
    expect(p.allowedImages).to.deep.equal(['local/*', 'jupyter/*', 'quay.io/jupyter/*']);
    expect(p.defaultImage).to.equal('local/notebook:latest');
    expect(p.volumes).to.deep.equal([{ name: '{prefix}-{namespace}-{username}-home', target: '/home/jovyan/work', type: 'volume' }]);
    expect(p.hardening).to.deep.equal({ runAsUser: '1000:100', noNewPrivileges: true, capDrop: ['ALL'], pidsLimit: 1024 });
    expect(p.localImages).to.deep.equal(['local/*']);
    expect(p.publishHostIp).to.equal('127.0.0.1');
    expect(p.launchers).to.deep.equal(BUILTIN_LAUNCHERS);
  });

  it('defaultPolicy() returns a fresh copy each time', () => {
    const a = defaultPolicy();
    a.launchers.voila!.args.push('x');
    a.allowedImages.push('y');
    expect(defaultPolicy().launchers.voila!.args).to.deep.equal(BUILTIN_LAUNCHERS.voila.args);
    expect(defaultPolicy().allowedImages).to.have.length(3);
  });

  it('the annotated manifests/policy.example.yaml loads', () => {
    const p = loadPolicy({ file: repoPath('manifests/policy.example.yaml') });
    expect(p.launchers.rshiny!.direct).to.equal(true);
    expect(p.launchers.rshiny!.requiresPath).to.equal(true); // kept from the built-in entry
    expect(p.launchers.lab!.enabled).to.equal(false);
    expect(p.launchers.streamlit!.args).to.deep.equal(BUILTIN_LAUNCHERS.streamlit.args);
  });

  it('a file deep-merges over the defaults; lists replace', () => {
    const p = loadPolicy({
      file: file(`
allowedImages: ["registry.example/*"]
resources:
  limits: { memory: 16Gi }
hardening:
  pidsLimit: 256
launchers:
  dash:
    env: { EXTRA: "1" }
systemUsers:
  enabled: true
  users:
    carol: { uid: 1500, gid: 1500 }
`),
    });
    expect(p.allowedImages).to.deep.equal(['registry.example/*']);
    expect(p.resources).to.deep.equal({ defaults: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '16Gi' } });
    expect(p.hardening).to.deep.equal({ runAsUser: '1000:100', noNewPrivileges: true, capDrop: ['ALL'], pidsLimit: 256 });
    expect(p.launchers.dash!.env).to.deep.equal({ DASH_REQUESTS_PATHNAME_PREFIX: '{base_url}/', EXTRA: '1' });
    expect(p.launchers.dash!.args).to.deep.equal(BUILTIN_LAUNCHERS.dash.args);
    expect(p.systemUsers.users).to.deep.equal({ carol: { uid: 1500, gid: 1500 } });
    expect(p.systemUsers.homeTemplate).to.equal('/home/{username}');
  });

  it('NBSWARM_* env overrides the file, overrides beat both', () => {
    const f = file('defaultImage: local/from-file:1\nbackend: container\nport: 9000\n');
    const env = {
      NBSWARM_DEFAULT_IMAGE: 'local/from-env:2',
      NBSWARM_ALLOWED_IMAGES: 'local/*, registry.example/team/* ,',
      NBSWARM_BACKEND: 'service',
      NBSWARM_PULL_POLICY: 'never',
      NBSWARM_PUBLISH_HOST_IP: '::1',
      NBSWARM_NETWORK_MODE: 'host',
      NBSWARM_NETWORK: 'nbs-net',
      NBSWARM_PREFIX: 'lab',
      NBSWARM_HOST_PORT_RANGE: '30000-30100',
      NBSWARM_SYSTEM_USERS: 'true',
      NBSWARM_SYSTEM_USER_GROUPS: 'jupyterhub-users',
      NBSWARM_CONCURRENCY: '3',
      NBSWARM_PORT: '6443', // the API server's listen port: must not touch the policy
    };
    const p = loadPolicy({ file: f, env, overrides: { concurrency: 5 } });
    expect(p.defaultImage).to.equal('local/from-env:2');
    expect(p.allowedImages).to.deep.equal(['local/*', 'registry.example/team/*']);
    expect(p.backend).to.equal('service');
    expect(p.port).to.equal(9000);
    expect(loadPolicy({ env: { NBSWARM_SERVER_PORT: '8000' } }).port).to.equal(8000);
    expect(p.pullPolicy).to.equal('never');
    expect(p.publishHostIp).to.equal('::1');
    expect(p.networkMode).to.equal('host');
    expect(p.network).to.equal('nbs-net');
    expect(p.prefix).to.equal('lab');
    expect(p.hostPortRange).to.deep.equal([30000, 30100]);
    expect(p.systemUsers.enabled).to.equal(true);
    expect(p.concurrency).to.equal(5);
  });

  it('NBSWARM_POLICY names the file when no file is given', () => {
    expect(loadPolicy({ env: { NBSWARM_POLICY: file('prefix: viaenv\n') } }).prefix).to.equal('viaenv');
  });

  describe('errors name the key and where it came from', () => {
    it('unknown keys, with "did you mean"', () => {
      const f = file('defaultImgae: x\nhardening:\n  capdrop: [ALL]\n');
      const e = loadError({ file: f });
      expect(e.message).to.contain(f);
      expect(e.problems.some((p) => p.startsWith('defaultImgae: unknown key (did you mean "defaultImage"?)') && p.endsWith(`(in ${f})`))).to.equal(
        true,
        e.message,
      );
      expect(e.problems.some((p) => p.startsWith('hardening.capdrop: unknown key (did you mean "capDrop"?)'))).to.equal(true, e.message);
      const far = loadError({ file: file('zzzzzz: 1\n') });
      expect(far.problems[0]).to.match(/^zzzzzz: unknown key; known keys: prefix, nameTemplate, /);
    });
    it('wrong types and enum values', () => {
      const e = loadError({ file: file('port: "eighty"\npullPolicy: sometimes\nvolumes:\n  - name: x\n') });
      expect(e.problems.some((p) => p.startsWith('port: must be integer'))).to.equal(true, e.message);
      expect(e.problems.some((p) => p.startsWith('pullPolicy: must be one of "ifNotPresent", "always", "never"'))).to.equal(true, e.message);
      expect(e.problems.some((p) => p.startsWith("volumes[0]: must have required property 'target'"))).to.equal(true, e.message);
    });
    it('bad env values name the variable', () => {
      expect(loadError({ env: { NBSWARM_BACKEND: 'kubernetes' } }).message).to.contain(
        'backend: must be one of "auto", "service", "container" (from environment variable NBSWARM_BACKEND)',
      );
      expect(loadError({ env: { NBSWARM_CONCURRENCY: 'many' } }).message).to.contain('environment variable NBSWARM_CONCURRENCY: "many" is not a whole number');
      expect(loadError({ env: { NBSWARM_HOST_PORT_RANGE: '20000' } }).message).to.contain('NBSWARM_HOST_PORT_RANGE');
      expect(loadError({ env: { NBSWARM_PUBLISH_HOST_IP: 'localhost' } }).message).to.contain(
        'publishHostIp: "localhost" is not an IP address (from environment variable NBSWARM_PUBLISH_HOST_IP)',
      );
    });
    it('semantic checks: templates, port range, quantities, launchers, uid floor', () => {
      const e = loadError({
        file: file(`
nameTemplate: "{prefix}-{user}"
hostPortRange: [21000, 20000]
resources:
  defaults: { memory: 16Gi }
  limits: { cpu: lots }
launchers:
  rshiny: { direct: true, args: ["R", "{origin_host}"] }
  Jupyter_Lab: { args: ["x"] }
  voilla: { env: { A: "1" } }
defaultMode: bokehh
dashboards:
  git: { directory: "../elsewhere" }
  conda: { envs: ["base", "-rf"] }
systemUsers:
  users:
    root: { uid: 0, gid: 0 }
`),
      });
      const want = [
        'nameTemplate: unknown placeholder {user}',
        'nameTemplate: must contain {username}',
        'nameTemplate: must contain {servername}',
        'hostPortRange: [21000, 20000] is empty',
        'resources.limits.cpu: "lots" is not a quantity',
        'resources.defaults.memory: 16Gi is above resources.limits.memory 8Gi',
        'launchers.rshiny.args[1]: unknown placeholder {origin_host}',
        'launchers.Jupyter_Lab: a mode name must be a DNS label',
        'launchers.voilla: "voilla" is not a built-in mode, so it needs its own args (did you mean "voila"?)',
        'defaultMode: "bokehh" has no launcher',
        'dashboards.git.directory: "../elsewhere" must be relative to the home directory',
        'dashboards.conda.envs[1]: "-rf" is not a conda env name',
        'systemUsers.users.root.uid: 0 is below systemUsers.uidFloor 1000',
      ];
      for (const w of want)
        expect(
          e.problems.some((p) => p.startsWith(w)),
          `${w}\n${e.message}`,
        ).to.equal(true);
    });
    it('unreadable and non-YAML files', () => {
      expect(loadError({ file: join(dir, 'missing.yaml') }).message).to.match(/missing\.yaml: cannot read it/);
      expect(loadError({ file: file('a: [1,\n') }).message).to.contain('not valid YAML');
      expect(loadError({ file: file('- a\n- b\n') }).message).to.contain('the top level must be a mapping');
    });
  });

  describe("presentation types the policy adds (cdsdashboards' extra_presentation_launchers)", () => {
    it('a new mode is merged next to the built-ins, may be the default mode and is validated like them', () => {
      const p = loadPolicy({
        file: file(`
defaultMode: shinyr
launchers:
  shinyr:
    requiresPath: true
    args: ["--destport=0", "R", "{-}e", "shiny::runApp('{presentation_path}', port={port})"]
  streamlit:
    env: { STREAMLIT_ENV_VAR: TEST }
`),
      });
      expect(p.defaultMode).to.equal('shinyr');
      expect(p.launchers.shinyr!.args[1]).to.equal('R');
      // Merged key by key: only streamlit's env changed (cdsdashboards' own example).
      expect(p.launchers.streamlit!.env).to.deep.equal({ STREAMLIT_ENV_VAR: 'TEST' });
      expect(p.launchers.streamlit!.args).to.deep.equal(BUILTIN_LAUNCHERS.streamlit.args);
      expect(enabledModes(p)).to.include.members(['shinyr', 'voila', 'custom']);
      const bad = loadError({ file: file('launchers:\n  mine: { args: ["--destport=0", "app", "{bogus}"] }\n') });
      expect(bad.problems[0]).to.match(/^launchers\.mine\.args\[2\]: unknown placeholder \{bogus\}/);
    });
    it('enabledModes leaves out disabled modes', () => {
      const p = loadPolicy({ file: file('launchers:\n  lab: { enabled: false }\n') });
      expect(enabledModes(p)).not.to.include('lab');
      expect(enabledModes(p)).to.include('notebook');
    });
  });

  describe("dashboards (cdsdashboards' settings)", () => {
    it("defaults: git on for any https/ssh URL into work/, no conda envs, the proxy's own defaults, no debug", () => {
      expect(defaultPolicy().dashboards).to.deep.equal({
        git: { enabled: true, allowedUrls: [], directory: 'work' },
        conda: { envs: [], allowCustom: false },
        proxy: { requestTimeout: 0, readyTimeout: 0, forceAlive: true, lastActivityInterval: 300, websocketMaxMessageSize: 0 },
        debug: false,
      });
    });
    it('merges key by key and refuses unknown keys and negative timeouts', () => {
      const p = loadPolicy({ file: file('dashboards:\n  proxy: { readyTimeout: 60 }\n  conda: { envs: [py39] }\n') });
      expect(p.dashboards.proxy.readyTimeout).to.equal(60);
      expect(p.dashboards.proxy.lastActivityInterval).to.equal(300);
      expect(p.dashboards.conda).to.deep.equal({ envs: ['py39'], allowCustom: false });
      expect(loadError({ file: file('dashboards:\n  proxy: { readyTimout: 60 }\n') }).message).to.contain(
        'dashboards.proxy.readyTimout: unknown key (did you mean "readyTimeout"?)',
      );
      expect(loadError({ file: file('dashboards:\n  proxy: { requestTimeout: -1 }\n') }).message).to.contain('dashboards.proxy.requestTimeout: must be >= 0');
    });
  });

  it('didYouMean only suggests close matches', () => {
    expect(didYouMean('allowedImage', ['allowedImages', 'defaultImage'])).to.equal('allowedImages');
    expect(didYouMean('zzz', ['allowedImages', 'defaultImage'])).to.equal(undefined);
  });

  it('deepMerge: objects by key, lists and scalars replace, undefined ignored', () => {
    expect(deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, d: undefined })).to.deep.equal({ a: { b: 1, c: [3] }, d: 1 });
  });
});
