/**
 * The status page's model: rows built from hostile NotebookServers stay inert (no javascript: link,
 * bounded strings), start-up stages follow the Ready reasons, and the CPU/memory figures are
 * computed as `docker stats` computes them.
 */
import { expect } from 'chai';
import type { NotebookServer } from '../../src/api/types.js';
import {
  cpuPercent,
  cpuSample,
  eventRow,
  memoryUsage,
  newestEvents,
  reconcileRate,
  safeHttpUrl,
  serverRow,
  START_STAGES,
  startStage,
} from '../../src/statuspage/model.js';

function nbs(status: NotebookServer['status'], extra: Partial<NotebookServer['spec']> = {}, annotations?: Record<string, string>): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'alice', namespace: 'team', uid: 'u1', creationTimestamp: '2026-01-01T00:00:00Z', annotations },
    spec: { user: 'alice', servername: '', mode: 'notebook', ...extra },
    status,
  };
}

describe('status page model', () => {
  it('makes a row of what the page shows, preferring the effective mode in status', () => {
    const row = serverRow(
      nbs({
        phase: 'Running',
        mode: 'lab',
        endpoint: { hostUrl: 'http://127.0.0.1:20001' },
        backend: { node: 'node-1', image: 'local/notebook:latest' },
        conditions: [{ type: 'Ready', status: 'True', reason: 'Running' }],
        message: 'nbs-alice is running',
      } as NotebookServer['status']),
    );
    expect(row).to.deep.include({
      key: 'team/alice',
      namespace: 'team',
      name: 'alice',
      user: 'alice',
      server: '',
      mode: 'lab',
      phase: 'Running',
      ready: true,
      stopped: false,
      node: 'node-1',
      url: 'http://127.0.0.1:20001/',
      stage: -1,
      image: 'local/notebook:latest',
    });
  });

  it('never passes on a link that is not http(s), and bounds every string', () => {
    expect(safeHttpUrl('javascript:alert(1)')).to.equal('');
    expect(safeHttpUrl('data:text/html,<script>')).to.equal('');
    expect(safeHttpUrl(42)).to.equal('');
    expect(safeHttpUrl('https://x.example/a b')).to.equal('https://x.example/a%20b');
    const row = serverRow(nbs({ phase: 'Running', endpoint: { hostUrl: 'javascript:alert(document.cookie)' }, message: 'x'.repeat(100_000) }));
    expect(row.url).to.equal('');
    expect(row.message.length).to.equal(1024);
  });

  it("greys out a server asked to stop by spec or by the culler's annotation", () => {
    expect(serverRow(nbs({ phase: 'Stopping' }, { stopped: true })).stopped).to.equal(true);
    expect(serverRow(nbs({ phase: 'Stopped' }, {}, { 'nbswarm.io/stopped': '2026-01-01T00:00:00Z' })).stopped).to.equal(true);
    expect(serverRow(nbs({ phase: 'Running' })).stopped).to.equal(false);
  });

  it('places a starting server on the stages its Events name', () => {
    const stage = (phase: any, reason?: string) => startStage(nbs({ phase, conditions: reason ? [{ type: 'Ready', status: 'False', reason }] : [] }));
    expect(START_STAGES.map((s) => s.label)).to.deep.equal(['Created', 'Scheduled', 'Image', 'Starting', 'Ready']);
    expect(stage(undefined)).to.equal(0);
    expect(stage('Pending', 'Pending')).to.equal(1);
    expect(stage('Creating', 'Preparing')).to.equal(2);
    expect(stage('Creating', 'Starting')).to.equal(3);
    expect(stage('Running', 'Running')).to.equal(-1);
    expect(stage('Failed', 'TaskFailed')).to.equal(-1);
  });

  it('computes CPU % between two samples and memory without the page cache (cgroup v1 and v2)', () => {
    const s1 = cpuSample({ cpu_stats: { cpu_usage: { total_usage: 1e9 }, system_cpu_usage: 100e9, online_cpus: 2 } });
    const s2 = cpuSample({ cpu_stats: { cpu_usage: { total_usage: 2e9 }, system_cpu_usage: 110e9, online_cpus: 2 } });
    expect(cpuPercent(undefined, s2)).to.equal(undefined);
    expect(cpuPercent(s1, s2)).to.equal(20);
    expect(cpuSample({ cpu_stats: {} })).to.equal(undefined);
    expect(memoryUsage({ memory_stats: { usage: 300, limit: 1000, stats: { inactive_file: 100 } } })).to.deep.equal({
      memoryBytes: 200,
      memoryLimitBytes: 1000,
    });
    expect(memoryUsage({ memory_stats: { usage: 300, limit: 1000, stats: { cache: 50 } } })).to.deep.equal({ memoryBytes: 250, memoryLimitBytes: 1000 });
    expect(memoryUsage({})).to.deep.equal({});
  });

  it('computes reconciles per second over a sliding window', () => {
    let r = reconcileRate([], 0, 0);
    r = reconcileRate(r.samples, 5000, 50);
    expect(r.perSecond).to.equal(10);
    r = reconcileRate(r.samples, 15_000, 60);
    // The sample at t=0 fell out of the 10 s window: (60 - 50) / 10 s.
    expect(r.perSecond).to.equal(1);
  });

  it('keeps the newest Events first', () => {
    const ev = (name: string, t: string) =>
      eventRow({
        metadata: { uid: name, namespace: 'team' },
        involvedObject: { name: 'alice' },
        reason: 'Ready',
        message: 'm',
        lastTimestamp: t,
        type: 'Normal',
      });
    const rows = newestEvents([ev('a', '2026-01-01T00:00:01Z'), ev('b', '2026-01-01T00:00:03Z'), ev('c', '2026-01-01T00:00:02Z')], 2);
    expect(rows.map((r) => r.uid)).to.deep.equal(['b', 'c']);
    expect(rows[0]).to.deep.include({ object: 'alice', namespace: 'team', count: 1, type: 'Normal' });
  });
});
