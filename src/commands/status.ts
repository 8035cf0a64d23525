/**
 * `nbswarm status [-n NS] [--kubeconfig F]`: the fleet and the operator in the terminal. The
 * servers come from one list call; the operator from its Lease (holder, last renewal, the status
 * page it announces) and that page's /api/health (queue, reconciles, Docker).
 */
import { CoordinationV1Api, CustomObjectsApi, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { GROUP, LEASE_STATUS_URL, PLURAL, VERSION } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import { safeHttpUrl, serverRow, START_STAGES, type HealthView, type ServerRow } from '../statuspage/model.js';
import { clientKubeconfig, CommandError, explain } from './options.js';

const HEALTH_TIMEOUT_MS = 3000;
/** A lease not renewed for this long has no live holder (the operator renews every few seconds). */
const LEASE_STALE_MS = 30_000;

export function age(fromIso: string, now = Date.now()): string {
  const t = Date.parse(fromIso);
  if (Number.isNaN(t)) return '?';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Columns padded to their widest cell, as kubectl prints them. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function phaseSummary(rows: ServerRow[]): string {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.phase || 'Unknown', (counts.get(r.phase || 'Unknown') ?? 0) + 1);
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${n} ${p}`);
  return `${rows.length} NotebookServer${rows.length === 1 ? '' : 's'}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

function phaseCell(r: ServerRow): string {
  if (r.stage >= 0 && r.phase !== 'Running') return `${r.phase || 'Pending'} (${START_STAGES[r.stage]!.label})`;
  return r.phase || 'Pending';
}

export function serversTable(rows: ServerRow[], withNamespace: boolean, now = Date.now()): string {
  const head = [...(withNamespace ? ['NAMESPACE'] : []), 'NAME', 'USER', 'MODE', 'PHASE', 'NODE', 'ENDPOINT', 'AGE'];
  const body = rows.map((r) => [
    ...(withNamespace ? [r.namespace] : []),
    r.name,
    r.user || '-',
    r.mode || '-',
    phaseCell(r),
    r.node || '-',
    r.url || '-',
    age(r.createdAt, now),
  ]);
  return table([head, ...body]);
}

async function operatorLines(kc: KubeConfig, now: number): Promise<string[]> {
  let leases: V1Lease[];
  try {
    leases = (await kc.makeApiClient(CoordinationV1Api).listLeaseForAllNamespaces()).items;
  } catch (err) {
    const code = (err as { code?: number }).code;
    return [
      `Operator: cannot read Leases (${code ? `HTTP ${code}` : (err as Error).message.split('\n')[0]}); the kubeconfig user needs list on leases to see it`,
    ];
  }
  const ours = leases.filter((l) => l.metadata?.annotations?.[LEASE_STATUS_URL] !== undefined || l.metadata?.name?.startsWith('nbswarm-operator'));
  if (!ours.length) return ['Operator: none found (no nbswarm Lease): start one with `nbswarm up` or `nbswarm operator`'];
  const lines: string[] = [];
  for (const l of ours) {
    const holder = l.spec?.holderIdentity ?? '';
    const renewed = l.spec?.renewTime ? new Date(l.spec.renewTime as unknown as string).getTime() : NaN;
    const live = holder !== '' && now - renewed < LEASE_STALE_MS;
    const where = `${l.metadata?.namespace}/${l.metadata?.name}`;
    if (!live) {
      lines.push(
        `Operator: NO LEADER on Lease ${where}${holder ? ` (last holder ${holder}, renewed ${age(new Date(renewed).toISOString(), now)} ago)` : ''}: is \`nbswarm up\` / \`nbswarm operator\` running?`,
      );
      continue;
    }
    const url = safeHttpUrl(l.metadata?.annotations?.[LEASE_STATUS_URL]);
    lines.push(`Operator: leader ${holder} (Lease ${where}, renewed ${age(new Date(renewed).toISOString(), now)} ago)${url ? `, status page ${url}` : ''}`);
    if (!url) {
      lines.push('  health: not published (that operator runs without its status page: --status-port 0)');
      continue;
    }
    const health = await fetchHealth(kc, url);
    if (typeof health === 'string') lines.push(`  health: ${health}`);
    else {
      const docker = health.dockerReachable === null ? 'not checked yet' : health.dockerReachable ? 'reachable' : 'UNREACHABLE';
      lines.push(
        `  work queue ${health.queueDepth} waiting, ${health.inFlight} running, ${health.delayed} delayed; ${health.reconcilesPerSecond} reconciles/s, ${health.reconcileErrors} errors`,
      );
      lines.push(`  Docker ${docker} (${health.backend} backend); ${health.servers} servers cached${health.synced ? '' : ', caches still syncing'}`);
    }
  }
  return lines;
}

async function fetchHealth(kc: KubeConfig, pageUrl: string): Promise<HealthView | string> {
  const token = kc.getCurrentUser()?.token;
  try {
    const res = await fetch(new URL('api/health', pageUrl), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
    });
    if (res.status === 401) return `the status page ${pageUrl} did not accept this kubeconfig's credentials`;
    if (!res.ok) return `the status page answered HTTP ${res.status}`;
    const h = (await res.json()) as HealthView & { starting?: boolean };
    return h.starting ? 'the operator is still starting' : h;
  } catch (err) {
    return `cannot reach the status page ${pageUrl} (${(err as Error).message.split('\n')[0]}): it listens on the operator's host`;
  }
}

export async function runStatus(o: { namespace?: string; kubeconfig?: string }, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const { kc } = clientKubeconfig(o.kubeconfig);
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  const api = kc.makeApiClient(CustomObjectsApi);
  let items: NotebookServer[];
  try {
    const list = (
      o.namespace
        ? await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: o.namespace, plural: PLURAL })
        : await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
    ) as { items: NotebookServer[] };
    items = list.items ?? [];
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 401 || code === 403)
      throw new CommandError(
        `the API server at ${server} refused to list NotebookServers (HTTP ${code})`,
        o.namespace ? 'use a kubeconfig whose user may list notebookservers there' : 'pass -n NAMESPACE, or use a kubeconfig allowed to list across namespaces',
      );
    if (code === 404) throw new CommandError(`the API server at ${server} does not know NotebookServers`, 'apply the CRD: kubectl apply -f crds/');
    throw new CommandError(
      `cannot reach the API server at ${server}: ${(err as Error).message.split('\n')[0]}`,
      'is `nbswarm up` (or your API server) running, and is this the right kubeconfig? `nbswarm doctor` checks',
    );
  }
  const now = Date.now();
  const rows = items.map(serverRow).sort((a, b) => a.key.localeCompare(b.key));
  let text = `${phaseSummary(rows)}${o.namespace ? ` in ${o.namespace}` : ''}\n`;
  if (rows.length) text += '\n' + serversTable(rows, !o.namespace, now);
  text += '\n' + (await operatorLines(kc, now)).join('\n') + '\n';
  out.write(text);
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the NotebookServers (all namespaces, or -n) and the operator: leader, work queue, Docker')
    .option('-n, --namespace <ns>', 'only this namespace')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ./.nbswarm/admin.kubeconfig, ~/.kube/config)')
    .action(async (o: { namespace?: string; kubeconfig?: string }) => {
      try {
        await runStatus(o);
      } catch (e) {
        const { line, code } = explain(e);
        process.stderr.write(`${line}\n`);
        process.exitCode = code;
      }
    });
}
