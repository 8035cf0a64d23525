import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import YAML from 'yaml';
import { LABELS } from '../../src/api/names.js';
import type { NotebookServer, NotebookServerSpec } from '../../src/api/types.js';
import type { DesiredServer, ObservedServer } from '../../src/backends/types.js';
import { defaultPolicy, loadPolicy } from '../../src/config/policy.js';
import { repoPath } from '../../src/paths.js';
import type { Policy } from '../../src/config/types.js';
import { fallbackDockerName, renderDesired, type RenderContext, type RenderResult } from '../../src/controller/desired.js';
import { endpointFor } from '../../src/controller/endpoint.js';
import { imageAllowed } from '../../src/controller/image-policy.js';
import { canonicalJson } from '../../src/util/json.js';

function nbs(spec: Partial<NotebookServerSpec>, meta: Partial<NotebookServer['metadata']> = {}): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'alice', namespace: 'default', uid: '0b7c3a52-1111-2222-3333-444455556666', generation: 1, ...meta },
    spec: { user: 'alice', ...spec },
  };
}
const noSecrets: RenderContext = { secrets: () => undefined };

function ok(r: RenderResult): DesiredServer {
  if (!r.ok) throw new Error(`expected ok, got ${r.field}: ${r.message}`);
  return r.desired;
}
function failed(r: RenderResult): { field: string; reason: string; message: string } {
  if (r.ok) throw new Error('expected a refusal');
  return r;
}

describe('renderDesired', () => {
  const policy = defaultPolicy();

  it("renders alice's default server from the default policy", () => {
    const d = ok(renderDesired(nbs({}), policy, noSecrets));
    expect(d.dockerName).to.equal('nbs-alice');
    expect(d.image).to.equal('local/notebook:latest');
    // local/* images are built on this host: never pulled (Docker Hub would serve "local/notebook").
    expect(d.pullPolicy).to.equal('never');
    expect(d.command).to.deep.equal(['start.sh', 'jupyter', 'notebook', '--ip=0.0.0.0', '--port=8888', '--no-browser']);
    expect(d.env).to.deep.equal({});
    expect(d.port).to.equal(8888);
    expect(d.networkMode).to.equal('bridge');
    expect(d.publishHostIp).to.equal('127.0.0.1');
    expect(d.workdir).to.equal('/home/jovyan');
    expect(d.user).to.equal('1000:100');
    expect(d.resources).to.deep.equal({ nanoCpus: 1e9, memoryBytes: 2 * 2 ** 30 });
    expect(d.hardening).to.deep.equal({ noNewPrivileges: true, capDrop: ['ALL'], pidsLimit: 1024 });
    expect(d.stopped).to.equal(false);
    expect(d.volumes).to.deep.equal([
      {
        source: 'nbs-alice-home',
        target: '/home/jovyan/work',
        type: 'volume',
        readOnly: undefined,
        labels: { [LABELS.managedBy]: 'nbswarm', [LABELS.volume]: 'user', [LABELS.namespace]: 'default', [LABELS.user]: 'alice' },
      },
    ]);
    expect(d.labels).to.deep.equal({
      [LABELS.managedBy]: 'nbswarm',
      [LABELS.uid]: '0b7c3a52-1111-2222-3333-444455556666',
      [LABELS.namespace]: 'default',
      [LABELS.name]: 'alice',
      [LABELS.user]: 'alice',
      [LABELS.servername]: '',
      [LABELS.generation]: '1',
      [LABELS.image]: 'local/notebook:latest',
      [LABELS.port]: '8888',
      [LABELS.hostIp]: '127.0.0.1',
      [LABELS.mode]: 'notebook',
      [LABELS.specHash]: d.specHash,
    });
    expect(d.specHash).to.match(/^[0-9a-f]{64}$/);
  });

  it("a named server gets its own Docker name and shares the user's volume", () => {
    const d = ok(renderDesired(nbs({ servername: 'Dash1' }, { name: 'alice-dash1' }), policy, noSecrets));
    expect(d.dockerName).to.equal('nbs-alice--44ash1');
    expect(d.volumes[0]!.source).to.equal('nbs-alice-home');
  });

  it('tenants: names and volumes carry the namespace (not for "default"), so alice in two namespaces shares nothing', () => {
    const a = ok(renderDesired(nbs({}, { namespace: 'tenant-a', uid: 'uid-a' }), policy, noSecrets));
    const b = ok(renderDesired(nbs({}, { namespace: 'tenant-b', uid: 'uid-b' }), policy, noSecrets));
    expect([a.dockerName, b.dockerName]).to.deep.equal(['nbs-tenant-a-alice', 'nbs-tenant-b-alice']);
    expect([a.volumes[0]!.source, b.volumes[0]!.source]).to.deep.equal(['nbs-tenant-a-alice-home', 'nbs-tenant-b-alice-home']);
    expect(a.volumes[0]!.labels).to.include({ [LABELS.namespace]: 'tenant-a', [LABELS.user]: 'alice' });
  });

  it('an existing object keeps the name and volumes it was created with (upgrade: no rename, no new home)', () => {
    const d = ok(
      renderDesired(nbs({}, { namespace: 'tenant-a' }), policy, {
        ...noSecrets,
        keep: { name: 'nbs-alice', volumes: { '/home/jovyan/work': 'nbs-alice-home' } },
      }),
    );
    expect(d.dockerName).to.equal('nbs-alice');
    expect(d.volumes[0]!.source).to.equal('nbs-alice-home');
    const fresh = ok(renderDesired(nbs({}, { namespace: 'tenant-a' }), policy, noSecrets));
    expect(fresh.specHash).not.to.equal(d.specHash);
  });

  it('a name held by someone else: the fallback adds a hash of the UID, stable and within 63 characters', () => {
    expect(fallbackDockerName('nbs-alice', 'uid-1')).to.match(/^nbs-alice-[0-9a-f]{8}$/);
    expect(fallbackDockerName('nbs-alice', 'uid-1')).to.equal(fallbackDockerName('nbs-alice', 'uid-1'));
    expect(fallbackDockerName('nbs-alice', 'uid-2')).not.to.equal(fallbackDockerName('nbs-alice', 'uid-1'));
    expect(fallbackDockerName('n'.repeat(63), 'uid-1')).to.have.length.at.most(63);
  });

  it('long names are cut to 63 characters with a suffix from the UID', () => {
    const d = ok(renderDesired(nbs({ user: 'a'.repeat(63), servername: 'b'.repeat(63) }), policy, noSecrets));
    expect(d.dockerName).to.have.length(63);
    expect(d.dockerName).to.match(/-[0-9a-f]{8}$/);
  });

  describe('image allowlist', () => {
    it('refuses an image outside the allowlist, naming the image and the policy key', () => {
      const r = failed(renderDesired(nbs({ image: 'evil/miner:latest' }), policy, noSecrets));
      expect(r.field).to.equal('spec.image');
      expect(r.reason).to.equal('ImageNotAllowed');
      expect(r.message).to.contain('"evil/miner:latest"').and.to.contain('allowedImages').and.to.contain('"local/*"');
    });
    it('matches globs on the given and the normalised Docker Hub forms', () => {
      expect(imageAllowed('jupyter/base-notebook:2024', policy)).to.equal(true);
      expect(imageAllowed('docker.io/jupyter/base-notebook', policy)).to.equal(true);
      expect(imageAllowed(`quay.io/jupyter/scipy-notebook@sha256:${'c'.repeat(64)}`, policy)).to.equal(true);
      expect(imageAllowed('quay.io/jupyterx/scipy', policy)).to.equal(false);
      expect(imageAllowed('local/sub/dir:1', policy)).to.equal(false);
    });
    it('an empty allowlist allows only the default image', () => {
      const p = { ...policy, allowedImages: [] };
      expect(imageAllowed('local/notebook:latest', p)).to.equal(true);
      const r = failed(renderDesired(nbs({ image: 'local/other:1' }), p, noSecrets));
      expect(r.message).to.contain('only defaultImage "local/notebook:latest"');
    });
    it('a built source image replaces spec.image and is not allowlisted', () => {
      const d = ok(
        renderDesired(
          nbs({ image: 'local/notebook:latest', source: { server: 'x' } }),
          { ...policy, allowedImages: [] },
          { ...noSecrets, sourceImage: 'nbswarm-built:x-1' },
        ),
      );
      expect(d.image).to.equal('nbswarm-built:x-1');
      // The label names what the object runs (the backends used to overwrite the requested name with it).
      expect(d.labels[LABELS.image]).to.equal('nbswarm-built:x-1');
    });
  });

  describe('modes', () => {
    it('an unknown or disabled mode fails on spec.mode', () => {
      const p: Policy = { ...policy, launchers: { ...policy.launchers } };
      delete p.launchers.bokeh;
      p.launchers.lab = { ...p.launchers.lab!, enabled: false };
      const unknown = failed(renderDesired(nbs({ mode: 'bokeh' }), p, noSecrets));
      expect([unknown.field, unknown.reason]).to.deep.equal(['spec.mode', 'UnknownMode']);
      const disabled = failed(renderDesired(nbs({ mode: 'lab' }), p, noSecrets));
      expect([disabled.field, disabled.reason]).to.deep.equal(['spec.mode', 'ModeDisabled']);
      expect(disabled.message).to.contain('launchers.lab.enabled: false');
    });
    it('a dashboard mode needs spec.app.path (voila excepted: it serves the folder), which must stay inside the home', () => {
      expect(failed(renderDesired(nbs({ mode: 'streamlit' }), policy, noSecrets))).to.deep.include({ field: 'spec.app.path', reason: 'AppPathRequired' });
      expect(ok(renderDesired(nbs({ mode: 'voila' }), policy, noSecrets)).command).to.include('--presentation-path=/home/jovyan');
      expect(failed(renderDesired(nbs({ mode: 'voila', app: { path: 'work/../../etc/passwd' } }), policy, noSecrets))).to.deep.include({
        field: 'spec.app.path',
        reason: 'InvalidAppPath',
      });
      expect(failed(renderDesired(nbs({ mode: 'voila', app: { path: '/etc/passwd' } }), policy, noSecrets)).field).to.equal('spec.app.path');
    });
    it('a voila dashboard runs through jhsingle-native-proxy with the absolute presentation path', () => {
      const d = ok(renderDesired(nbs({ mode: 'voila', app: { path: 'work/Presentation.ipynb' } }), policy, noSecrets));
      expect(d.command.slice(0, 4)).to.deep.equal(['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main']);
      expect(d.command.slice(-4)).to.deep.equal(['--presentation-path=/home/jovyan/work/Presentation.ipynb', '--ip=0.0.0.0', '--port=8888', '--authtype=none']);
    });
    it('custom runs spec.command with {port} filled; without a command it fails on spec.command', () => {
      const d = ok(
        renderDesired(nbs({ image: 'local/busybox:test', mode: 'custom', command: ['httpd', '-f', '-p', '{port}', '-h', '/www'] }), policy, noSecrets),
      );
      expect(d.command).to.deep.equal(['httpd', '-f', '-p', '8888', '-h', '/www']);
      expect(d.workdir).to.equal(undefined);
      expect(failed(renderDesired(nbs({ mode: 'custom' }), policy, noSecrets))).to.deep.include({ field: 'spec.command', reason: 'CommandRequired' });
    });
    it('spec.command outside custom needs allowCommandOverride', () => {
      const spec = { mode: 'notebook' as const, command: ['jupyter', 'notebook', '--port={port}'] };
      expect(failed(renderDesired(nbs(spec), policy, noSecrets))).to.deep.include({ field: 'spec.command', reason: 'CommandNotAllowed' });
      const d = ok(renderDesired(nbs(spec), { ...policy, allowCommandOverride: true }, noSecrets));
      expect(d.command).to.deep.equal(['jupyter', 'notebook', '--port=8888']);
    });
  });

  describe('dashboards: policy modes, templates, conda, viewers, debug and proxy settings', () => {
    const shinyr = { requiresPath: true, args: ['--destport=0', 'R', '{-}e', "shiny::runApp('{presentation_path}', port={port})"] };
    it("a mode the policy adds runs its launcher; an unknown one fails listing the policy's modes", () => {
      const p: Policy = { ...policy, launchers: { ...policy.launchers, shinyr }, proxyCommand: ['start.sh', 'nbswarm-dashboard-proxy'] };
      const d = ok(renderDesired(nbs({ mode: 'shinyr', app: { path: 'work/app' } }), p, noSecrets));
      expect(d.command).to.deep.equal([
        'start.sh',
        'nbswarm-dashboard-proxy',
        ...shinyr.args,
        '--presentation-path=/home/jovyan/work/app',
        '--ip=0.0.0.0',
        '--port=8888',
        '--authtype=none',
      ]);
      expect(d.labels[LABELS.mode]).to.equal('shinyr');
      const unknown = failed(renderDesired(nbs({ mode: 'gradio' }), p, noSecrets));
      expect(unknown).to.deep.include({ field: 'spec.mode', reason: 'UnknownMode' });
      expect(unknown.message).to.equal(
        'mode "gradio" has no launcher in the operator policy; its modes: bokeh, custom, dash, lab, notebook, panel, rshiny, shinyr, streamlit, voila',
      );
    });
    it("spec.app.template: voila gets {--}template=NAME last; the launcher's default otherwise; other modes refuse it", () => {
      const d = ok(renderDesired(nbs({ mode: 'voila', app: { path: 'work/a.ipynb', template: 'gridstack' } }), policy, noSecrets));
      expect(d.command.at(-1)).to.equal('{--}template=gridstack');
      const p: Policy = { ...policy, launchers: { ...policy.launchers, voila: { ...policy.launchers.voila!, template: 'material' } } };
      expect(ok(renderDesired(nbs({ mode: 'voila' }), p, noSecrets)).command.at(-1)).to.equal('{--}template=material');
      expect(ok(renderDesired(nbs({ mode: 'voila' }), policy, noSecrets)).command.some((a) => a.includes('template'))).to.equal(false);
      expect(failed(renderDesired(nbs({ mode: 'streamlit', app: { path: 'a.py', template: 'x' } }), policy, noSecrets))).to.deep.include({
        field: 'spec.app.template',
        reason: 'TemplateNotSupported',
      });
    });
    it('spec.app.condaEnv: offered envs (or allowCustom) only; proxied → --conda-env, direct → the start prelude', () => {
      const refused = failed(renderDesired(nbs({ mode: 'streamlit', app: { path: 'a.py', condaEnv: 'py39' } }), policy, noSecrets));
      expect(refused).to.deep.include({ field: 'spec.app.condaEnv', reason: 'CondaEnvNotAllowed' });
      expect(refused.message).to.contain('dashboards.conda.envs: none');
      const p: Policy = { ...policy, dashboards: { ...policy.dashboards, conda: { envs: ['py39'], allowCustom: false } } };
      const proxied = ok(renderDesired(nbs({ mode: 'streamlit', app: { path: 'a.py', condaEnv: 'py39' } }), p, noSecrets));
      expect(proxied.command).to.include('--conda-env=py39');
      expect(proxied.command[0]).to.equal('start.sh');
      const direct = ok(
        renderDesired(
          nbs({ mode: 'custom', command: ['app', '{port}'], app: { condaEnv: 'mine' } }),
          { ...p, dashboards: { ...p.dashboards, conda: { envs: [], allowCustom: true } } },
          noSecrets,
        ),
      );
      expect(direct.command.slice(0, 2)).to.deep.equal(['sh', '-c']);
      expect(direct.command.slice(3)).to.deep.equal(['nbswarm-start', 'app', '8888']);
      expect(direct.env.NBSWARM_CONDA_ENV).to.equal('mine');
    });
    it('dashboards.debug and dashboards.proxy reach proxied command lines', () => {
      const p: Policy = {
        ...policy,
        dashboards: { ...policy.dashboards, debug: true, proxy: { ...policy.dashboards.proxy, readyTimeout: 90, forceAlive: false } },
      };
      const d = ok(renderDesired(nbs({ mode: 'dash', app: { path: 'app.py' } }), p, noSecrets));
      expect(d.command.slice(-5)).to.deep.equal(['--authtype=none', '{--}debug', '--debug', '--ready-timeout=90', '--no-force-alive']);
    });
    it('spec.viewers needs a launcher with an OAuth check in front of the app', () => {
      const viewers = { users: ['bob'] };
      expect(ok(renderDesired(nbs({ mode: 'voila', viewers }), policy, noSecrets)).command[0]).to.equal('start.sh');
      expect(ok(renderDesired(nbs({ mode: 'notebook', viewers }), policy, noSecrets)).command[0]).to.equal('start.sh');
      const direct = failed(renderDesired(nbs({ mode: 'custom', command: ['httpd'], viewers: { allUsers: true } }), policy, noSecrets));
      expect(direct).to.deep.include({ field: 'spec.viewers', reason: 'ViewersNotEnforced' });
      expect(ok(renderDesired(nbs({ mode: 'custom', command: ['httpd'], viewers: { users: [], groups: [] } }), policy, noSecrets)).command).to.deep.equal([
        'httpd',
      ]);
    });
  });

  describe('git sources (spec.git)', () => {
    const url = 'https://git.example.org/team/dash.git';
    const creds = (name: string) => (name === 'git-creds' ? { username: 'alice', password: 'tok3n', 'ca.crt': 'PEM' } : undefined);
    it('clones into work/<folder named like cdsdashboards> before the launcher; the presentation path is relative to the clone', () => {
      const d = ok(renderDesired(nbs({ mode: 'voila', app: { path: 'notebooks/Intro.ipynb' }, git: { url, branch: 'main' } }), policy, noSecrets));
      expect(d.command.slice(0, 2)).to.deep.equal(['sh', '-c']);
      expect(d.command[3]).to.equal('nbswarm-start');
      expect(d.command.slice(4, 8)).to.deep.equal(['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main']);
      expect(d.command).to.include('--presentation-path=/home/jovyan/work/git-example-org-team-dash-git/notebooks/Intro.ipynb');
      expect(d.env).to.deep.equal({
        NBSWARM_GIT_URL: url,
        NBSWARM_GIT_DIR: '/home/jovyan/work/git-example-org-team-dash-git',
        NBSWARM_GIT_FOLDER: 'work/git-example-org-team-dash-git',
        NBSWARM_GIT_BRANCH: 'main',
      });
      expect(d.secretFiles).to.equal(undefined);
      const folder = ok(renderDesired(nbs({ mode: 'voila', git: { url, folder: 'work/dash' } }), policy, noSecrets));
      expect(folder.env.NBSWARM_GIT_DIR).to.equal('/home/jovyan/work/dash');
      expect(folder.command).to.include('--presentation-path=/home/jovyan/work/dash');
    });
    it("credentials become files, never env; the https helper is scoped to the repository's origin", () => {
      const d = ok(renderDesired(nbs({ mode: 'voila', git: { url, secretName: 'git-creds' } }), policy, { secrets: creds }));
      expect(d.secretFiles).to.deep.equal([
        { name: 'nbswarm-git-credentials', data: 'username=alice\npassword=tok3n\n' },
        { name: 'nbswarm-git-ca.crt', data: 'PEM' },
      ]);
      expect(d.env.NBSWARM_GIT_CREDENTIAL_SCOPE).to.equal('https://git.example.org');
      expect(JSON.stringify(d.env) + JSON.stringify(d.command) + JSON.stringify(d.labels)).not.to.contain('tok3n');
      // A changed Secret changes the object (the Docker secret is replaced).
      const other = ok(renderDesired(nbs({ mode: 'voila', git: { url, secretName: 'git-creds' } }), policy, { secrets: () => ({ password: 'new' }) }));
      expect(other.specHash).not.to.equal(d.specHash);
    });
    it('refuses: not https/ssh, credentials in the URL, a URL the policy does not allow, git off, a missing or useless Secret', () => {
      const f = (git: object, p: Policy = policy, secrets: RenderContext['secrets'] = creds) =>
        failed(renderDesired(nbs({ mode: 'voila', git: git as never }), p, { secrets }));
      expect(f({ url: 'git://git.example.org/x.git' })).to.deep.include({ field: 'spec.git.url', reason: 'InvalidGitUrl' });
      expect(f({ url: 'git://git.example.org/x.git' }).message).to.match(/uses git:\/\/, which nbswarm does not clone from: use https/);
      expect(f({ url: 'http://git.example.org/x.git' }).message).to.contain('uses http://');
      expect(f({ url: 'file:///etc' }).message).to.contain('uses file://');
      expect(f({ url: '/srv/repo' }).message).to.contain('is not an https or ssh URL');
      expect(f({ url: 'https://alice:pw@git.example.org/x.git' }).message).to.contain('must not carry credentials');
      const strict: Policy = {
        ...policy,
        dashboards: { ...policy.dashboards, git: { ...policy.dashboards.git, allowedUrls: ['https://github.com/ourorg/**'] } },
      };
      expect(f({ url }, strict)).to.deep.include({ field: 'spec.git.url', reason: 'GitUrlNotAllowed' });
      expect(ok(renderDesired(nbs({ mode: 'voila', git: { url: 'https://github.com/ourorg/dash.git' } }), strict, noSecrets)).env.NBSWARM_GIT_URL).to.equal(
        'https://github.com/ourorg/dash.git',
      );
      const off: Policy = { ...policy, dashboards: { ...policy.dashboards, git: { ...policy.dashboards.git, enabled: false } } };
      expect(f({ url }, off)).to.deep.include({ field: 'spec.git', reason: 'GitSourcesDisabled' });
      expect(f({ url, secretName: 'nope' })).to.deep.include({ field: 'spec.git.secretName', reason: 'SecretNotFound' });
      expect(f({ url, secretName: 'git-creds' }, policy, () => ({ token: 'x' })).message).to.contain('has none of the keys nbswarm reads for git');
      expect(f({ url, secretName: 'git-creds' }, policy, () => ({ password: 'a\nhost=evil' })).message).to.contain('one line each');
    });
    it('ssh: scp-like and ssh:// URLs; the key and known_hosts are files, no https helper', () => {
      const secrets = () => ({ identity: 'KEY', known_hosts: 'git.example.org ssh-ed25519 AAAA' });
      const d = ok(renderDesired(nbs({ mode: 'voila', git: { url: 'git@git.example.org:team/dash.git', secretName: 's' } }), policy, { secrets }));
      expect(d.secretFiles!.map((x) => x.name)).to.deep.equal(['nbswarm-git-identity', 'nbswarm-git-known_hosts']);
      expect(d.env.NBSWARM_GIT_CREDENTIAL_SCOPE).to.equal(undefined);
      expect(d.env.NBSWARM_GIT_DIR).to.equal('/home/jovyan/work/git-git-example-org-team-dash-git');
      expect(
        ok(renderDesired(nbs({ mode: 'voila', git: { url: 'ssh://git@git.example.org:2222/team/dash.git' } }), policy, noSecrets)).env.NBSWARM_GIT_URL,
      ).to.contain('ssh://');
    });
  });

  describe('environment', () => {
    it("launcher < policy < spec; the hub's token switches notebook to jupyterhub-singleuser", () => {
      const p = { ...policy, env: { TZ: 'UTC', JUPYTERHUB_DEFAULT_URL: '/tree' } };
      const d = ok(
        renderDesired(
          nbs({
            mode: 'lab',
            env: [
              { name: 'JUPYTERHUB_API_TOKEN', value: 'tok' },
              { name: 'JUPYTERHUB_SERVICE_PREFIX', value: '/user/alice/' },
              { name: 'TZ', value: 'Europe/Paris' },
            ],
          }),
          p,
          noSecrets,
        ),
      );
      expect(d.env).to.deep.equal({
        JUPYTERHUB_DEFAULT_URL: '/tree',
        TZ: 'Europe/Paris',
        JUPYTERHUB_API_TOKEN: 'tok',
        JUPYTERHUB_SERVICE_PREFIX: '/user/alice/',
      });
      expect(d.command).to.deep.equal(['start.sh', 'jupyterhub-singleuser', '--ip=0.0.0.0', '--port=8888']);
    });
    it('resolves secretKeyRef; a missing Secret or key fails naming spec.env[i].valueFrom.secretKeyRef, an optional one is skipped', () => {
      const secrets = (name: string) => (name === 'db' ? { password: 's3cret' } : undefined);
      const env = [
        { name: 'A', value: '1' },
        { name: 'PW', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
      ];
      expect(ok(renderDesired(nbs({ env }), policy, { secrets })).env).to.deep.equal({ A: '1', PW: 's3cret' });
      const noKey = failed(renderDesired(nbs({ env: [...env, { name: 'X', valueFrom: { secretKeyRef: { name: 'db', key: 'nope' } } }] }), policy, { secrets }));
      expect(noKey).to.deep.equal({
        ok: false,
        field: 'spec.env[2].valueFrom.secretKeyRef',
        reason: 'SecretKeyMissing',
        message: 'spec.env[2].valueFrom.secretKeyRef: secret default/db has no key "nope"',
      });
      const noSecret = failed(renderDesired(nbs({ env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'k' } } }] }), policy, { secrets }));
      expect(noSecret).to.deep.include({ field: 'spec.env[0].valueFrom.secretKeyRef', reason: 'SecretNotFound' });
      expect(noSecret.message).to.equal('spec.env[0].valueFrom.secretKeyRef: secret default/gone not found; create it or mark the reference optional');
      const optional = ok(
        renderDesired(
          nbs({
            env: [
              ...env,
              { name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'k', optional: true } } },
              { name: 'Y', valueFrom: { secretKeyRef: { name: 'db', key: 'k', optional: true } } },
            ],
          }),
          policy,
          { secrets },
        ),
      );
      expect(optional.env).to.deep.equal({ A: '1', PW: 's3cret' });
    });
  });

  describe('resources', () => {
    it('parses Kubernetes quantities', () => {
      const d = ok(renderDesired(nbs({ resources: { cpu: '500m', memory: '512Mi' } }), policy, noSecrets));
      expect(d.resources).to.deep.equal({ nanoCpus: 5e8, memoryBytes: 512 * 2 ** 20 });
      const i = ok(renderDesired(nbs({ resources: { cpu: 2 as unknown as string, memory: '1G' } }), policy, noSecrets));
      expect(i.resources).to.deep.equal({ nanoCpus: 2e9, memoryBytes: 1e9 });
    });
    it('refuses values over the policy cap, naming the field and the cap', () => {
      const r = failed(renderDesired(nbs({ resources: { memory: '16Gi' } }), policy, noSecrets));
      expect(r).to.deep.include({ field: 'spec.resources.memory', reason: 'ResourceOverLimit' });
      expect(r.message).to.contain('16Gi').and.to.contain('resources.limits.memory 8Gi');
      expect(failed(renderDesired(nbs({ resources: { cpu: '8' } }), policy, noSecrets)).field).to.equal('spec.resources.cpu');
      expect(failed(renderDesired(nbs({ resources: { cpu: 'lots' } }), policy, noSecrets))).to.deep.include({
        field: 'spec.resources.cpu',
        reason: 'InvalidQuantity',
      });
    });
  });

  describe('system users', () => {
    it('refused unless the policy enables them', () => {
      const r = failed(renderDesired(nbs({ systemUser: true }), policy, noSecrets));
      expect(r).to.deep.include({ field: 'spec.systemUser', reason: 'SystemUsersDisabled' });
      expect(r.message).to.contain('systemUsers.enabled');
    });
    it("runs as uid:gid with the host home bound at the policy's mount target", () => {
      const p = { ...policy, systemUsers: { ...policy.systemUsers, enabled: true } };
      const d = ok(
        renderDesired(nbs({ user: 'carol', systemUser: true }, { name: 'carol' }), p, {
          ...noSecrets,
          systemUser: { uid: 1500, gid: 1600, home: '/home/carol' },
        }),
      );
      expect(d.user).to.equal('1500:1600');
      expect(d.workdir).to.equal('/home/carol');
      expect(d.volumes).to.deep.equal([{ source: '/home/carol', target: '/home/carol', type: 'bind' }]);
      expect(d.env).to.deep.include({ HOME: '/home/carol', USER: 'carol' });
      const low = failed(renderDesired(nbs({ user: 'root', systemUser: true }), p, { ...noSecrets, systemUser: { uid: 0, gid: 0, home: '/root' } }));
      expect(low).to.deep.include({ field: 'spec.systemUser', reason: 'SystemUserBelowFloor' });
    });
  });

  it('host networking: the allocated host port is the server port and {ip} the published IP', () => {
    const p: Policy = { ...policy, networkMode: 'host' };
    const d = ok(renderDesired(nbs({}), p, { ...noSecrets, hostPort: 20007 }));
    expect(d.port).to.equal(20007);
    expect(d.networkMode).to.equal('host');
    expect(d.command).to.deep.equal(['start.sh', 'jupyter', 'notebook', '--ip=127.0.0.1', '--port=20007', '--no-browser']);
    expect(failed(renderDesired(nbs({}), p, noSecrets)).reason).to.equal('HostPortUnavailable');
  });

  describe('specHash', () => {
    const hash = (spec: Partial<NotebookServerSpec>, meta: Partial<NotebookServer['metadata']> = {}, p: Policy = policy) =>
      ok(renderDesired(nbs(spec, meta), p, noSecrets)).specHash;
    it('ignores generation and stopped (no write for a spec change that renders the same object)', () => {
      expect(hash({}, { generation: 7 })).to.equal(hash({}, { generation: 1 }));
      expect(hash({ stopped: true })).to.equal(hash({}));
      expect(hash({ servername: '' })).to.equal(hash({}));
      expect(hash({ image: 'local/notebook:latest' })).to.equal(hash({}));
    });
    it('changes with everything that shapes the Docker object', () => {
      const h = hash({});
      expect(hash({ image: 'local/other:1' })).not.to.equal(h);
      expect(hash({ env: [{ name: 'A', value: '1' }] })).not.to.equal(h);
      expect(hash({ resources: { memory: '1Gi' } })).not.to.equal(h);
      expect(hash({}, {}, { ...policy, hardening: { ...policy.hardening, pidsLimit: 10 } })).not.to.equal(h);
      expect(hash({}, {}, { ...policy, publishHostIp: '127.0.0.2' })).not.to.equal(h);
    });
    it('is the same as before the labels moved into renderDesired and names took the namespace, so an upgrade rewrites no Docker object (runAsUser: image)', () => {
      // Hashes rendered by the code before the change (commit 2e1a97e) for the same objects. The
      // non-root default uid is a deliberate change (running servers are updated once to it);
      // "runAsUser: image" is the earlier behaviour, which must still hash the same.
      const policy: Policy = { ...defaultPolicy(), hardening: { ...defaultPolicy().hardening, runAsUser: 'image' } };
      expect(ok(renderDesired(nbs({}, { generation: 3 }), defaultPolicy(), { secrets: () => undefined })).specHash).not.to.equal(
        '0f43c8a50398eaf4136f0a850635854e3950d0fdd7317890dc49688ec8afbec4',
      );
      const obj = (spec: Partial<NotebookServerSpec>) => nbs(spec, { generation: 3 });
      const secrets = (name: string) => (name === 'db' ? { password: 's3cret' } : undefined);
      expect(ok(renderDesired(obj({}), policy, { secrets })).specHash).to.equal('0f43c8a50398eaf4136f0a850635854e3950d0fdd7317890dc49688ec8afbec4');
      expect(ok(renderDesired(obj({}), policy, { secrets })).specHash, 'the same again, from the memo of hashes').to.equal(
        '0f43c8a50398eaf4136f0a850635854e3950d0fdd7317890dc49688ec8afbec4',
      );
      const named = obj({
        servername: 'dash1',
        mode: 'lab',
        env: [
          { name: 'A', value: '1' },
          { name: 'PW', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
        ],
        resources: { cpu: '500m', memory: '1Gi' },
      });
      expect(ok(renderDesired(named, policy, { secrets })).specHash).to.equal('c996bd87da6fec005673989cd92d41286b277dadc4dbfd94b27d1ed3b9645d42');
      const host: Policy = { ...policy, networkMode: 'host', hostPortRange: [30000, 30010] };
      expect(ok(renderDesired(obj({ mode: 'custom', command: ['httpd', '-p', '{port}'] }), host, { secrets, hostPort: 30003 })).specHash).to.equal(
        'e0db2489a5a92475a89049eadf6dba6059d119a85eb3f1a5515d354c60511ded',
      );
      const vols: Policy = {
        ...policy,
        network: 'nbnet',
        volumes: [...policy.volumes, { name: '{prefix}-{username}-{servername}-scratch', target: '/scratch', type: 'volume', deleteWithServer: true }],
      };
      expect(ok(renderDesired(obj({ servername: 'x' }), vols, { secrets })).specHash).to.equal(
        'a4bc4363b2e601c1740e88964e1edc6ba43022093d8452fb33fbdb061f23ff0d',
      );
    });
    it('canonical JSON sorts keys at every level', () => {
      expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: undefined } })).to.equal('{"a":{"d":[2,{"x":2,"y":1}]},"b":1}');
    });
  });
});

describe('endpointFor', () => {
  const policy = defaultPolicy();
  const d = ok(renderDesired(nbs({}), policy, noSecrets));
  const observed = (o: Partial<ObservedServer>): ObservedServer => ({ kind: 'service', id: 'x', name: d.dockerName, labels: {}, state: 'running', ...o });

  it('bridge without a network: url is the hostUrl on the publish IP', () => {
    expect(endpointFor(d, observed({ hostPort: 31001, hostIp: '0.0.0.0' }), policy)).to.deep.equal({
      url: 'http://127.0.0.1:31001',
      hostUrl: 'http://127.0.0.1:31001',
      host: '127.0.0.1',
      port: 31001,
    });
  });
  it('with a network: url uses the Docker name and the container port', () => {
    expect(endpointFor({ ...d, network: 'nbs-net' }, observed({ hostPort: 31001, hostIp: '127.0.0.1' }), policy)).to.deep.equal({
      url: 'http://nbs-alice:8888',
      hostUrl: 'http://127.0.0.1:31001',
      host: '127.0.0.1',
      port: 31001,
    });
  });
  it('host networking: the server port is the host port; IPv6 hosts are bracketed', () => {
    expect(endpointFor({ ...d, networkMode: 'host', port: 20007 }, observed({}), { publishHostIp: '::1' })).to.deep.equal({
      url: 'http://[::1]:20007',
      hostUrl: 'http://[::1]:20007',
      host: '::1',
      port: 20007,
    });
  });
  it('nothing published yet: no URL', () => {
    expect(endpointFor(d, observed({}), policy)).to.deep.equal({});
    expect(endpointFor(d, undefined, policy)).to.deep.equal({});
  });
});

describe('manifests/examples under manifests/policy.example.yaml', () => {
  const docs = readdirSync(repoPath('manifests/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => YAML.parseAllDocuments(readFileSync(repoPath('manifests/examples', f), 'utf8')).map((d) => ({ f, obj: d.toJS() })));
  const secretData: Record<string, Record<string, string>> = {};
  for (const { obj } of docs)
    if (obj.kind === 'Secret') secretData[obj.metadata.name] = Object.fromEntries(Object.entries(obj.stringData ?? {}).map(([k, v]) => [k, String(v)]));
  const servers = docs.filter((d) => d.obj.kind === 'NotebookServer');
  const policy = loadPolicy({
    file: repoPath('manifests/policy.example.yaml'),
    overrides: { systemUsers: { ...defaultPolicy().systemUsers, enabled: true, allowedGroups: ['jupyterhub-users'] } },
  });

  for (const { f, obj } of servers) {
    it(`${f} renders`, () => {
      const o = { ...obj, metadata: { ...obj.metadata, namespace: 'default', uid: `uid-${obj.metadata.name}`, generation: 1 } };
      const d = ok(
        renderDesired(o, policy, {
          secrets: (name: string) => secretData[name],
          systemUser: o.spec.systemUser ? { uid: 1001, gid: 1001, home: '/home/carol' } : undefined,
          sourceImage: o.spec.source?.server ? 'nbswarm-built:alice-1' : undefined,
        }),
      );
      expect(d.dockerName).to.match(/^nbs-[a-z0-9-]+$/);
      expect(d.command.length).to.be.greaterThan(0);
    });
  }

  it('system-user.yaml is refused by the default policy, naming spec.systemUser', () => {
    const { obj } = servers.find((s) => s.f === 'system-user.yaml')!;
    const r = failed(renderDesired({ ...obj, metadata: { ...obj.metadata, uid: 'u' } }, defaultPolicy(), noSecrets));
    expect(r.field).to.equal('spec.systemUser');
  });
});
