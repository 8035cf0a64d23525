/**
 * `npm test`: the whole suite as two mocha processes at once. Most of the suite's time is spent
 * waiting (for Docker tasks, JupyterHub, restart delays), not computing, so the suites that wait
 * most run beside the rest instead of after it. Each process is an ordinary mocha
 * run with .mocharc.json's options; the two never share Docker objects (tests name theirs with a
 * per-process run id and prefix). Each group's report is printed whole when it ends, a progress
 * line every minute until then; the exit code is non-zero when either group fails.
 *
 *   node dist/test/run-groups.js [mocha options, e.g. --grep X]
 *   NBSWARM_TEST_GROUPS=serial   runs the groups one after the other (the same as plain `mocha`)
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const distTest = join(root, 'dist', 'test');

interface Group {
  name: string;
  holds(file: string): boolean;
}

/**
 * The first group that holds a file runs it; the last holds everything left. The first group is the
 * suites that mostly wait (JupyterHub, the multi-node cluster, dockerd restarts, Docker calls held
 * until their deadline, idle timeouts, dashboards, image builds, the bare-machine set-up), about half
 * of the suite's time: measured on 2 cores (CI, 2026-12-02), 1,126 s beside the rest's 1,133 s.
 */
const WAITING_SUITES = [
  'e2e/',
  'cluster/',
  'integration/fault-dockerd.test.js',
  'integration/fault-docker-hang.test.js',
  'integration/operator-culling.test.js',
  'integration/hub-pytest.test.js',
  'integration/dashboards.test.js',
  'integration/kubernetes-manifests.test.js',
  // builds the operator image as kubernetes-manifests does: never two builds of one tag at once
  'integration/operator-image.test.js',
  'integration/packaging.test.js',
  'integration/setup-bare-machine.test.js',
];
const GROUPS: Group[] = [
  { name: 'waiting suites', holds: (f) => WAITING_SUITES.some((w) => f.startsWith(`dist/test/${w}`)) },
  { name: 'the rest', holds: () => true },
];

function specFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? specFiles(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : []))
    .sort();
}

/** .mocharc.json's options as command-line flags (its `spec` is replaced by each group's files). */
function mochaFlags(): string[] {
  const rc = JSON.parse(readFileSync(join(root, '.mocharc.json'), 'utf8')) as Record<string, unknown>;
  return Object.entries(rc)
    .filter(([k]) => k !== 'spec')
    .flatMap(([k, v]) => (v === true ? [`--${k}`] : v === false ? [] : [`--${k}`, String(v)]));
}

interface Outcome {
  group: string;
  code: number;
  seconds: number;
  /** mocha's list of failures ("N failing" to the end), empty when the group passed */
  failures: string;
}

/**
 * The failures at the end of a mocha spec report. They are printed again after both reports, so
 * that the end of the output (all a CI log viewer may keep) names every failure of every group.
 */
function failureList(report: string): string {
  const at = report.search(/^ {2}\d+ failing/m);
  return at < 0 ? '' : report.slice(at).trimEnd();
}

function runGroup(group: Group, files: string[], extra: string[], progress: Map<string, string>): Promise<Outcome> {
  const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
  const t0 = Date.now();
  const child = spawn(process.execPath, [mocha, '--no-config', ...mochaFlags(), ...extra, ...files], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: process.stdout.isTTY ? '1' : '0' },
  });
  let out = '';
  // The report so far, for a look while the group runs (its whole report is printed at its end).
  const logFile = join(tmpdir(), `nbswarm-test-${group.name.replace(/\W+/g, '-')}.log`);
  writeFileSync(logFile, '');
  process.stdout.write(`[npm test] ${group.name}: ${files.length} files; report so far in ${logFile}\n`);
  const take = (c: Buffer) => {
    appendFileSync(logFile, c);
    out += c.toString();
    const passing = (out.match(/✔/g) ?? []).length;
    const failing = (out.match(/^\s+\d+\) /gm) ?? []).length;
    progress.set(group.name, `${passing} passing${failing ? `, ${failing} failing` : ''}`);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      const seconds = Math.round((Date.now() - t0) / 1000);
      process.stdout.write(`\n===== ${group.name}: ${files.length} files, ${seconds} s, exit ${code ?? signal} =====\n${out}\n`);
      progress.delete(group.name);
      resolve({ group: group.name, code: code ?? 1, seconds, failures: failureList(out) });
    });
  });
}

async function main(): Promise<void> {
  const all = specFiles(distTest).map((f) => relative(root, f));
  if (!all.length) throw new Error(`no spec files under ${distTest}: run npm run build first`);
  const byGroup = new Map<Group, string[]>(GROUPS.map((g) => [g, []]));
  for (const f of all) byGroup.get(GROUPS.find((g) => g.holds(f))!)!.push(f);
  const extra = process.argv.slice(2);
  const serial = process.env.NBSWARM_TEST_GROUPS === 'serial';
  const progress = new Map<string, string>();
  const t0 = Date.now();
  const ticker = setInterval(() => {
    const now = [...progress].map(([g, p]) => `${g}: ${p}`).join('; ');
    if (now) process.stdout.write(`[npm test ${Math.round((Date.now() - t0) / 60_000)} min] ${now}\n`);
  }, 60_000);
  const outcomes: Outcome[] = [];
  const runs = [...byGroup].filter(([, files]) => files.length);
  if (serial) for (const [g, files] of runs) outcomes.push(await runGroup(g, files, extra, progress));
  else outcomes.push(...(await Promise.all(runs.map(([g, files]) => runGroup(g, files, extra, progress)))));
  clearInterval(ticker);
  const total = Math.round((Date.now() - t0) / 1000);
  for (const o of outcomes.filter((x) => x.code !== 0)) {
    process.stdout.write(`\n===== ${o.group} failed: =====\n${o.failures || '(no mocha failure list: see the report above)'}\n`);
  }
  process.stdout.write(`npm test: ${outcomes.map((o) => `${o.group} ${o.code === 0 ? 'passed' : 'FAILED'} (${o.seconds} s)`).join(', ')}; ${total} s in all\n`);
  process.exitCode = outcomes.some((o) => o.code !== 0) ? 1 : 0;
}

await main();
