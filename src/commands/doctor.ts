/**
 * `nbswarm doctor`: what nbswarm needs, checked one by one — Docker reachable, Swarm state and
 * nodes, the policy valid, its images present (and what the operator pins them to), the ports of
 * `up` free or held by nbswarm, the API server reachable with the kubeconfig, clocks in step.
 * Each line is ok / warn / FAIL; a failed check says how to fix it. Exit code 1 when one failed.
 */
import { VersionApi } from '@kubernetes/client-node';
import type { Command } from 'commander';
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { connectDocker } from '../backends/docker.js';
import { loadPolicy } from '../config/policy.js';
import type { Policy } from '../config/types.js';
import { describePortInUse } from '../port-holder.js';
import { replyText } from '../util/http-reply.js';
import { clientKubeconfig } from './options.js';

export type CheckState = 'ok' | 'warn' | 'FAIL';

export interface CheckResult {
  name: string;
  state: CheckState;
  detail: string;
  /** What to do, for warn and FAIL. */
  fix?: string;
}

/** Clocks further apart than this make Lease renewals and Event times misleading. */
const MAX_SKEW_MS = 2000;
const DOCKER_TIMEOUT_MS = 5000;

const ok = (name: string, detail: string): CheckResult => ({ name, state: 'ok', detail });
const warn = (name: string, detail: string, fix: string): CheckResult => ({ name, state: 'warn', detail, fix });
const fail = (name: string, detail: string, fix: string): CheckResult => ({ name, state: 'FAIL', detail, fix });
const firstLine = (err: unknown) => ((err as Error)?.message ?? String(err)).split('\n')[0]!;

export function skewCheck(what: string, remote: number, before: number, after: number): CheckResult {
  // The remote time was taken somewhere between before and after: the skew is at least this far off.
  const skew = remote < before ? before - remote : remote > after ? remote - after : 0;
  const name = `clock (${what})`;
  if (skew <= MAX_SKEW_MS) return ok(name, `within ${Math.max(1, Math.ceil((after - before) / 1000))} s of this host`);
  return fail(name, `${(skew / 1000).toFixed(1)} s apart from this host`, 'run NTP on both hosts (systemctl enable --now systemd-timesyncd, or chrony)');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

async function dockerChecks(docker: Docker, policy: Policy | undefined): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  let info: any;
  const before = Date.now();
  try {
    info = await withTimeout(docker.info(), DOCKER_TIMEOUT_MS, 'docker info');
  } catch (err) {
    out.push(
      fail(
        'Docker',
        `not reachable: ${firstLine(err)}`,
        'start dockerd (systemctl start docker), or set DOCKER_HOST; this user needs access to /var/run/docker.sock (group docker)',
      ),
    );
    return out;
  }
  const after = Date.now();
  out.push(ok('Docker', `Docker ${info.ServerVersion} on ${info.Name}`));
  if (typeof info.SystemTime === 'string') out.push(skewCheck('Docker host', Date.parse(info.SystemTime), before, after));

  const swarm = info.Swarm ?? {};
  const wantsSwarm = policy?.backend === 'service';
  if (swarm.LocalNodeState === 'active' && swarm.ControlAvailable) {
    out.push(ok('Swarm', `active, this node is a manager (${swarm.Managers ?? '?'} managers, ${swarm.Nodes ?? '?'} nodes)`));
    try {
      const nodes: any[] = await docker.listNodes();
      const bad = nodes.filter((n) => n.Status?.State !== 'ready' || n.Spec?.Availability !== 'active');
      const ready = nodes.length - bad.length;
      if (!bad.length) out.push(ok('Swarm nodes', `${ready} ready and active`));
      else
        out.push(
          (ready ? warn : fail)(
            'Swarm nodes',
            `${ready} of ${nodes.length} ready and active; ${bad.map((n) => `${n.Description?.Hostname ?? n.ID} is ${n.Status?.State}/${n.Spec?.Availability}`).join(', ')}`,
            'start Docker on those nodes, or `docker node update --availability active NODE`',
          ),
        );
    } catch (err) {
      out.push(fail('Swarm nodes', `cannot list: ${firstLine(err)}`, 'run doctor against a Swarm manager'));
    }
  } else if (swarm.LocalNodeState === 'active') {
    out.push(
      (wantsSwarm ? fail : warn)('Swarm', 'this node is a worker: services are created on a manager', 'point DOCKER_HOST at a manager, or run nbswarm on one'),
    );
  } else {
    const detail = `not active (${swarm.LocalNodeState || 'inactive'}): the container backend runs plain containers`;
    if (wantsSwarm) out.push(fail('Swarm', detail, 'docker swarm init --advertise-addr 127.0.0.1, or set backend: container in the policy'));
    else out.push(ok('Swarm', detail));
  }

  if (policy) {
    const images = [
      ...new Set([
        policy.defaultImage,
        ...Object.values(policy.launchers ?? {})
          .map((l: any) => l?.image)
          .filter((i): i is string => typeof i === 'string'),
      ]),
    ];
    for (const ref of images) {
      try {
        const img: any = await docker.getImage(ref).inspect();
        const digest = (img.RepoDigests as string[] | undefined)?.[0];
        out.push(ok(`image ${ref}`, `present; servers are pinned to ${digest ?? String(img.Id).slice(0, 19)}`));
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 404) out.push(fail(`image ${ref}`, `cannot inspect: ${firstLine(err)}`, 'check that Docker answers (docker image inspect)'));
        else if (policy.pullPolicy === 'never')
          out.push(
            fail(
              `image ${ref}`,
              'not on this Docker, and the policy never pulls',
              `build or load it (bash scripts/setup.sh builds the local images; docker load -i FILE), or docker pull ${ref}`,
            ),
          );
        else out.push(warn(`image ${ref}`, 'not on this Docker yet: the first server pulls it (slow start)', `docker pull ${ref}`));
      }
    }
  }
  return out;
}

function portFree(port: number, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, address, () => srv.close(() => resolve(true)));
  });
}

async function portChecks(ports: Array<{ port: number; flag: string; nbswarm: () => Promise<boolean> }>, address: string): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const p of ports) {
    const name = `port ${p.port} (${p.flag})`;
    if (await portFree(p.port, address)) out.push(ok(name, `free on ${address}`));
    else if (await p.nbswarm().catch(() => false)) out.push(ok(name, `in use by a running nbswarm on ${address}`));
    else out.push(fail(name, describePortInUse(p.port, address), `stop that process, or start nbswarm up with ${p.flag} OTHER_PORT`));
  }
  return out;
}

async function apiChecks(kubeconfig: string | undefined): Promise<CheckResult[]> {
  let kc;
  try {
    kc = clientKubeconfig(kubeconfig).kc;
  } catch (err) {
    const e = err as { message: string; hint?: string };
    return [warn('API server', firstLine(e), e.hint ?? 'pass --kubeconfig FILE')];
  }
  const server = kc.getCurrentCluster()?.server ?? '?';
  const before = Date.now();
  try {
    const v = await withTimeout(kc.makeApiClient(VersionApi).getCode(), DOCKER_TIMEOUT_MS, 'GET /version');
    const after = Date.now();
    const out = [ok('API server', `${server} answers (${v.gitVersion})`)];
    const cluster = kc.getCurrentCluster();
    const ca = cluster?.caData ? Buffer.from(cluster.caData, 'base64') : cluster?.caFile ? readFileSync(cluster.caFile) : undefined;
    const date = (await get(new URL('/healthz', server).toString(), { ca }).catch(() => undefined))?.date;
    // The Date header has a 1 s resolution: widen the window by it.
    if (date) out.push(skewCheck('API server', Date.parse(date), before - 1000, after));
    return out;
  } catch (err) {
    return [
      fail('API server', `${server} does not answer: ${firstLine(err)}`, 'start it (nbswarm up), or pass the kubeconfig of the running one with --kubeconfig'),
    ];
  }
}

/** One GET with a 2 s limit: body and Date header. */
function get(url: string, o: { ca?: Buffer; insecure?: boolean }): Promise<{ status: number; text: string; date?: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { ca: o.ca, rejectUnauthorized: !o.insecure, timeout: 2000 }, (res) => {
      replyText(res, 4096).then((text) => resolve({ status: res.statusCode ?? 0, text, date: res.headers.date }), reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 2 s`)));
    req.on('error', reject);
  });
}

export interface DoctorOptions {
  policy?: string;
  kubeconfig?: string;
  port: string;
  statusPort: string;
  address: string;
}

export async function runDoctor(o: DoctorOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let policy: Policy | undefined;
  try {
    policy = loadPolicy({ file: o.policy, env: process.env });
    results.push(
      ok(
        'policy',
        `${o.policy ?? 'built-in defaults'}${process.env.NBSWARM_POLICY && !o.policy ? ` (NBSWARM_POLICY=${process.env.NBSWARM_POLICY})` : ''}: valid, backend ${policy.backend}, default image ${policy.defaultImage}`,
      ),
    );
  } catch (err) {
    // A policy error lists each problem on a line of its own: keep them all, on one line.
    const problems = ((err as Error).message ?? String(err))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const [head = '', ...each] = problems.map((l) => l.replace(/^- /, ''));
    results.push(
      fail(
        'policy',
        `${head.replace(/:$/, '')}${each.length ? `: ${each.join('; ')}` : ''}`,
        'fix the file as the message says; the README lists every policy key',
      ),
    );
  }
  results.push(...(await dockerChecks(connectDocker(), policy)));
  const api = Number(o.port);
  const status = Number(o.statusPort);
  // Only whether the holder answers as nbswarm does on loopback: its certificate is not checked here.
  const isNbswarm = async (url: string, text: RegExp) => text.test((await get(url, { insecure: true })).text);
  results.push(
    ...(await portChecks(
      [
        { port: api, flag: '--port', nbswarm: () => isNbswarm(`https://${o.address}:${api}/healthz`, /^ok$/) },
        { port: status, flag: '--status-port', nbswarm: () => isNbswarm(`http://${o.address}:${status}/healthz`, /^ok$/) },
      ].filter((p) => p.port > 0),
      o.address,
    )),
  );
  results.push(...(await apiChecks(o.kubeconfig)));
  return results;
}

export function formatResults(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results.map((r) => `${r.state.padEnd(4)}  ${r.name.padEnd(width)}  ${r.detail}${r.fix ? `\n      fix: ${r.fix}` : ''}`).join('\n') + '\n';
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check what nbswarm needs: Docker, Swarm and its nodes, the policy and its images, free ports, the API server, clocks; each failure says how to fix it',
    )
    .option('--policy <file>', 'the policy to check (default: $NBSWARM_POLICY or built-in defaults)')
    .option('--kubeconfig <file>', 'kubeconfig of the API server (default: $KUBECONFIG, ./.nbswarm/admin.kubeconfig, ~/.kube/config)')
    .option('--port <port>', 'the API server port `nbswarm up` uses (0: skip)', '6443')
    .option('--status-port <port>', 'the status page port (0: skip)', '6480')
    .option('--address <ip>', 'the address nbswarm up listens on', '127.0.0.1')
    .action(async (o: DoctorOptions) => {
      for (const [flag, v] of [
        ['--port', o.port],
        ['--status-port', o.statusPort],
      ] as const) {
        if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) {
          process.stderr.write(`nbswarm: ${flag} "${v.slice(0, 32)}" is not a port number (hint: 0–65535)\n`);
          process.exitCode = 2;
          return;
        }
      }
      const results = await runDoctor(o);
      process.stdout.write(formatResults(results));
      const failed = results.filter((r) => r.state === 'FAIL').length;
      process.stdout.write(failed ? `${failed} check${failed === 1 ? '' : 's'} failed\n` : 'all checks passed\n');
      process.exitCode = failed ? 1 : 0;
    });
}
