/**
 * A real Prometheus (Debian's) scraping `nbswarm up`: the operator's metrics port and the API
 * server's /metrics over HTTPS with a viewer token, configured from monitoring/prometheus.yml with
 * its alert rules loaded. Queried through Prometheus's HTTP API: servers by phase, spawn latency,
 * reconciles, the work queue, Docker calls by call and code, API requests by verb and code, and
 * every expression of the Grafana dashboard. The rules are checked and unit-tested with promtool.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import YAML from 'yaml';
import { GROUP, VERSION } from '../../src/api/names.js';
import { repoPath } from '../../src/paths.js';
import { freePort, requireDocker, sleep, TEST_IMAGE, waitFor } from '../helpers/docker.js';
import { startUp, type UpProcess } from '../helpers/up.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const MONITORING = repoPath('monitoring');
const SERVER_CMD = ['sh', '-c', 'httpd -p {port} -h /www; trap "exit 0" TERM; while :; do sleep 1; done'];

const nbs = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: 'NotebookServer', metadata: { name, namespace: 'default' }, spec });

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('monitoring: alert rules (promtool)', () => {
  it('`promtool check rules` accepts the shipped alert rules', () => {
    const r = spawnSync(PROMTOOL, ['check', 'rules', join(MONITORING, 'alerts.yaml')], { encoding: 'utf8' });
    expect(r.error, `${PROMTOOL} missing: bash scripts/setup.sh installs prometheus`).to.equal(undefined);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/SUCCESS: 5 rules found/);
  });

  it('`promtool test rules`: each alert fires on its series and stays quiet on a healthy fleet', () => {
    const r = spawnSync(PROMTOOL, ['test', 'rules', 'alerts.test.yaml'], { cwd: MONITORING, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.contain('SUCCESS');
  });

  it('the Grafana dashboard is valid JSON with a Prometheus query in every panel', () => {
    const d = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8'));
    expect(d.uid).to.equal('nbswarm');
    expect(d.panels.length).to.be.greaterThan(10);
    for (const p of d.panels) expect(p.targets.length, p.title).to.be.greaterThan(0);
  });
});

describe('monitoring: a real Prometheus scrapes nbswarm up', function () {
  this.timeout(240_000);
  let docker: Docker;
  let up: UpProcess | undefined;
  let prom: ChildProcess | undefined;
  let promDir: string | undefined;
  let promUrl = '';
  let promLog = '';

  const query = async (expr: string): Promise<Sample[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
    return body.data!.result;
  };
  const value = async (expr: string): Promise<number | undefined> => {
    const r = await query(expr);
    return r.length ? Number(r[0]!.value[1]) : undefined;
  };

  before(async () => {
    ({ docker } = await requireDocker());
    const metricsPort = await freePort();
    up = await startUp({ backend: 'container', policy: 'pullPolicy: never\n', args: ['--metrics-port', String(metricsPort)] });
    const dataDir = join(up.dir, 'data');
    // What the example tells an admin to do: a viewer token for Prometheus in the token file.
    const token = randomBytes(16).toString('hex');
    appendFileSync(join(dataDir, 'tokens.csv'), `${token},prometheus,viewer,*\n`);

    promDir = mkdtempSync(join(tmpdir(), 'nbswarm-prometheus-'));
    writeFileSync(join(promDir, 'token'), token);
    copyFileSync(join(MONITORING, 'alerts.yaml'), join(promDir, 'alerts.yaml'));
    const cfg = YAML.parse(readFileSync(join(MONITORING, 'prometheus.yml'), 'utf8'));
    cfg.global.scrape_interval = '1s';
    cfg.global.evaluation_interval = '1s';
    const [operatorJob, apiJob] = cfg.scrape_configs;
    operatorJob.static_configs[0].targets = [`127.0.0.1:${metricsPort}`];
    apiJob.static_configs[0].targets = [new URL(up.apiUrl).host];
    apiJob.tls_config.ca_file = join(dataDir, 'pki', 'ca.crt');
    apiJob.authorization.credentials_file = join(promDir, 'token');
    writeFileSync(join(promDir, 'prometheus.yml'), YAML.stringify(cfg));

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prom.stdout!.on('data', (c) => (promLog += c));
    prom.stderr!.on('data', (c) => (promLog += c));
    prom.on('error', (e) => (promLog += `\n${e}`));
    await waitFor(
      'both targets up',
      async () => {
        if (prom!.exitCode !== null) throw new Error(`prometheus exited ${prom!.exitCode}: ${promLog}`);
        const ups = await query('up').catch(() => []);
        return ups.length === 2 && ups.every((s) => s.value[1] === '1');
      },
      60_000,
      250,
    ).catch(async (err) => {
      const targets = await fetch(`${promUrl}/api/v1/targets`)
        .then((r) => r.text())
        .catch(() => '');
      throw new Error(`${(err as Error).message}\ntargets: ${targets}\nprometheus: ${promLog}`);
    });
  });

  after(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await new Promise((r) => prom!.once('exit', r));
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
    await up?.stop(docker);
  });

  it('servers by phase, spawn latency, reconciles, work queue, Docker calls and API requests', async () => {
    for (const name of ['pm-a', 'pm-b']) {
      const r = await up!.kubectl(['apply', '-f', '-'], nbs(name, { user: name, mode: 'custom', command: SERVER_CMD, image: TEST_IMAGE }));
      expect(r.code, r.stderr).to.equal(0);
    }
    // An image the daemon does not have (never pulled under this policy): a 404 from Docker.
    const missing = await up!.kubectl(
      ['apply', '-f', '-'],
      nbs('pm-missing', { user: 'x', mode: 'custom', command: SERVER_CMD, image: `local/nbswarm-absent-${randomBytes(3).toString('hex')}:1` }),
    );
    expect(missing.code, missing.stderr).to.equal(0);

    await waitFor('two servers Running in Prometheus', async () => (await value('nbswarm_notebookservers{phase="Running"}')) === 2, 60_000, 500);
    expect(await value('nbswarm_spawn_duration_seconds_count{trigger="create"}')).to.equal(2);
    const p50 = await value('histogram_quantile(0.5, sum by (le) (nbswarm_spawn_duration_seconds_bucket{trigger="create"}))');
    expect(p50).to.be.within(0, 60);

    const stop = await up!.kubectl(['patch', 'nbs', 'pm-b', '--type=merge', '-p', '{"spec":{"stopped":true}}']);
    expect(stop.code, stop.stderr).to.equal(0);
    await waitFor('one server Stopped in Prometheus', async () => (await value('nbswarm_notebookservers{phase="Stopped"}')) === 1, 30_000, 500);
    expect(await value('nbswarm_notebookservers{phase="Running"}')).to.equal(1);

    expect(await value('sum(nbswarm_workqueue_reconciles_total{result="success"})')).to.be.greaterThan(0);
    expect(await value('sum(nbswarm_workqueue_work_duration_seconds_count)')).to.be.greaterThan(0);
    expect(await value('nbswarm_workqueue_depth')).to.be.at.least(0);
    expect(await value('nbswarm_leader')).to.equal(1);
    expect(await value('nbswarm_docker_reachable')).to.equal(1);

    const calls = await query('sum by (call, code) (nbswarm_docker_requests_total)');
    const callCodes = calls.map((s) => `${s.metric.call} ${s.metric.code}`);
    expect(callCodes).to.include('POST /containers/create 2xx');
    await waitFor(
      'the missing image counted as a Docker 404',
      async () => (await query('nbswarm_docker_requests_total{call="GET /images/{name}/json",code="404"}')).length > 0,
      30_000,
      500,
    );
    expect(await value('sum(nbswarm_docker_request_duration_seconds_count)')).to.be.greaterThan(0);

    const creates = await value('sum(apiserver_request_total{job="nbswarm-apiserver",verb="create",code="201",resource=~"notebookservers.*"})');
    expect(creates).to.equal(3);
    expect(await value('sum(apiserver_request_total{job="nbswarm-apiserver",verb="patch"})')).to.be.greaterThan(0);
    expect(await value('sum(apiserver_request_duration_seconds_count{job="nbswarm-apiserver",verb="list"})')).to.be.greaterThan(0);
  });

  it('evaluates every query of the Grafana dashboard, and loads the alert rules', async () => {
    await sleep(2000); // two scrapes since the last test, so rate() has two points
    const d = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8'));
    for (const p of d.panels) {
      for (const t of p.targets) {
        const expr = String(t.expr).replaceAll('$__rate_interval', '1m');
        await query(expr).catch((err: Error) => expect.fail(`panel "${p.title}": ${err.message}`));
      }
    }
    // A panel that shows nothing on a live fleet is a wrong metric name.
    for (const expr of [
      'sum(nbswarm_leader)',
      'max by (phase) (nbswarm_notebookservers)',
      'sum by (result) (rate(nbswarm_workqueue_reconciles_total[1m]))',
      'sum by (verb, code) (rate(apiserver_request_total[1m]))',
    ]) {
      expect((await query(expr)).length, expr).to.be.greaterThan(0);
    }
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string }[] }[] } };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).to.deep.equal([
      'NbswarmApiServerErrors',
      'NbswarmDockerUnreachable',
      'NbswarmNoLeader',
      'NbswarmReconcileErrors',
      'NotebookServerStuckStarting',
    ]);
    await waitFor(
      'every rule evaluated',
      async () => {
        const again = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof rules;
        return again.data.groups.flatMap((g) => g.rules).every((r) => r.health === 'ok');
      },
      10_000,
      500,
    );
    // A healthy fleet: nothing fires.
    const alerts = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as { data: { alerts: { labels: { alertname: string } }[] } };
    expect(alerts.data.alerts.map((a) => a.labels.alertname)).to.deep.equal([]);
  });
});
