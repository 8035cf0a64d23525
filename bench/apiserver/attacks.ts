/**
 * Resource attacks on the API server (not a test): each scenario runs against a fresh server
 * process and reports the server's RSS (start, peak, end; MiB) and the latency of /healthz while
 * the attack runs, plus what the server answered. Prints one JSON document.
 *
 *   node dist/bench/apiserver/attacks.js [--scenarios a,b] [--server-main FILE] [--serve-args "..."]
 *
 * `--server-main` runs another build's src/apiserver/main.js (before/after comparisons with the same
 * attacks); `--serve-args` passes extra flags to its `serve` command. A scenario whose server stops
 * answering /healthz for longer than its time limit is ended there and reported as unresponsive.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { repoPath } from '../../src/paths.js';
import { words } from '../lib/argv.js';
import { parseAttacksArgs } from './args.js';
import {
  closedByServer,
  deepWidget,
  HealthProbe,
  installWidgets,
  request,
  RssSampler,
  sleep,
  spawnApiServer,
  stalledRequest,
  unfinishedUploads,
  wideMap,
  widget,
  WIDGETS,
  type ServerProcess,
} from '../lib/attacks.js';

const crd = YAML.parse(readFileSync(repoPath('test/fixtures/widget-crd.yaml'), 'utf8'));

type Result = Record<string, unknown>;

interface Scenario {
  name: string;
  describe: string;
  /** Longest the attack may keep the server unresponsive before it is reported so and ended. */
  limitMs: number;
  run(srv: ServerProcess, limitMs: number): Promise<Result>;
}

const MiB = 2 ** 20;

/** Creates widget `name` (the attack's setup, not measured); fails unless the server made it. */
async function createWidget(srv: ServerProcess, name: string, extra: object): Promise<void> {
  const r = await request(srv, 'POST', WIDGETS, { body: widget(name, extra) });
  if (r.status !== 201) throw new Error(`setup: ${r.status} ${r.text.slice(0, 200)}`);
}

/** Widget "victim" with `extra` in its spec, then one JSON patch of `ops` to it: how the server answers and what it stores. */
async function jsonPatchAttack(srv: ServerProcess, limitMs: number, extra: object, ops: object[]): Promise<Result> {
  await createWidget(srv, 'victim', extra);
  const body = JSON.stringify(ops);
  const r = await request(srv, 'PATCH', `${WIDGETS}/victim`, { body, contentType: 'application/json-patch+json', timeoutMs: limitMs });
  return { patchBytes: body.length, status: r.status, ms: Math.round(r.ms), reply: r.text.slice(0, 300), storedBytes: await storedSize(srv, 'victim') };
}

const scenarios: Scenario[] = [
  {
    name: 'patch-copy',
    describe: 'JSON patch of 200 copy ops, each copying a 20,000-key map (~0.5 MB) into the same object',
    limitMs: 60_000,
    run: (srv, limitMs) =>
      jsonPatchAttack(
        srv,
        limitMs,
        { m: wideMap(20_000, 16) },
        Array.from({ length: 200 }, (_, i) => ({ op: 'copy', from: '/spec/extra/m', path: `/spec/extra/c${i}` })),
      ),
  },
  {
    name: 'patch-double',
    describe: 'JSON patch of 15 copy ops, each copying spec.extra into itself (the object doubles each time)',
    limitMs: 60_000,
    run: (srv, limitMs) =>
      jsonPatchAttack(
        srv,
        limitMs,
        { a: 'x'.repeat(1000) },
        Array.from({ length: 15 }, (_, i) => ({ op: 'copy', from: '/spec/extra', path: `/spec/extra/d${i}` })),
      ),
  },
  {
    name: 'watch-flood',
    describe: '300 HTTP/1.1 watches that never read, on a namespace holding one 1.4 MiB object',
    limitMs: 60_000,
    async run(srv) {
      await createWidget(srv, 'big', { blob: 'x'.repeat(1.4 * MiB) });
      const socks = [];
      for (let i = 0; i < 300; i++) socks.push(await stalledRequest(srv, `${WIDGETS}?watch=1`));
      await sleep(8000);
      const closed = await closedByServer(socks);
      for (const s of socks) s.destroy();
      return { watches: socks.length, closedByServer: closed };
    },
  },
  {
    name: 'watch-flood-live',
    describe: '300 HTTP/1.1 watches that never read, then 40 updates of a 1.4 MiB object (each live event shared by every watch)',
    limitMs: 60_000,
    async run(srv) {
      await createWidget(srv, 'big', { blob: '0' });
      const socks = [];
      for (let i = 0; i < 300; i++) socks.push(await stalledRequest(srv, `${WIDGETS}?watch=1`));
      await sleep(1000);
      const statuses: Record<string, number> = {};
      for (let i = 0; i < 40; i++) {
        const body = JSON.stringify({ spec: { extra: { blob: String(i % 10).repeat(1.4 * MiB) } } });
        const r = await request(srv, 'PATCH', `${WIDGETS}/big`, { body, contentType: 'application/merge-patch+json', timeoutMs: 30_000 });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      }
      await sleep(3000);
      const metrics = await request(srv, 'GET', '/metrics', { timeoutMs: 30_000 });
      const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics.text)?.[1] ?? NaN);
      const closed = await closedByServer(socks);
      for (const s of socks) s.destroy();
      return {
        watches: socks.length,
        patches: statuses,
        closedByServer: closed,
        terminatedWatchers: metric('apiserver_terminated_watchers_total'),
        watchBufferedBytesAtEnd: metric('apiserver_watch_buffered_bytes'),
      };
    },
  },
  {
    name: 'list-flood',
    describe: '5 HTTP/1.1 lists that never read, of a namespace holding 40 objects of 1.4 MiB',
    limitMs: 60_000,
    async run(srv) {
      for (let i = 0; i < 40; i++) await createWidget(srv, `big-${i}`, { blob: 'x'.repeat(1.4 * MiB) });
      const socks = [];
      for (let i = 0; i < 5; i++) socks.push(await stalledRequest(srv, WIDGETS));
      await sleep(8000);
      const closed = await closedByServer(socks);
      for (const s of socks) s.destroy();
      return { lists: socks.length, closedByServer: closed };
    },
  },
  {
    name: 'upload-flood',
    describe: '100 HTTP/2 uploads of 3 MiB that are never finished, on one connection',
    limitMs: 60_000,
    async run(srv) {
      const up = unfinishedUploads(srv, 100, 3 * MiB - 64 * 1024);
      await sleep(10_000);
      const answered = up.answered();
      up.session.destroy();
      return { streams: 100, answeredOrReset: answered, statuses: Object.fromEntries(up.statuses) };
    },
  },
  {
    name: 'deep-json',
    describe: 'bodies nested 9,000 and 100,000 levels deep',
    limitMs: 60_000,
    async run(srv, limitMs) {
      const out: Result = {};
      for (const depth of [9000, 100_000]) {
        const r = await request(srv, 'POST', WIDGETS, { body: deepWidget(`deep-${depth}`, depth), timeoutMs: limitMs });
        out[`depth${depth}`] = { status: r.status, ms: Math.round(r.ms), reply: r.text.slice(0, 160) };
      }
      return out;
    },
  },
];

async function storedSize(srv: ServerProcess, name: string): Promise<number | null> {
  const r = await request(srv, 'GET', `${WIDGETS}/${name}`, { timeoutMs: 60_000 });
  return r.status === 200 ? r.text.length : null;
}

const args = parseAttacksArgs(
  process.argv.slice(2),
  scenarios.map((s) => s.name),
);
const SERVE_ARGS = words(args.serveArgs);
const results: Result[] = [];
for (const sc of scenarios.filter((s) => !args.scenarios || args.scenarios.includes(s.name))) {
  const srv = await spawnApiServer({ main: args.serverMain, args: SERVE_ARGS });
  try {
    await installWidgets(srv, crd);
    const rss = new RssSampler(srv.pid);
    const health = new HealthProbe(srv, 100, sc.limitMs);
    const started = performance.now();
    let outcome: Result;
    try {
      outcome = await sc.run(srv, sc.limitMs);
    } catch (e) {
      outcome = { error: (e as Error).message };
    }
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    const h = await health.stop();
    const mem = rss.stop();
    const result = { scenario: sc.name, describe: sc.describe, seconds, rssMiB: mem, healthz: h, ...outcome };
    results.push(result);
    process.stderr.write(`${sc.name}: ${JSON.stringify(result)}\n`);
  } finally {
    await srv.stop();
  }
}
process.stdout.write(JSON.stringify({ benchmark: 'apiserver-attacks', serverMain: args.serverMain, node: process.version, results }, null, 2) + '\n');
