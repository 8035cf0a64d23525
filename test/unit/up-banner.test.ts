import { expect } from 'chai';
import { kubeconfigFromBanner, upBanner } from '../../src/up-banner.js';

describe('nbswarm up banner', () => {
  it('ends with the absolute kubeconfig path alone on its line', () => {
    const text = upBanner({ apiUrl: 'https://127.0.0.1:6443', backend: 'service', kubeconfigPath: '/srv/nb/.nbswarm/admin.kubeconfig' });
    expect(text.split('\n')).to.deep.equal([
      'nbswarm is up: API server https://127.0.0.1:6443, Docker backend "service".',
      'try: kubectl --kubeconfig /srv/nb/.nbswarm/admin.kubeconfig get nbs -A',
      'kubeconfig:',
      '/srv/nb/.nbswarm/admin.kubeconfig',
      '',
    ]);
    expect(kubeconfigFromBanner(text)).to.equal('/srv/nb/.nbswarm/admin.kubeconfig');
  });

  it('makes a relative kubeconfig path absolute', () => {
    const text = upBanner({ apiUrl: 'https://127.0.0.1:6443', backend: 'container', kubeconfigPath: 'data/admin.kubeconfig' });
    expect(kubeconfigFromBanner(text)).to.equal(`${process.cwd()}/data/admin.kubeconfig`);
  });

  it('prints the status page URL last, alone on its line, when there is one', () => {
    const text = upBanner({ apiUrl: 'https://127.0.0.1:6443', backend: 'service', kubeconfigPath: '/k', statusPageUrl: 'https://127.0.0.1:6443/status' });
    expect(text.trimEnd().split('\n').slice(-4)).to.deep.equal(['kubeconfig:', '/k', 'status page:', 'https://127.0.0.1:6443/status']);
  });
});
