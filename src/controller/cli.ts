/**
 * `nbswarm up` (embedded API server + CRD + operator on the local Docker) and
 * `nbswarm operator --kubeconfig …` (operator only, any Kubernetes API server).
 * Start-up failures print one line with a hint and exit 2 — no stack traces for expected problems.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import type { Backend } from '../backends/types.js';
import { PolicyError, enabledModes } from '../config/policy.js';
import { addLogOptions, explain, loggerFromOptions, type LogOptions } from '../commands/options.js';
import { installCrd } from './crd.js';
import type { Logger } from '../log.js';
import { startOperator, type OperatorHandle } from './operator.js';
import { addStatusPageOptions, bindStatusPage, Extras, serveMetrics, type StatusPageFlags } from './side-servers.js';
import { checkBackend, connectBackend, loadKubeconfig, portNumber, preflightApi, readPolicy, startEmbedded, type EmbeddedServer } from './startup.js';
import { upBanner } from '../up-banner.js';

function fail(err: unknown): never {
  let line: string;
  if (err instanceof PolicyError) line = `nbswarm: ${err.message}`;
  else line = explain(err).line;
  process.stderr.write(line + '\n');
  process.exit(2);
}

/** Runs every step in order, also after one fails (a failed start still frees what it took); the first error is thrown at the end. */
async function stopInOrder(steps: Array<() => Promise<unknown> | undefined>): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

function onSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) {
      log.warn(`second ${sig}: exiting now`);
      process.exit(130);
    }
    stopping = true;
    log.info(`${sig}: stopping`);
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error('stop failed', { error: (err as Error).message });
        process.exit(1);
      });
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

/**
 * The lease identity of `up`'s operator: the same for every start on one data directory, so `up`
 * restarted after a crash (kill -9 leaves the lease held) leads at once instead of waiting out the
 * lease of its dead predecessor. Only one `up` serves a data directory (its SQLite database).
 */
export function upIdentity(dataDir: string): string {
  return `${hostname()}-up-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}`;
}

export function registerOperatorCommands(program: Command): void {
  const up = program
    .command('up')
    .description('run everything on this host: embedded API server, the NotebookServer CRD, and the operator on the local Docker')
    .option('--data-dir <dir>', 'where the API server keeps its database, TLS and kubeconfig', './.nbswarm')
    .option('--port <port>', 'API server port', '6443')
    .option('--address <ip>', 'API server listen address', '127.0.0.1')
    .option('--policy <file>', 'operator policy (YAML); default $NBSWARM_POLICY or built-in defaults')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0');
  addStatusPageOptions(up);
  addLogOptions(up);
  up.action(
    async (o: { dataDir: string; port: string; address: string; policy?: string; backend?: string; metricsPort: string } & StatusPageFlags & LogOptions) => {
      const log = loggerFromOptions(o);
      let srv: EmbeddedServer | undefined;
      let op: OperatorHandle | undefined;
      let backend: Backend | undefined;
      const extras = new Extras();
      const stopEverything = () => stopInOrder([() => extras.close(), () => op?.stop(), () => backend?.close(), () => srv?.close()]);
      try {
        const policy = readPolicy(o.policy, o.backend);
        const registry = new Registry();
        const metricsPort = portNumber(o.metricsPort, '--metrics-port');
        if (metricsPort) extras.metrics = await serveMetrics(registry, () => op, metricsPort, log);
        // The status page binds now; the kubeconfig it checks tokens against exists once the API server runs.
        const kc = new KubeConfig();
        const loaded = () => (kc.getCurrentCluster() ? kc : undefined);
        extras.status = await bindStatusPage(o, up.getOptionValueSource('statusPort') !== 'default', loaded, undefined, log.child({ component: 'statuspage' }));
        const connected = await connectBackend(policy, log, registry);
        backend = connected.backend;
        await checkBackend(backend);
        const dataDir = resolve(o.dataDir);
        srv = await startEmbedded(dataDir, Number(o.port), o.address, log.child({ component: 'apiserver' }));
        kc.loadFromFile(srv.kubeconfigPath);
        const crd = await installCrd(kc, { modes: enabledModes(policy) });
        log.info(`CRD notebookservers.nbswarm.io ${crd}`);
        const opLog = log.child({ component: 'operator' });
        op = await startOperator({ kubeconfig: kc, policy, backend, log: opLog, registry, statusUrl: extras.status?.url, identity: upIdentity(dataDir) });
        await extras.feed(op, backend, connected, kc, undefined, log);
        process.stdout.write(upBanner({ apiUrl: srv.url, backend: backend.kind, kubeconfigPath: srv.kubeconfigPath, statusPageUrl: extras.status?.url }));
        onSignals(stopEverything, log);
      } catch (err) {
        await stopEverything().catch(() => undefined);
        fail(err);
      }
    },
  );

  const operator = program
    .command('operator')
    .description('run the operator against a Kubernetes API server (embedded or real) given a kubeconfig')
    .option('--kubeconfig <file>', 'kubeconfig of the API server to watch (default: $KUBECONFIG; inside a Kubernetes pod, its service account)')
    .option('--policy <file>', 'operator policy (YAML)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease (default "nbswarm": keep it where tenants cannot write)')
    .option('--backend <kind>', 'auto | service | container (overrides the policy)')
    .option('--metrics-port <port>', 'serve /metrics and /stats on 127.0.0.1:<port> (0 = off)', '0');
  addStatusPageOptions(operator);
  addLogOptions(operator);
  operator.action(
    async (
      o: { kubeconfig?: string; policy?: string; namespace?: string; leaseNamespace?: string; backend?: string; metricsPort: string } & StatusPageFlags &
        LogOptions,
    ) => {
      const log = loggerFromOptions(o);
      let backend: Backend | undefined;
      let op: OperatorHandle | undefined;
      const extras = new Extras();
      const stopEverything = () => stopInOrder([() => extras.close(), () => op?.stop(), () => backend?.close()]);
      try {
        const policy = readPolicy(o.policy, o.backend);
        const kc = loadKubeconfig(o.kubeconfig);
        const registry = new Registry();
        const metricsPort = portNumber(o.metricsPort, '--metrics-port');
        if (metricsPort) extras.metrics = await serveMetrics(registry, () => op, metricsPort, log);
        extras.status = await bindStatusPage(
          o,
          operator.getOptionValueSource('statusPort') !== 'default',
          () => kc,
          o.namespace,
          log.child({ component: 'statuspage' }),
        );
        await preflightApi(kc, o.namespace);
        const connected = await connectBackend(policy, log, registry);
        backend = connected.backend;
        await checkBackend(backend);
        op = await startOperator({
          kubeconfig: kc,
          policy,
          backend,
          log: log.child({ component: 'operator' }),
          namespace: o.namespace,
          leaseNamespace: o.leaseNamespace,
          registry,
          statusUrl: extras.status?.url,
          memoryAfterBurst: {},
        });
        await extras.feed(op, backend, connected, kc, o.namespace, log);
        if (extras.status) log.info(`status page on ${extras.status.url}`);
        onSignals(stopEverything, log);
      } catch (err) {
        await stopEverything().catch(() => undefined);
        fail(err);
      }
    },
  );
}
