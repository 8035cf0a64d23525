/**
 * The operator as users run it (P4): `node dist/nbswarm.mjs operator`, the bundled CLI, in its
 * own process, so its RSS is the shipped operator's alone. Same policy as the in-process runs
 * (written to a file for --policy), Docker reached through the bench's counting proxy
 * (DOCKER_HOST), queue figures read from its /stats endpoint (--metrics-port).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Policy } from '../../src/config/types.js';
import type { BackendKind } from '../../src/backends/types.js';
import { repoPath } from '../../src/paths.js';
import { freeLoopbackPort } from '../../src/controller/netutil.js';
import { procRss } from './proc.js';
import { terminate } from './child-rpc.js';
import { sleep } from './stats.js';
import { words } from './argv.js';

export interface CliOperator {
  pid: number;
  /** The operator's stats() as its /stats endpoint serves them. */
  stats(): Promise<any>;
  /** Resident set size now (bytes, from /proc): what the operator costs the host. */
  rssBytes(): number;
  stop(): Promise<void>;
}

export async function startOperatorCli(opts: { kubeconfigPath: string; policy: Policy; kind: BackendKind; dockerSocket: string }): Promise<CliOperator> {
  const entry = repoPath('dist', 'nbswarm.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'nbswarm-bench-op-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, JSON.stringify(opts.policy)); // JSON is YAML
  const logFile = join(dir, 'operator.log');
  const out = openSync(logFile, 'a');
  const port = await freeLoopbackPort();
  // NBSWARM_BENCH_OPERATOR_NODE_ARGS: node flags for the operator (e.g. `--trace-gc` or `--cpu-prof
  // --cpu-prof-dir=/tmp/prof`), to explain its figures.
  const nodeArgs = words(process.env.NBSWARM_BENCH_OPERATOR_NODE_ARGS);
  const child = spawn(
    process.execPath,
    [...nodeArgs, entry, 'operator', '--kubeconfig', opts.kubeconfigPath, '--policy', policyFile, '--backend', opts.kind, '--metrics-port', String(port)],
    {
      env: { ...process.env, DOCKER_HOST: `unix://${opts.dockerSocket}`, NBSWARM_LOG_LEVEL: process.env.NBSWARM_BENCH_LOG_LEVEL ?? 'warn' },
      stdio: ['ignore', out, out],
    },
  );
  closeSync(out);
  const logTail = () => readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
  const url = `http://127.0.0.1:${port}`;
  const stats = async () => {
    const res = await fetch(`${url}/stats`);
    if (!res.ok) throw new Error(`operator /stats: HTTP ${res.status}`);
    return res.json();
  };
  const stop = async () => {
    await terminate(child, 15_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const failed =
      child.exitCode !== null
        ? `operator (${entry}) exited ${child.exitCode} at start`
        : Date.now() > deadline
          ? `operator did not serve ${url}/stats within 60 s`
          : undefined;
    if (failed) {
      const err = new Error(`${failed}:\n${logTail()}`);
      await stop();
      throw err;
    }
    try {
      await stats();
      break;
    } catch {
      await sleep(100);
    }
  }
  return { pid: child.pid!, stats, rssBytes: () => procRss(child.pid!), stop };
}
