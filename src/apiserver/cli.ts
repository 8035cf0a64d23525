import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import YAML from 'yaml';
import { addLogOptions, loggerFromOptions, type LogOptions } from '../commands/options.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
// The server's modules (SQLite, ajv, forge…) load when a command needs them: `nbswarm operator`
// never does.
const server = () => import('./index.js');

/** `serve` flags (commander's camel-case names) that set a ServerLimits field. */
const LIMIT_FLAGS = [
  ['requestTimeout', 'requestTimeoutSeconds'],
  ['headersTimeout', 'headersTimeoutSeconds'],
  ['idleTimeout', 'idleTimeoutSeconds'],
  ['maxInflightPerUser', 'maxInflightPerUser'],
  ['maxWatchesPerUser', 'maxWatchesPerUser'],
  ['maxConnections', 'maxConnections'],
  ['maxConnectionsPerClient', 'maxConnectionsPerClient'],
] as const satisfies readonly (readonly [string, keyof ServerLimits])[];

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** The URL from NBSWARM_ADDRESS / NBSWARM_PORT, when either is set. */
function kubeconfigServerFromEnv(): string | undefined {
  if (env('NBSWARM_ADDRESS') === undefined && env('NBSWARM_PORT') === undefined) return undefined;
  return `https://${env('NBSWARM_ADDRESS') ?? '127.0.0.1'}:${env('NBSWARM_PORT') ?? '6443'}`;
}

/**
 * The server URL of the API server last started on `dataDir` (`up --port N` or `serve` write it
 * into admin.kubeconfig at every start), so `kubeconfig` points where that server listens.
 */
export function serverInDataDir(dataDir: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'admin.kubeconfig'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const doc = YAML.parse(text) as { clusters?: Array<{ cluster?: { server?: unknown } }> };
    const server = doc?.clusters?.[0]?.cluster?.server;
    return typeof server === 'string' && /^https?:\/\//.test(server) ? server : undefined;
  } catch {
    return undefined;
  }
}

/** Adds `serve` and `kubeconfig` to the nbswarm CLI. */
export function registerApiServerCommands(program: Command): void {
  const serve = program
    .command('serve')
    .description('run the embedded Kubernetes-compatible API server')
    .option('--address <host>', 'listen address (env NBSWARM_ADDRESS)', env('NBSWARM_ADDRESS') ?? '127.0.0.1')
    .option('--port <port>', 'listen port, 0 = random (env NBSWARM_PORT)', env('NBSWARM_PORT') ?? '6443')
    .option('--data-dir <dir>', 'state directory: database, CA, tokens, kubeconfig (env NBSWARM_DATA_DIR)', env('NBSWARM_DATA_DIR') ?? './.nbswarm')
    .option('--token-file <file>', 'token file: lines of token,user,role[,namespaces] (env NBSWARM_TOKEN_FILE)', env('NBSWARM_TOKEN_FILE'))
    .option('--watch-window <n>', 'changes kept for watch resumption', '10000')
    .option(
      '--synchronous <mode>',
      'SQLite synchronous: NORMAL survives a crash of the process, FULL also an OS crash or power loss (fsync per commit) (env NBSWARM_SYNCHRONOUS)',
      env('NBSWARM_SYNCHRONOUS') ?? 'NORMAL',
    )
    .option(
      '--request-timeout <seconds>',
      `a request that is not a watch must be received and answered within this (default ${DEFAULT_LIMITS.requestTimeoutSeconds})`,
    )
    .option('--headers-timeout <seconds>', `a request's headers must arrive within this (default ${DEFAULT_LIMITS.headersTimeoutSeconds})`)
    .option(
      '--idle-timeout <seconds>',
      `idle connections (HTTP/1.1 between requests, HTTP/2 without streams) are closed after this (default ${DEFAULT_LIMITS.idleTimeoutSeconds})`,
    )
    .option('--max-inflight-per-user <n>', `requests one user may have in progress, watches aside (default ${DEFAULT_LIMITS.maxInflightPerUser})`)
    .option('--max-watches-per-user <n>', `watches one user may have open (default ${DEFAULT_LIMITS.maxWatchesPerUser})`)
    .option(
      '--max-connections <n>',
      `connections held at once, all clients together, lowered to leave 1024 open files for the rest (default ${DEFAULT_LIMITS.maxConnections})`,
    )
    .option('--max-connections-per-client <n>', `connections one client address may hold at once (default ${DEFAULT_LIMITS.maxConnectionsPerClient})`);
  addLogOptions(serve).action(
    async (
      o: { address: string; port: string; dataDir: string; tokenFile?: string; watchWindow: string; synchronous: string } & LogOptions &
        Record<(typeof LIMIT_FLAGS)[number][0], string | undefined>,
    ) => {
      const synchronous = o.synchronous.toUpperCase();
      if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
        process.stderr.write(`nbswarm: --synchronous must be NORMAL or FULL, not ${JSON.stringify(o.synchronous)}\n`);
        process.exitCode = 2;
        return;
      }
      const limits: Partial<ServerLimits> = {};
      for (const [flag, key] of LIMIT_FLAGS) {
        const v = o[flag];
        if (v === undefined) continue;
        const n = /^[1-9][0-9]*$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n)) {
          process.stderr.write(`nbswarm: --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a whole number above 0, not ${JSON.stringify(v)}\n`);
          process.exitCode = 2;
          return;
        }
        limits[key] = n;
      }
      // stdout carries the one line tools read ({"url", "kubeconfig"}); logs go to stderr.
      const log = loggerFromOptions(o, { stderr: true }).child({ component: 'apiserver' });
      const { startApiServer } = await server();
      const srv = await startApiServer({
        dataDir: o.dataDir,
        host: o.address,
        port: Number(o.port),
        tokenFile: o.tokenFile,
        watchWindow: Number(o.watchWindow),
        synchronous,
        log,
        limits,
      });
      process.stdout.write(JSON.stringify({ url: srv.url, kubeconfig: srv.kubeconfigPath }) + '\n');
      const stop = () => {
        void srv.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  );
  program
    .command('kubeconfig')
    .description('print a kubeconfig for a token-file user')
    .option('--user <name>', 'user name from the token file', 'admin')
    .option(
      '--server <url>',
      'API server URL (default: the server last started on --data-dir, as its admin.kubeconfig says; else NBSWARM_ADDRESS:NBSWARM_PORT, 127.0.0.1:6443)',
    )
    .option('--namespace <ns>', 'default namespace in the context')
    .option('--data-dir <dir>', 'state directory (env NBSWARM_DATA_DIR)', env('NBSWARM_DATA_DIR') ?? './.nbswarm')
    .option('--token-file <file>', 'token file (env NBSWARM_TOKEN_FILE)', env('NBSWARM_TOKEN_FILE'))
    .action(async (o: { user: string; server?: string; namespace?: string; dataDir: string; tokenFile?: string }) => {
      const { TokenAuth } = await import('./auth/tokens.js');
      const { ensureTls } = await import('./tls.js');
      const { buildKubeconfig } = await server();
      const dataDir = resolve(o.dataDir);
      const tokenFile = resolve(o.tokenFile ?? join(dataDir, 'tokens.csv'));
      const token = new TokenAuth(tokenFile, new Map()).userToken(o.user);
      if (!token) {
        process.stderr.write(`nbswarm: no user "${o.user}" in ${tokenFile}\n`);
        process.exitCode = 1;
        return;
      }
      let caPem: string;
      try {
        caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
      } catch {
        caPem = ensureTls(dataDir, []).caPem;
      }
      const serverUrl = o.server ?? kubeconfigServerFromEnv() ?? serverInDataDir(dataDir) ?? 'https://127.0.0.1:6443';
      process.stdout.write(buildKubeconfig({ server: serverUrl, caPem, user: o.user, token, namespace: o.namespace }));
    });
}
