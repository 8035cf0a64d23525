import { expect } from 'chai';
import { ApiError } from '../../src/apiserver/errors.js';
import { cleanPath, parseRequestInfo, type RequestInfo } from '../../src/apiserver/request/info.js';

const info = (method: string, url: string): RequestInfo => {
  const u = new URL(url, 'https://x');
  return parseRequestInfo(method, cleanPath(u.pathname), u.searchParams);
};

describe('API server request info', () => {
  const resources: [string, string, Partial<RequestInfo>][] = [
    ['GET', '/api/v1/namespaces', { verb: 'list', group: '', version: 'v1', resource: 'namespaces', namespace: '', name: '' }],
    ['GET', '/api/v1/namespaces/team-a', { verb: 'get', resource: 'namespaces', name: 'team-a', namespace: '' }],
    ['PUT', '/api/v1/namespaces/team-a/status', { verb: 'update', resource: 'namespaces', name: 'team-a', subresource: 'status', namespace: '' }],
    ['PUT', '/api/v1/namespaces/team-a/finalize', { verb: 'update', resource: 'namespaces', name: 'team-a', subresource: 'status' }],
    ['GET', '/api/v1/namespaces/team-a/configmaps', { verb: 'list', namespace: 'team-a', resource: 'configmaps', name: '' }],
    ['GET', '/api/v1/namespaces/team-a/configmaps/', { verb: 'list', namespace: 'team-a', resource: 'configmaps' }],
    ['POST', '/api/v1/namespaces/team-a/configmaps', { verb: 'create', namespace: 'team-a', resource: 'configmaps' }],
    ['DELETE', '/api/v1/namespaces/team-a/configmaps', { verb: 'deletecollection', namespace: 'team-a', resource: 'configmaps' }],
    ['DELETE', '/api/v1/namespaces/team-a/configmaps/c1', { verb: 'delete', name: 'c1' }],
    [
      'PATCH',
      '/apis/nbswarm.io/v1alpha1/namespaces/u/notebookservers/nb/status',
      {
        verb: 'patch',
        apiPrefix: 'apis',
        group: 'nbswarm.io',
        version: 'v1alpha1',
        namespace: 'u',
        resource: 'notebookservers',
        name: 'nb',
        subresource: 'status',
      },
    ],
    ['GET', '/apis/nbswarm.io/v1alpha1/notebookservers?watch=true', { verb: 'watch', resource: 'notebookservers', namespace: '' }],
    ['GET', '/apis/nbswarm.io/v1alpha1/notebookservers?watch=1', { verb: 'watch' }],
    ['GET', '/apis/nbswarm.io/v1alpha1/notebookservers?watch=false', { verb: 'list' }],
    ['GET', '/apis/nbswarm.io/v1alpha1/watch/namespaces/u/notebookservers/nb', { verb: 'watch', namespace: 'u', name: 'nb' }],
    ['GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/a%2Fb', { verb: 'get', name: 'a/b', namespace: 'kube-system' }],
    ['OPTIONS', '/api/v1/namespaces/team-a/configmaps', { verb: undefined, resource: 'configmaps' }],
  ];
  for (const [method, url, want] of resources) {
    it(`${method} ${url} is a resource request`, () => {
      const got = info(method, url);
      expect(got.isResourceRequest).to.equal(true);
      expect(got).to.include(want);
    });
  }

  const discovery: [string, string[]][] = [
    ['/api', ['api']],
    ['/api/v1', ['api', 'v1']],
    ['/apis', ['apis']],
    ['/apis/nbswarm.io', ['apis', 'nbswarm.io']],
    ['/apis/nbswarm.io/v1alpha1', ['apis', 'nbswarm.io', 'v1alpha1']],
    ['/openapi/v3/apis/nbswarm.io/v1alpha1', ['openapi', 'v3', 'apis', 'nbswarm.io', 'v1alpha1']],
    ['/', []],
  ];
  for (const [url, segments] of discovery) {
    it(`${url} is not a resource request`, () => {
      expect(info('GET', url)).to.deep.equal({ isResourceRequest: false, path: cleanPath(url), segments });
    });
  }

  const failures: [string, number][] = [
    ['/api/v1/namespaces/a/configmaps/b/status/extra', 404],
    ['/api/v1/configmaps/a/b/c', 404],
    ['/api/v1/watch', 404],
    ['/api/v1/namespaces/%zz', 400],
  ];
  for (const [url, code] of failures) {
    it(`${url} is a ${code}`, () => {
      let err: unknown;
      try {
        info('GET', url);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(ApiError);
      expect((err as ApiError).code).to.equal(code);
    });
  }
});
