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
 * {presentation_path} is absolute: the server's home (or its git clone) joined with spec.app.path.
 *
 * After the launcher's args a proxied command line gets what VariableMixin.get_args adds, in its
 * order: --presentation-path, --conda-env, --ip, --port, the debug args and --debug, the proxy
 * settings (--request-timeout, --ready-timeout, --no-force-alive, --last-activity-interval,
 * --websocket-max-message-size, each only when not the proxy's default), and last what its
 * extra_args_fn adds (voila's {--}template=…; streamlit's {--}log_level=debug goes right after
 * `streamlit`). Git sources are not handed to the proxy (--repo): nbswarm clones before the
 * launcher starts, for direct and proxied launchers alike (see ./start-prelude.ts).
 */
import { posix } from 'node:path';
import type { Mode } from '../api/types.js';
import type { DashboardSettings, LauncherEntry } from './types.js';

export const DEFAULT_PROXY_COMMAND: readonly string[] = ['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main'];

/** cdsdashboards' bokeh_root_cmd line, shared by bokeh and panel (`extra` goes before the prefix, as there). */
function bokehRootArgs(extra: string[]): string[] {
  return [
    '--destport=0',
    'python3',
    '{-}m',
    'bokeh_root_cmd.main',
    '{presentation_path}',
    '{--}port={port}',
    '{--}allow-websocket-origin={origin_host}',
    ...extra,
    '{--}prefix={base_url}',
    '--ready-check-path=/ready-check',
  ];
}

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
  // cdsdashboards 0.6.3 ("Arguments to work with Voila 3"). No requiresPath: an empty path serves
  // the whole folder, as cdsdashboards' docs say to do.
  voila: {
    args: [
      '--destport=0',
      'python3',
      '{-}m',
      'voila',
      '{presentation_path}',
      '{--}port={port}',
      '{--}no-browser',
      '{--}Voila.base_url={base_url}/',
      '{--}Voila.server_url=/',
      '{--}Voila.ip=0.0.0.0',
      '{--}Voila.tornado_settings',
      'allow_origin={origin_host}',
      '--progressive',
      '--ready-check-path=/voila/static/',
    ],
    templateArgs: ['{--}template={template}'],
  },
  streamlit: {
    requiresPath: true,
    args: [
      '--destport=0',
      'streamlit',
      'run',
      '{presentation_path}',
      '{--}server.port={port}',
      '{--}server.headless=True',
      '{--}browser.serverAddress={origin_host}',
      '{--}browser.gatherUsageStats=false',
    ],
    // cdsdashboards: no {--}debug (streamlit has none); its log level goes before `run`.
    debugArgs: ['{--}log_level=debug'],
    debugArgsAfter: 'streamlit',
  },
  // cdsdashboards calls it 'plotlydash'.
  dash: {
    requiresPath: true,
    args: ['--destport=0', 'python3', '{-}m', 'plotlydash_tornado_cmd.main', '{presentation_path}', '{--}port={port}'],
    env: { DASH_REQUESTS_PATHNAME_PREFIX: '{base_url}/' },
  },
  bokeh: { requiresPath: true, args: bokehRootArgs([]) },
  panel: {
    requiresPath: true,
    args: bokehRootArgs(['{--}server=panel']),
  },
  rshiny: {
    requiresPath: true,
    args: ['--destport=0', 'python3', '{-}m', 'rshiny_server_cmd.main', '{presentation_path}', '{--}port={port}'],
  },
  custom: { direct: true, args: ['{command}'] },
};

/** Filled by the operator in direct launchers. */
const DIRECT_VARS = [
  'port',
  'ip',
  'home',
  'username',
  'servername',
  'base_url',
  'presentation_path',
  'presentation_dirname',
  'presentation_basename',
  '-',
  '--',
];
/** Left for jhsingle-native-proxy in proxied launchers. */
const PROXY_RUNTIME_VARS = ['port', 'base_url', 'origin_host', 'presentation_path', 'presentation_dirname', 'presentation_basename', '-', '--'];
/** Filled by the operator in proxied launchers. */
const PROXY_OPERATOR_VARS = ['ip', 'home', 'username', 'servername'];
/** Filled by the operator in launcher env (the proxy never sees env templates). */
const ENV_VARS_PROXIED = ['home', 'username', 'servername', 'base_url', 'presentation_path', 'presentation_dirname', 'presentation_basename'];
const ENV_VARS_DIRECT = [...ENV_VARS_PROXIED, 'port', 'ip'];
const ELEMENT_VARS = ['{args}', '{command}'];

const PH = /\{(--|-|[a-z_]+)\}/g;
/** Same as the resource's TOKEN_PATTERN (spec.app.template). */
const TEMPLATE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

export type ProxySettings = DashboardSettings['proxy'];

/** jhsingle-native-proxy's own defaults: a setting equal to one of them adds no flag (as in cdsdashboards). */
export const PROXY_DEFAULTS: Readonly<ProxySettings> = {
  requestTimeout: 0,
  readyTimeout: 0,
  forceAlive: true,
  lastActivityInterval: 300,
  websocketMaxMessageSize: 0,
};

export interface LaunchInput {
  /** Container port the server must answer on. */
  port: number;
  /** Address to bind: 0.0.0.0 in a bridge network, the published host IP with host networking. */
  ip: string;
  /** Home directory inside the container. */
  home: string;
  username: string;
  servername: string;
  /** spec.app.path, relative to `presentationRoot` (else home), already validated ("" when unset). */
  appPath: string;
  appArgs: string[];
  /** spec.command (mode custom, or an allowed override). */
  command: string[];
  /** Spawned by JupyterHub (JUPYTERHUB_API_TOKEN in the env). */
  hub: boolean;
  /** JUPYTERHUB_SERVICE_PREFIX without its trailing "/" ("" without a hub). */
  baseUrl: string;
  /** Absolute folder the presentation path is relative to (the git clone); default home. */
  presentationRoot?: string;
  /** Template name (spec.app.template, else the launcher's `template`): templateArgs are added. */
  template?: string;
  /** Conda env: proxied launchers hand it to the proxy (--conda-env); direct ones get it from the start prelude. */
  condaEnv?: string;
  /** dashboards.debug. */
  debug?: boolean;
  /** dashboards.proxy (proxied launchers only). */
  proxy?: ProxySettings;
}

export interface Launch {
  command: string[];
  env: Record<string, string>;
}

function presentationVars(input: LaunchInput): Record<string, string> {
  const root = input.presentationRoot ?? input.home;
  const path = input.appPath ? posix.join(root, input.appPath) : root;
  return {
    presentation_path: path,
    presentation_dirname: posix.dirname(path),
    presentation_basename: posix.basename(path),
  };
}

function directVars(input: LaunchInput): Record<string, string> {
  return {
    port: String(input.port),
    ip: input.ip,
    home: input.home,
    username: input.username,
    servername: input.servername,
    base_url: input.baseUrl,
    ...presentationVars(input),
    '-': '-',
    '--': '--',
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

/** The proxy flags cdsdashboards adds for settings that differ from jhsingle-native-proxy's defaults, in its order. */
export function proxySettingFlags(p: ProxySettings): string[] {
  const flags: string[] = [];
  if (p.requestTimeout) flags.push(`--request-timeout=${p.requestTimeout}`);
  if (p.readyTimeout) flags.push(`--ready-timeout=${p.readyTimeout}`);
  if (!p.forceAlive) flags.push('--no-force-alive');
  if (p.lastActivityInterval !== PROXY_DEFAULTS.lastActivityInterval) flags.push(`--last-activity-interval=${p.lastActivityInterval}`);
  if (p.websocketMaxMessageSize) flags.push(`--websocket-max-message-size=${p.websocketMaxMessageSize}`);
  return flags;
}

/** `args` with `extra` inserted after the first element equal to `after`, else appended. */
function insertAfter(args: string[], after: string | undefined, extra: string[]): string[] {
  const at = after === undefined ? -1 : args.indexOf(after);
  if (at < 0) return [...args, ...extra];
  return [...args.slice(0, at + 1), ...extra, ...args.slice(at + 1)];
}

/** Build the argv and launcher env of a server. Pure; the entry is assumed valid (see validateLauncher). */
export function buildLaunch(entry: LauncherEntry, input: LaunchInput, proxyCommand?: readonly string[]): Launch {
  const dv = directVars(input);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry.env ?? {})) env[k] = fill(v, dv);
  const template = input.template ?? entry.template;
  const withTemplate = template && entry.templateArgs?.length ? entry.templateArgs : [];

  if (entry.direct) {
    const argv = input.hub && entry.hubArgs ? entry.hubArgs : entry.args;
    const cmd = splice(
      argv,
      '{command}',
      input.command.map((c) => fill(c, dv)),
    ).out;
    const filled: string[] = [];
    for (const a of cmd) filled.push(a === '{args}' ? a : fill(a, dv));
    const withArgs = splice(filled, '{args}', input.appArgs);
    let command = withArgs.found ? withArgs.out : [...withArgs.out, ...input.appArgs];
    if (input.debug && entry.debugArgs?.length)
      command = insertAfter(
        command,
        entry.debugArgsAfter,
        entry.debugArgs.map((a) => fill(a, dv)),
      );
    command.push(...withTemplate.map((a) => fill(a, { ...dv, template: template! })));
    return { command, env };
  }

  const opVars: Record<string, string> = {};
  for (const k of PROXY_OPERATOR_VARS) opVars[k] = braceEscape(dv[k]!);
  const args = entry.args.map((a) => (a === '{args}' ? a : fill(a, opVars)));
  const withArgs = splice(args, '{args}', input.appArgs.map(proxyEscapeArg));
  let tail = withArgs.found ? withArgs.out : [...withArgs.out, ...input.appArgs.map(proxyEscapeArg)];
  tail.push(`--presentation-path=${presentationVars(input).presentation_path}`);
  if (input.condaEnv) tail.push(`--conda-env=${input.condaEnv}`);
  tail.push(`--ip=${input.ip}`, `--port=${input.port}`);
  if (!input.hub) tail.push('--authtype=none');
  if (input.debug) {
    const debugArgs = (entry.debugArgs ?? ['{--}debug']).map((a) => fill(a, opVars));
    if (entry.debugArgsAfter === undefined) tail.push(...debugArgs);
    tail.push('--debug');
    if (entry.debugArgsAfter !== undefined) tail = insertAfter(tail, entry.debugArgsAfter, debugArgs);
  }
  tail.push(...proxySettingFlags(input.proxy ?? PROXY_DEFAULTS));
  tail.push(...withTemplate.map((a) => fill(a, { ...opVars, template: braceEscape(template!) })));
  return { command: [...(entry.cmd ?? proxyCommand ?? DEFAULT_PROXY_COMMAND), ...tail], env };
}

/** Problems with one launcher entry, each prefixed with its policy key (launchers.<mode>…). */
export function validateLauncher(mode: string, entry: LauncherEntry): string[] {
  const errs: string[] = [];
  const key = `launchers.${mode}`;
  const argVars = entry.direct ? DIRECT_VARS : [...PROXY_RUNTIME_VARS, ...PROXY_OPERATOR_VARS];
  const envVars = entry.direct ? ENV_VARS_DIRECT : ENV_VARS_PROXIED;
  const checkArgs = (list: string[] | undefined, sub: string, extraVars: string[] = []): void => {
    if (list === undefined) return;
    list.forEach((a, i) => {
      if (ELEMENT_VARS.includes(a) && (sub === 'args' || sub === 'hubArgs')) {
        if (a === '{command}' && !entry.direct) errs.push(`${key}.${sub}[${i}]: {command} needs a direct launcher (direct: true)`);
        return;
      }
      for (const m of a.matchAll(PH)) {
        if (!argVars.includes(m[1]!) && !extraVars.includes(m[1]!)) {
          const known = [...argVars, ...extraVars].map((v) => `{${v}}`).join(' ');
          errs.push(`${key}.${sub}[${i}]: unknown placeholder ${m[0]} in "${a}" (${entry.direct ? 'direct' : 'proxied'} launchers know ${known} here)`);
        }
      }
    });
  };
  if (!entry.args || entry.args.length === 0) errs.push(`${key}.args: must be a non-empty list`);
  checkArgs(entry.args, 'args');
  checkArgs(entry.hubArgs, 'hubArgs');
  checkArgs(entry.debugArgs, 'debugArgs');
  checkArgs(entry.templateArgs, 'templateArgs', ['template']);
  if (entry.templateArgs?.length && !entry.templateArgs.some((a) => a.includes('{template}'))) {
    errs.push(`${key}.templateArgs: must use {template} (the template's name)`);
  }
  if (entry.template !== undefined && !TEMPLATE_NAME.test(entry.template)) {
    errs.push(`${key}.template: "${entry.template}" is not a template name (letters, digits, "._+-", not starting with "-")`);
  }
  if (entry.template !== undefined && !entry.templateArgs?.length) errs.push(`${key}.template: set templateArgs too, or the template is never passed`);
  if (entry.hubArgs && !entry.direct) errs.push(`${key}.hubArgs: only direct launchers have hubArgs (proxied ones use the proxy's OAuth)`);
  for (const [k, v] of Object.entries(entry.env ?? {})) {
    for (const m of v.matchAll(PH)) {
      if (!envVars.includes(m[1]!)) errs.push(`${key}.env.${k}: unknown placeholder ${m[0]} (launcher env knows ${envVars.map((x) => `{${x}}`).join(' ')})`);
    }
  }
  return errs;
}
