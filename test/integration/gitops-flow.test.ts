/**
 * The GitOps flow, the way an agent works, with real git, kubectl, the embedded API server, the
 * operator and Swarm: a repository of manifests (NotebookServers, a Secret, a kustomization)
 * applied server-side as argocd-controller with ApplySet pruning; commits that edit, remove a
 * field and remove an object; drift made by hand reverted by the next sync. The same flow runs
 * with the oldest, the default and the newest kubectl on this machine.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { GROUP, VERSION } from '../../src/api/types.js';
import { kubectl } from '../helpers/apiserver.js';
import { TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { HTTPD, NS, getNbs, setupEnv, waitPhase, waitReady, type Env } from './operator-harness.js';

const server = (name: string, user: string, env: { name: string; value?: string; valueFrom?: unknown }[]) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'NotebookServer',
  metadata: { name, labels: { team: 'data' } },
  spec: { user, mode: 'custom', command: HTTPD, image: TEST_IMAGE, env },
});

for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) describeFlow(bin);

function describeFlow(bin: string): void {
  describe(`GitOps flow (git + ${bin} server-side apply with ApplySet pruning, operator, Swarm)`, function () {
    this.timeout(300_000);
    let env: Env;
    let dir: string;
    const origin = () => join(dir, 'origin');
    const clone = () => join(dir, 'agent');
    const git = (cwd: string, ...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args], { cwd, encoding: 'utf8' });
    const k = (args: string[], input?: string) => kubectl(['-n', NS, ...args], { kubeconfig: env.kubeconfig, bin, input, env: { KUBECTL_APPLYSET: 'true' } });
    const write = (files: Record<string, unknown>) => {
      mkdirSync(join(origin(), 'servers'), { recursive: true });
      for (const [f, v] of Object.entries(files)) writeFileSync(join(origin(), 'servers', f), YAML.stringify(v));
    };
    const commit = (msg: string) => {
      git(origin(), 'add', '-A');
      git(origin(), 'commit', '-qm', msg);
    };
    /** One sync as an agent does it: pull, apply server-side with pruning. */
    const sync = async () => {
      git(clone(), 'pull', '-q');
      const r = await k([
        'apply',
        '--server-side',
        '--field-manager=argocd-controller',
        '--force-conflicts',
        '--prune',
        '--applyset=configmaps/notebooks',
        '-k',
        join(clone(), 'servers'),
      ]);
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout;
    };
    const diff = () => k(['diff', '--server-side', '--field-manager=argocd-controller', '--force-conflicts', '-k', join(clone(), 'servers')]);
    /**
     * The changed lines of a diff, less the ApplySet membership label: kubectl diff does not know
     * ApplySets, so it would remove the label kubectl apply --applyset adds (against any server).
     */
    const changes = (out: string) =>
      out
        .split('\n')
        .filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l))
        .filter((l) => !/applyset\.kubernetes\.io\/part-of:/.test(l) && !/^[-+]\s+labels:$/.test(l));

    before(async () => {
      env = await setupEnv('service');
      dir = mkdtempSync(join(tmpdir(), 'nbswarm-gitops-'));
      mkdirSync(origin());
      git(origin(), 'init', '-q', '-b', 'main');
      write({
        'kustomization.yaml': { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['creds.yaml', 'web.yaml', 'api.yaml'] },
        'creds.yaml': { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, stringData: { token: 's3cret' } },
        'web.yaml': server('web', 'wendy', [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
          { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
        ]),
        'api.yaml': server('api', 'arno', [{ name: 'A', value: '1' }]),
      });
      commit('first servers');
      git(dir, 'clone', '-q', origin(), clone());
    });
    after(async () => {
      await env?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('syncs, stays clean, follows commits, prunes, and reverts drift without touching status', async () => {
      expect(await sync()).to.match(/notebookserver\.nbswarm\.io\/web serverside-applied/);
      await waitReady(env, 'web');
      const api = await waitReady(env, 'api');
      let d = await diff();
      expect(changes(d.stdout), d.stdout + d.stderr).to.deep.equal([]);

      // A sync with nothing new writes nothing: same resourceVersion, status untouched.
      const before = await getNbs(env, 'web');
      await sync();
      const again = await getNbs(env, 'web');
      expect(again.metadata.resourceVersion).to.equal(before.metadata.resourceVersion);
      const applied = (again.metadata as { managedFields?: { manager: string; fieldsV1: Record<string, unknown> }[] }).managedFields ?? [];
      expect(applied.find((m) => m.manager === 'argocd-controller')?.fieldsV1, 'the agent owns no status').to.not.have.property('f:status');

      // A commit edits one value, removes one variable and one object.
      write({
        'kustomization.yaml': { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['creds.yaml', 'web.yaml'] },
        'web.yaml': server('web', 'wendy', [
          { name: 'A', value: '3' },
          { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
        ]),
      });
      rmSync(join(origin(), 'servers', 'api.yaml'));
      commit('edit web, drop api');
      expect(await sync()).to.match(/notebookserver\.nbswarm\.io\/api pruned/);
      const web = await waitPhase(env, 'web', 'Running', 120_000, before);
      expect(web.spec.env?.map((e) => e.name)).to.deep.equal(['A', 'TOKEN']);
      expect(web.spec.env?.[0]).to.deep.equal({ name: 'A', value: '3' });
      await waitFor(
        'api and its service gone',
        async () => ((await k(['get', 'nbs', 'api'])).code !== 0 && (await env.backend.find(api.metadata.uid!)).length === 0) || undefined,
        60_000,
      );
      d = await diff();
      expect(changes(d.stdout), d.stdout + d.stderr).to.deep.equal([]);

      // Drift by hand (kubectl edit) is reverted by the next sync.
      const editor = join(dir, 'editor.sh');
      writeFileSync(editor, `#!/bin/sh\nsed -i 's/value: "3"/value: "9"/' "$1"\n`, { mode: 0o755 });
      const edited = await kubectl(['-n', NS, 'edit', 'nbs', 'web'], { kubeconfig: env.kubeconfig, bin, env: { EDITOR: editor, KUBE_EDITOR: editor } });
      expect(edited.code, edited.stderr).to.equal(0);
      expect((await getNbs(env, 'web')).spec.env?.[0]).to.deep.equal({ name: 'A', value: '9' });
      // The operator rolls the edit out first; a diff taken while it writes status would show that too.
      await waitReady(env, 'web');
      d = await diff();
      // The value goes back (and generation moves with the spec).
      expect(changes(d.stdout).filter((l) => !/^[-+]\s+generation: \d+$/.test(l))).to.deep.equal(['-    value: "9"', '+    value: "3"']);
      await sync();
      expect((await getNbs(env, 'web')).spec.env?.[0]).to.deep.equal({ name: 'A', value: '3' });
    });
  });
}
