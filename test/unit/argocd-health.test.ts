/**
 * The Argo CD health check over NotebookServers recorded from real reconciles
 * (test/fixtures/argocd-health, written by the argocd-health integration test with
 * NBSWARM_RECORD_FIXTURES=1), run by Debian's lua5.4.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { repoPath } from '../../src/paths.js';
import { argoHealth, HEALTH_SCRIPT } from '../helpers/argocd-health.js';

const DIR = repoPath('test/fixtures/argocd-health');

interface Fixture {
  expect: { status: string; message: string };
  object: { metadata: { generation: number }; status?: { observedGeneration?: number } };
}

describe('Argo CD health check for NotebookServer (lua5.4)', () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();

  it('has fixtures for every health Argo CD can show', () => {
    const seen = new Set(files.map((f) => (JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Fixture).expect.status));
    expect([...seen].sort()).to.deep.equal(['Degraded', 'Healthy', 'Progressing', 'Suspended']);
  });

  for (const f of files) {
    it(`${f.replace(/\.json$/, '')}`, () => {
      const fx = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Fixture;
      const h = argoHealth(fx.object);
      expect(h.status).to.equal(fx.expect.status);
      expect(h.message).to.match(new RegExp(fx.expect.message));
    });
  }

  it('a status written for an older generation is Progressing, whatever it says', () => {
    const running = files.map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Fixture).find((x) => x.expect.status === 'Healthy')!;
    const edited = structuredClone(running.object);
    edited.metadata.generation += 1;
    expect(argoHealth(edited)).to.deep.equal({ status: 'Progressing', message: `Waiting for the operator to act on generation ${edited.metadata.generation}` });
    expect(argoHealth({ metadata: { generation: 1 } }).status).to.equal('Progressing');
  });

  it('argocd-cm.yaml carries the same script', () => {
    const cm = YAML.parse(readFileSync(repoPath('manifests/argocd/argocd-cm.yaml'), 'utf8')) as { data: Record<string, string> };
    expect(cm.data['resource.customizations.health.nbswarm.io_NotebookServer']).to.equal(readFileSync(HEALTH_SCRIPT, 'utf8'));
  });
});
