/**
 * Health of NotebookServers through real reconciles (embedded API server, operator, Swarm): each
 * status the operator writes, as the watch sees it, read by the shipped Argo CD health check and
 * by kstatus' rules. With NBSWARM_RECORD_FIXTURES=1 the objects are written to
 * test/fixtures/argocd-health for the unit test.
 */
import { Watch } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GROUP, PLURAL, VERSION, type NotebookServer } from '../../src/api/types.js';
import { repoPath } from '../../src/paths.js';
import { argoHealth } from '../helpers/argocd-health.js';
import { TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { HTTPD, NS, nbsYaml, patchSpec, setupEnv, waitPhase, waitReady, type Env } from './operator-harness.js';

/** kstatus' reading of a resource with the standard conditions. */
function kstatus(o: NotebookServer): 'InProgress' | 'Failed' | 'Current' {
  const gen = o.metadata.generation ?? 0;
  if ((o.status?.observedGeneration ?? -1) < gen) return 'InProgress';
  const cond = (t: string) => o.status?.conditions?.find((c) => c.type === t)?.status === 'True';
  if (cond('Reconciling')) return 'InProgress';
  if (cond('Stalled')) return 'Failed';
  return 'Current';
}

const EXPECTED: Record<string, { argo: string; kstatus: string }> = {
  Pending: { argo: 'Progressing', kstatus: 'InProgress' },
  Creating: { argo: 'Progressing', kstatus: 'InProgress' },
  Running: { argo: 'Healthy', kstatus: 'Current' },
  Failed: { argo: 'Degraded', kstatus: 'Failed' },
  Stopped: { argo: 'Suspended', kstatus: 'Current' },
  Terminating: { argo: 'Progressing', kstatus: 'InProgress' },
};

describe('NotebookServer health through real reconciles (Argo CD check, kstatus)', function () {
  this.timeout(240_000);
  let env: Env;
  const seen: NotebookServer[] = [];
  let abort: (() => void) | undefined;

  before(async () => {
    env = await setupEnv('service');
    const req = new Watch(env.kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`,
      {},
      (_t: string, o: NotebookServer) => void seen.push(o),
      () => undefined,
    );
    abort = () => void req.then((c) => c.abort()).catch(() => undefined);
  });
  after(async () => {
    abort?.();
    await env?.close();
  });

  it('every status written reads as its phase says, for Argo CD and for kstatus', async () => {
    await env.kubectl(['apply', '-f', '-'], nbsYaml('web', { user: 'ann', mode: 'custom', command: HTTPD, image: TEST_IMAGE }));
    await waitReady(env, 'web');
    await env.kubectl(['apply', '-f', '-'], nbsYaml('refused', { user: 'bob', mode: 'custom', command: HTTPD, image: 'docker.io/library/not-allowed:1' }));
    await waitPhase(env, 'refused', 'Failed');
    await env.kubectl(['apply', '-f', '-'], nbsYaml('paused', { user: 'cy', mode: 'custom', command: HTTPD, image: TEST_IMAGE, stopped: true }));
    await waitPhase(env, 'paused', 'Stopped');
    await patchSpec(env, 'web', { env: [{ name: 'A', value: '1' }] });
    await waitFor('web at generation 2', async () =>
      seen.find((o) => o.metadata.name === 'web' && o.metadata.generation === 2 && o.status?.observedGeneration === 2 && o.status.phase === 'Running'),
    );
    await env.kubectl(['delete', '-n', NS, 'nbs/web', '--wait=false']);
    await waitFor('web Terminating', async () => seen.find((o) => o.metadata.name === 'web' && o.status?.phase === 'Terminating'));

    const stale = seen.find((o) => o.metadata.name === 'web' && o.metadata.generation === 2 && o.status?.observedGeneration === 1);
    expect(stale, 'the edit is seen before the operator acts on it').to.not.equal(undefined);
    expect(argoHealth(stale).status).to.equal('Progressing');
    expect(kstatus(stale!)).to.equal('InProgress');

    const fixtures = new Map<string, { expect: { status: string; message: string }; object: NotebookServer }>();
    for (const o of seen) {
      const phase = o.status?.phase;
      if (!phase || o.status?.observedGeneration !== o.metadata.generation) continue;
      const want = EXPECTED[phase];
      expect(want, `phase ${phase}`).to.not.equal(undefined);
      const h = argoHealth(o);
      expect(h.status, `${o.metadata.name} ${phase}: ${h.message}`).to.equal(want.argo);
      expect(kstatus(o), `${o.metadata.name} ${phase}`).to.equal(want.kstatus);
      for (const c of o.status?.conditions ?? []) expect(c.observedGeneration, `${o.metadata.name} ${c.type}`).to.equal(o.metadata.generation);
      const key = `${o.metadata.name}-${phase.toLowerCase()}-g${o.metadata.generation}`;
      if (!fixtures.has(key)) fixtures.set(key, { expect: { status: h.status, message: `^${h.message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$` }, object: o });
    }
    expect([...new Set([...fixtures.values()].map((f) => f.expect.status))].sort()).to.deep.equal(['Degraded', 'Healthy', 'Progressing', 'Suspended']);
    if (process.env.NBSWARM_RECORD_FIXTURES === '1') {
      const dir = repoPath('test/fixtures/argocd-health');
      mkdirSync(dir, { recursive: true });
      for (const [key, f] of fixtures) writeFileSync(join(dir, `${key}.json`), JSON.stringify(f, null, 2) + '\n');
    }
  });
});
