/**
 * `nbswarm logs NAME [-n NS] [-f] [--since D] [--tail N]`: a NotebookServer's output through Docker
 * (the service's tasks, or the container) — how a kubectl user finds the Jupyter token or why a
 * server crashed, without the docker CLI. The server is looked up through the API (so the caller
 * needs read access to it), its Docker object by the uid label the operator puts on it.
 */
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { Command } from 'commander';
import Docker from 'dockerode';
import { GROUP, LABELS, PLURAL, VERSION } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import { clientKubeconfig, CommandError, explain } from './options.js';

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `--since`: a duration (30s, 10m, 2h, 1d) back from now, or an RFC 3339 time; Unix seconds. */
export function sinceSeconds(value: string, now = Date.now()): number {
  const d = DURATION.exec(value.trim());
  if (d) return Math.floor(now / 1000) - Number(d[1]) * UNIT_SECONDS[d[2]!]!;
  if (/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return Math.floor(t / 1000);
  }
  throw new CommandError(
    `--since "${value.slice(0, 64)}" is neither a duration nor a time`,
    'use e.g. --since 10m, --since 2h or --since 2026-01-31T09:00:00Z',
  );
}

/** `--tail`: a whole number of lines, or all. */
export function tailLines(value: string): number | 'all' {
  if (value === 'all') return 'all';
  if (/^\d{1,9}$/.test(value)) return Number(value);
  throw new CommandError(`--tail "${value.slice(0, 64)}" is not a number of lines`, 'use e.g. --tail 100, or --tail all');
}

export async function readServer(api: CustomObjectsApi, namespace: string, name: string, server: string): Promise<NotebookServer> {
  try {
    return (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as NotebookServer;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) throw new CommandError(`NotebookServer ${namespace}/${name} not found`, `\`kubectl get nbs -n ${namespace}\` lists the servers there`, 1);
    if (code === 401 || code === 403)
      throw new CommandError(
        `the API server at ${server} refused to read NotebookServer ${namespace}/${name} (HTTP ${code})`,
        'use a kubeconfig whose user may get notebookservers in that namespace',
      );
    throw new CommandError(
      `cannot reach the API server at ${server}: ${(err as Error).message.split('\n')[0]}`,
      'is `nbswarm up` (or your API server) running, and is this the right kubeconfig?',
    );
  }
}

interface LogSource {
  what: string;
  logs(opts: Record<string, unknown>): Promise<NodeJS.ReadableStream | Buffer>;
}

async function findSource(docker: Docker, obj: NotebookServer): Promise<LogSource> {
  const uid = obj.metadata?.uid ?? '';
  const where = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
  const filters = JSON.stringify({ label: [`${LABELS.uid}=${uid}`] });
  let services: Docker.Service[] = [];
  try {
    services = ((await docker.listServices({ filters })) as Array<{ ID: string }>).map((s) => docker.getService(s.ID));
  } catch (err) {
    // 503: not a Swarm manager — the container backend; anything else is Docker itself failing.
    if ((err as { statusCode?: number }).statusCode !== 503) throw err;
  }
  if (services[0]) {
    const svc = services[0];
    return { what: `service ${svc.id.slice(0, 12)}`, logs: (o) => svc.logs(o as Docker.ContainerLogsOptions) as Promise<NodeJS.ReadableStream> };
  }
  const containers = await docker.listContainers({ all: true, filters });
  containers.sort((a, b) => b.Created - a.Created);
  if (containers[0]) {
    const c = docker.getContainer(containers[0].Id);
    return { what: `container ${containers[0].Id.slice(0, 12)}`, logs: (o) => c.logs(o as unknown as Docker.ContainerLogsOptions & { follow: false }) };
  }
  const phase = obj.status?.phase ?? 'Pending';
  throw new CommandError(
    `NotebookServer ${where} has no Docker service or container on this Docker (phase ${phase})`,
    `\`kubectl describe nbs -n ${obj.metadata?.namespace} ${obj.metadata?.name}\` shows its Events; run nbswarm logs where the operator's Docker is (DOCKER_HOST)`,
    1,
  );
}

export interface LogsOptions {
  namespace: string;
  follow?: boolean;
  since?: string;
  tail: string;
  timestamps?: boolean;
  kubeconfig?: string;
}

export async function runLogs(
  name: string,
  o: LogsOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<void> {
  const since = o.since === undefined ? undefined : sinceSeconds(o.since);
  const tail = tailLines(o.tail);
  const { kc } = clientKubeconfig(o.kubeconfig);
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  const obj = await readServer(kc.makeApiClient(CustomObjectsApi), o.namespace, name, server);
  const docker = new Docker();
  let source: LogSource;
  try {
    source = await findSource(docker, obj);
  } catch (e) {
    if (e instanceof CommandError) throw e;
    throw new CommandError(
      `cannot reach Docker to read the logs of ${o.namespace}/${name}: ${(e as Error).message.split('\n')[0]}`,
      'is dockerd running, and may this user use /var/run/docker.sock (or DOCKER_HOST)?',
    );
  }
  const opts = { stdout: true, stderr: true, follow: !!o.follow, timestamps: !!o.timestamps, tail, ...(since !== undefined ? { since } : {}) };
  let stream: NodeJS.ReadableStream | Buffer;
  try {
    stream = await source.logs(opts);
  } catch (e) {
    throw new CommandError(
      `docker logs of ${source.what} (${o.namespace}/${name}): ${(e as Error).message.split('\n')[0]}`,
      'the server may have just been removed: `kubectl get nbs` shows it',
    );
  }
  if (Buffer.isBuffer(stream)) {
    // Without follow Docker answers with the whole (multiplexed) body at once.
    demuxBuffer(stream, out, err);
    return;
  }
  const s = stream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.demuxStream(s, out, err);
    s.on('end', () => resolve());
    s.on('error', reject);
    if (o.follow) {
      const stop = () => {
        (s as unknown as { destroy?: () => void }).destroy?.();
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }
  });
}

/** Docker's multiplexed log format: 8-byte frame headers (stream, 0, 0, 0, size); raw text if not. */
function demuxBuffer(buf: Buffer, out: NodeJS.WritableStream, err: NodeJS.WritableStream): void {
  let i = 0;
  const framed = buf.length >= 8 && (buf[0] === 1 || buf[0] === 2) && buf[1] === 0 && buf[2] === 0 && buf[3] === 0;
  if (!framed) {
    out.write(buf);
    return;
  }
  while (i + 8 <= buf.length) {
    const kind = buf[i]!;
    const size = buf.readUInt32BE(i + 4);
    const chunk = buf.subarray(i + 8, i + 8 + size);
    (kind === 2 ? err : out).write(chunk);
    i += 8 + size;
  }
}

export function registerLogsCommand(program: Command): void {
  program
    .command('logs')
    .description("print a NotebookServer's output (the server's container or Swarm tasks): its login token, why it crashed")
    .argument('<name>', 'the NotebookServer')
    .option('-n, --namespace <ns>', 'its namespace', 'default')
    .option('-f, --follow', 'keep printing new output until interrupted')
    .option('--since <when>', 'only output since a duration ago (30s, 10m, 2h, 1d) or an RFC 3339 time')
    .option('--tail <n>', 'only the last n lines (or all)', 'all')
    .option('-t, --timestamps', 'prefix each line with its time')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ./.nbswarm/admin.kubeconfig, ~/.kube/config)')
    .action(async (name: string, o: LogsOptions) => {
      try {
        await runLogs(name, o);
      } catch (e) {
        const { line, code } = explain(e);
        process.stderr.write(`${line}\n`);
        process.exitCode = code;
      }
    });
}
