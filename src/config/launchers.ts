/**
 * The launcher table: spec.mode → the argv (and extra env) a server starts with.
 *
 * Dashboard modes reproduce cdsdashboards' VariableMixin `builtin_presentation_launchers`
 * (ideonate/cdsdashboards, cdsdashboards/hubextension/spawners/variablemixin.py) for images that
 * follow its contract: the command is `start.sh python3 -m jhsingle_native_proxy.main` (the
 * `default_presentation_cmd` with Docker Stacks' start.sh hooks, as its docs advise for Docker
 * images), then the launcher's args, then what VariableMixin.get_args appends:
 * `--presentation-path=<path> --ip=<ip> --port=<port>`.
 *
 * Two kinds of launcher:
 * - proxied (default): the args are handed to jhsingle-native-proxy, which starts the real app on
 *   a random free port. {port} {base_url} {origin_host} {presentation_path} {presentation_dirname}
 *   {presentation_basename} {-} {--} are left in place for jhsingle-native-proxy to fill at run
 *   time ({port} there is the app's internal port, not the container port). `{-}`/`{--}` stand for
 *   "-"/"--": written literally, jhsingle-native-proxy's own option parser would take `--port=…`
 *   for itself; the placeholder hides it until the proxy builds the app's command line.
 *   The operator fills only {ip} {home} {username} {servername} (brace-escaped for the proxy's
 *   str.format). Without JupyterHub (no JUPYTERHUB_API_TOKEN in the env) `--authtype=none` is
 *   added, since the proxy's OAuth needs a hub.
 * - direct (`direct: true`): the args are the whole argv and the operator fills every
 *   placeholder, {port} being the container port and `{-}`/`{--}` becoming `-`/`--` (kept so a
 *   proxied launcher can be switched to direct without rewriting it). This is how an admin runs a
 *   framework without jhsingle-native-proxy, e.g. rshiny →
 *   ["R", "-e", "shiny::runApp('{presentation_path}', port={port}, host='{ip}')"].
 *
 * Element placeholders (the whole element): "{args}" splices spec.app.args (else they are appended
 * after the launcher's args), "{command}" splices spec.command (mode custom; direct only).
 * {presentation_path} is absolute: the server's home joined with spec.app.path.
 */
import { posix } from 'node:path';
import type { Mode } from '../api/types.js';
import type { LauncherEntry } from './types.js';

export const DEFAULT_PROXY_COMMAND: readonly string[] = ['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main'];

export const BUILTIN_LAUNCHERS: Readonly<Record<Mode, LauncherEntry>> = {
  // Jupyter Docker Stacks' start-notebook runs jupyterhub-singleuser only when the hub's token is
  // in the env; the same split here makes the mode mean one thing on every image with start.sh.
  notebook: {
    direct: true,
    args: ['start.sh', 'jupyter', 'notebook', '--ip={ip}', '--port={port}', '--no-browser'],
    hubArgs: ['start.sh', 'jupyterhub-singleuser', '--ip={ip}', '--port={port}'],
  },
  lab: {
    direct: true,
    args: ['start.sh', 'jupyter', 'lab', '--ip={ip}', '--port={port}', '--no-browser'],
    hubArgs: ['start.sh', 'jupyterhub-singleuser', '--ip={ip}', '--port={port}'],
    // jupyterhub-singleuser reads it (JupyterHub's Spawner.default_url); the hub's own value wins.
    env: { JUPYTERHUB_DEFAULT_URL: '/lab' },
  },
  voila: {
    requiresPath: true,
    args: [
      '--destport=0', 'python3', '{-}m', 'voila', '{presentation_path}',
      '{--}port={port}', '{--}no-browser', '{--}Voila.base_url={base_url}/', '{--}Voila.server_url=/',
      '--progressive', '--ready-check-path=/voila/static/',
    ],
  },
  streamlit: {
    requiresPath: true,
    args: [
      '--destport=0', 'streamlit', 'run', '{presentation_path}',
      '{--}server.port={port}', '{--}server.headless=True',
      '{--}browser.serverAddress={origin_host}', '{--}browser.gatherUsageStats=false',
    ],
  },
  // cdsdashboards calls it 'plotlydash'.
  dash: {
    requiresPath: true,
    args: ['--destport=0', 'python3', '{-}m', 'plotlydash_tornado_cmd.main', '{presentation_path}', '{--}port={port}'],
    env: { DASH_REQUESTS_PATHNAME_PREFIX: '{base_url}/' },
  },
  bokeh: {
    requiresPath: true,
    args: [
      '--destport=0', 'python3', '{-}m', 'bokeh_root_cmd.main', '{presentation_path}',
      '{--}port={port}', '{--}allow-websocket-origin={origin_host}', '{--}prefix={base_url}',
      '--ready-check-path=/ready-check',
    ],
  },
  panel: {
    requiresPath: true,
    args: [
      '--destport=0', 'python3', '{-}m', 'bokeh_root_cmd.main', '{presentation_path}',
      '{--}port={port}', '{--}allow-websocket-origin={origin_host}', '{--}server=panel', '{--}prefix={base_url}',
      '--ready-check-path=/ready-check',
    ],
  },
  rshiny: {
    requiresPath: true,
    args: ['--destport=0', 'python3', '{-}m', 'rshiny_server_cmd.main', '{presentation_path}', '{--}port={port}'],
  },
  custom: { direct: true, args: ['{command}'] },
};

/** Filled by the operator in direct launchers. */
const DIRECT_VARS = ['port', 'ip', 'home', 'username', 'servername', 'base_url',
  'presentation_path', 'presentation_dirname', 'presentation_basename', '-', '--'];
/** Left for jhsingle-native-proxy in proxied launchers. */
const PROXY_RUNTIME_VARS = ['port', 'base_url', 'origin_host', 'presentation_path', 'presentation_dirname',
  'presentation_basename', '-', '--'];
/** Filled by the operator in proxied launchers. */
const PROXY_OPERATOR_VARS = ['ip', 'home', 'username', 'servername'];
/** Filled by the operator in launcher env (the proxy never sees env templates). */
const ENV_VARS_PROXIED = ['home', 'username', 'servername', 'base_url', 'presentation_path', 'presentation_dirname',
  'presentation_basename'];
const ENV_VARS_DIRECT = [...ENV_VARS_PROXIED, 'port', 'ip'];
const ELEMENT_VARS = ['{args}', '{command}'];

const PH = /\{(--|-|[a-z_]+)\}/g;

export interface LaunchInput {
  /** Container port the server must answer on. */
  port: number;
  /** Address to bind: 0.0.0.0 in a bridge network, the published host IP with host networking. */
  ip: string;
  /** Home directory inside the container. */
  home: string;
  username: string;
  servername: string;
  /** spec.app.path, relative to home, already validated ("" when unset). */
  appPath: string;
  appArgs: string[];
  /** spec.command (mode custom, or an allowed override). */
  command: string[];
  /** Spawned by JupyterHub (JUPYTERHUB_API_TOKEN in the env). */
  hub: boolean;
  /** JUPYTERHUB_SERVICE_PREFIX without its trailing "/" ("" without a hub). */
  baseUrl: string;
}

export interface Launch {
  command: string[];
  env: Record<string, string>;
}

function presentationVars(input: LaunchInput): Record<string, string> {
  const path = input.appPath ? posix.join(input.home, input.appPath) : input.home;
  return {
    presentation_path: path,
    presentation_dirname: posix.dirname(path),
    presentation_basename: posix.basename(path),
  };
}

function directVars(input: LaunchInput): Record<string, string> {
  return {
    port: String(input.port), ip: input.ip, home: input.home, username: input.username,
    servername: input.servername, base_url: input.baseUrl, ...presentationVars(input), '-': '-', '--': '--',
  };
}

/** Replace known placeholders; unknown ones stay as written (user commands may contain braces). */
export function fill(s: string, vars: Record<string, string>): string {
  return s.replace(PH, (whole, key: string) => vars[key] ?? whole);
}

const braceEscape = (s: string): string => s.replace(/\{/g, '{{').replace(/\}/g, '}}');

/** An app argument as jhsingle-native-proxy must receive it to pass it through unchanged. */
export function proxyEscapeArg(arg: string): string {
  const e = braceEscape(arg);
  if (e.startsWith('--')) return '{--}' + e.slice(2);
  if (e.startsWith('-')) return '{-}' + e.slice(1);
  return e;
}

function splice(args: string[], element: string, items: string[]): { out: string[]; found: boolean } {
  const out: string[] = [];
  let found = false;
  for (const a of args) {
    if (a === element) {
      out.push(...items);
      found = true;
    } else out.push(a);
  }
  return { out, found };
}

/** Build the argv and launcher env of a server. Pure; the entry is assumed valid (see validateLauncher). */
export function buildLaunch(entry: LauncherEntry, input: LaunchInput, proxyCommand?: readonly string[]): Launch {
  const dv = directVars(input);
  const envVars: Record<string, string> = entry.direct ? dv : { ...dv };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry.env ?? {})) env[k] = fill(v, envVars);

  if (entry.direct) {
    const template = input.hub && entry.hubArgs ? entry.hubArgs : entry.args;
    const cmd = splice(template, '{command}', input.command.map((c) => fill(c, dv))).out;
    const filled: string[] = [];
    for (const a of cmd) filled.push(a === '{args}' ? a : fill(a, dv));
    const withArgs = splice(filled, '{args}', input.appArgs);
    return { command: withArgs.found ? withArgs.out : [...withArgs.out, ...input.appArgs], env };
  }

  const opVars: Record<string, string> = {};
  for (const k of PROXY_OPERATOR_VARS) opVars[k] = braceEscape(dv[k]!);
  const args = entry.args.map((a) => (a === '{args}' ? a : fill(a, opVars)));
  const withArgs = splice(args, '{args}', input.appArgs.map(proxyEscapeArg));
  const appPart = withArgs.found ? withArgs.out : [...withArgs.out, ...input.appArgs.map(proxyEscapeArg)];
  const command = [
    ...(entry.cmd ?? proxyCommand ?? DEFAULT_PROXY_COMMAND),
    ...appPart,
    `--presentation-path=${presentationVars(input).presentation_path}`,
    `--ip=${input.ip}`,
    `--port=${input.port}`,
  ];
  if (!input.hub) command.push('--authtype=none');
  return { command, env };
}

/** Problems with one launcher entry, each prefixed with its policy key (launchers.<mode>…). */
export function validateLauncher(mode: string, entry: LauncherEntry): string[] {
  const errs: string[] = [];
  const key = `launchers.${mode}`;
  const argVars = entry.direct ? DIRECT_VARS : [...PROXY_RUNTIME_VARS, ...PROXY_OPERATOR_VARS];
  const envVars = entry.direct ? ENV_VARS_DIRECT : ENV_VARS_PROXIED;
  const checkArgs = (list: string[] | undefined, sub: string): void => {
    if (list === undefined) return;
    list.forEach((a, i) => {
      if (ELEMENT_VARS.includes(a)) {
        if (a === '{command}' && !entry.direct) errs.push(`${key}.${sub}[${i}]: {command} needs a direct launcher (direct: true)`);
        return;
      }
      for (const m of a.matchAll(PH)) {
        if (!argVars.includes(m[1]!)) {
          errs.push(`${key}.${sub}[${i}]: unknown placeholder ${m[0]} in "${a}" (${entry.direct ? 'direct' : 'proxied'} launchers know ${argVars.map((v) => `{${v}}`).join(' ')})`);
        }
      }
    });
  };
  if (!entry.args || entry.args.length === 0) errs.push(`${key}.args: must be a non-empty list`);
  checkArgs(entry.args, 'args');
  checkArgs(entry.hubArgs, 'hubArgs');
  if (entry.hubArgs && !entry.direct) errs.push(`${key}.hubArgs: only direct launchers have hubArgs (proxied ones use the proxy's OAuth)`);
  for (const [k, v] of Object.entries(entry.env ?? {})) {
    for (const m of v.matchAll(PH)) {
      if (!envVars.includes(m[1]!)) errs.push(`${key}.env.${k}: unknown placeholder ${m[0]} (launcher env knows ${envVars.map((x) => `{${x}}`).join(' ')})`);
    }
  }
  return errs;
}
