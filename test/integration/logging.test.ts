/**
 * One logger with one set of fields: `nbswarm up` logs the API server's requests (debug) and its
 * own lines with a component, as JSON lines or as text, as --log-format and --log-level say.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { requireDocker } from '../helpers/docker.js';
import { startUp, type UpProcess } from '../helpers/up.js';

describe('nbswarm up logging', function () {
  this.timeout(120_000);
  let docker: Docker;
  const ups: UpProcess[] = [];
  before(async () => ({ docker } = await requireDocker()));
  after(async () => {
    for (const u of ups) await u.stop(docker);
  });

  it('--log-format json --log-level debug: one JSON object per line, API requests with verb, path, code, durationMs, user', async () => {
    const up = await startUp({ backend: 'container', args: ['--log-format', 'json', '--log-level', 'debug'] });
    ups.push(up);
    expect((await up.kubectl(['get', 'nbs', '-A'])).code).to.equal(0);
    const lines = up
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.length).to.be.greaterThan(3);
    for (const r of records) expect(r).to.include.keys('level', 'message', 'timestamp');
    const listed = records.find(
      (r) =>
        r.component === 'apiserver' && r.message === 'request' && r.verb === 'list' && String(r.path).startsWith('/apis/nbswarm.io/v1alpha1/notebookservers'),
    );
    expect(listed, lines.join('\n')).to.include({ level: 'debug', code: 200, user: 'admin' });
    expect(listed!.durationMs).to.be.a('number');
    expect(records.find((r) => r.component === 'operator' && r.message === 'operator started')).to.include({ level: 'info' });
    expect(records.find((r) => r.component === 'apiserver' && r.message === 'api server listening')).to.include.keys('url', 'dataDir');
  });

  it('--log-format text at the default level: short lines naming the component, no request lines, no colour codes', async () => {
    const up = await startUp({ backend: 'container', args: ['--log-format', 'text'] });
    ups.push(up);
    expect((await up.kubectl(['get', 'nbs', '-A'])).code).to.equal(0);
    const out = up.output();
    expect(out).to.match(/^\d\d:\d\d:\d\d\.\d{3} info apiserver: api server listening url=https:\/\/127\.0\.0\.1:\d+ dataDir=\S+$/m);
    expect(out).to.match(/^\d\d:\d\d:\d\d\.\d{3} info operator: operator started identity=\S+ backend=container /m);
    expect(out).to.not.match(/ request verb=/);
    expect(out).to.not.contain('\u001b[');
  });
});
