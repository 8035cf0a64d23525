import { expect } from 'chai';
import {
  BUILTIN_LAUNCHERS,
  PROXY_DEFAULTS,
  buildLaunch,
  proxyEscapeArg,
  proxySettingFlags,
  validateLauncher,
  type LaunchInput,
} from '../../src/config/launchers.js';
import { MODES, type Mode } from '../../src/api/types.js';

const base: LaunchInput = {
  port: 8888,
  ip: '0.0.0.0',
  home: '/home/jovyan',
  username: 'alice',
  servername: 'dash',
  appPath: 'work/app.py',
  appArgs: [],
  command: [],
  hub: false,
  baseUrl: '',
};
const PROXY = ['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main'];
const TAIL = ['--presentation-path=/home/jovyan/work/app.py', '--ip=0.0.0.0', '--port=8888'];

/**
 * cdsdashboards' builtin_presentation_launchers as they stand upstream (ideonate/cdsdashboards
 * HEAD 2fe9186, release 0.6.3, cdsdashboards/hubextension/spawners/variablemixin.py), transcribed
 * by hand: the built-in table must stay equal to it, argument by argument.
 */
const UPSTREAM: Record<string, { args: string[]; env?: Record<string, string>; debug_args?: string[] }> = {
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
  },
  streamlit: {
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
    debug_args: [],
  },
  plotlydash: {
    args: ['--destport=0', 'python3', '{-}m', 'plotlydash_tornado_cmd.main', '{presentation_path}', '{--}port={port}'],
    env: { DASH_REQUESTS_PATHNAME_PREFIX: '{base_url}/' },
  },
  bokeh: {
    args: [
      '--destport=0',
      'python3',
      '{-}m',
      'bokeh_root_cmd.main',
      '{presentation_path}',
      '{--}port={port}',
      '{--}allow-websocket-origin={origin_host}',
      '{--}prefix={base_url}',
      '--ready-check-path=/ready-check',
    ],
  },
  panel: {
    args: [
      '--destport=0',
      'python3',
      '{-}m',
      'bokeh_root_cmd.main',
      '{presentation_path}',
      '{--}port={port}',
      '{--}allow-websocket-origin={origin_host}',
      '{--}server=panel',
      '{--}prefix={base_url}',
      '--ready-check-path=/ready-check',
    ],
  },
  rshiny: {
    args: ['--destport=0', 'python3', '{-}m', 'rshiny_server_cmd.main', '{presentation_path}', '{--}port={port}'],
  },
};
/** nbswarm's mode name for cdsdashboards' presentation type. */
const NBSWARM_MODE: Record<string, Mode> = { voila: 'voila', streamlit: 'streamlit', plotlydash: 'dash', bokeh: 'bokeh', panel: 'panel', rshiny: 'rshiny' };

describe('launchers', () => {
  describe("the built-in dashboard table is cdsdashboards 0.6.3's", () => {
    for (const [type, up] of Object.entries(UPSTREAM)) {
      it(`${type}: the same args and env`, () => {
        const entry = BUILTIN_LAUNCHERS[NBSWARM_MODE[type]!];
        expect(entry.args).to.deep.equal(up.args);
        expect(entry.env).to.deep.equal(up.env);
        expect(entry.direct).to.equal(undefined);
      });
    }
  });

  // Every built-in command line, pinned (standalone: no JupyterHub in the env): the proxy, the
  // upstream launcher's args (checked above), then the proxy's own flags.
  const proxied = (type: string) => [...PROXY, ...UPSTREAM[type]!.args, ...TAIL, '--authtype=none'];
  const pinned: Record<Mode, string[]> = {
    notebook: ['start.sh', 'jupyter', 'notebook', '--ip=0.0.0.0', '--port=8888', '--no-browser'],
    lab: ['start.sh', 'jupyter', 'lab', '--ip=0.0.0.0', '--port=8888', '--no-browser'],
    voila: proxied('voila'),
    streamlit: proxied('streamlit'),
    dash: proxied('plotlydash'),
    bokeh: proxied('bokeh'),
    panel: proxied('panel'),
    rshiny: proxied('rshiny'),
    custom: ['httpd', '-f', '-p', '8888', '-h', '/www'],
  };
  for (const mode of Object.keys(pinned) as Mode[]) {
    it(`${mode}: ${pinned[mode].join(' ')}`, () => {
      const input = mode === 'custom' ? { ...base, command: ['httpd', '-f', '-p', '{port}', '-h', '/www'] } : base;
      expect(buildLaunch(BUILTIN_LAUNCHERS[mode], input).command).to.deep.equal(pinned[mode]);
    });
  }

  /**
   * Spawned by JupyterHub with every option cdsdashboards has: the upstream get_args order is
   * launcher args, --presentation-path, --conda-env, --ip, --port, debug args + --debug, the proxy
   * settings, then extra_args_fn (voila's template last; streamlit's log level after `streamlit`).
   */
  describe('with every cdsdashboards option (hub, conda env, debug, proxy settings, template)', () => {
    const all: LaunchInput = {
      ...base,
      hub: true,
      baseUrl: '/user/alice/dash',
      condaEnv: 'py39',
      debug: true,
      template: 'gridstack',
      proxy: { requestTimeout: 600, readyTimeout: 60, forceAlive: false, lastActivityInterval: 60, websocketMaxMessageSize: 104857600 },
    };
    const HUB_TAIL = ['--presentation-path=/home/jovyan/work/app.py', '--conda-env=py39', '--ip=0.0.0.0', '--port=8888'];
    const SETTINGS = [
      '--request-timeout=600',
      '--ready-timeout=60',
      '--no-force-alive',
      '--last-activity-interval=60',
      '--websocket-max-message-size=104857600',
    ];
    // Launcher args, the hub's tail, the launcher's debug args (upstream default `{--}debug`, none
    // for streamlit, which sets its log level after `streamlit`), --debug, the settings; voila's template last.
    const withAll = (type: string, extra: string[] = []) => [
      ...PROXY,
      ...UPSTREAM[type]!.args,
      ...HUB_TAIL,
      ...(UPSTREAM[type]!.debug_args ?? ['{--}debug']),
      '--debug',
      ...SETTINGS,
      ...extra,
    ];
    const streamlitArgs = [...UPSTREAM.streamlit!.args];
    streamlitArgs.splice(streamlitArgs.indexOf('streamlit') + 1, 0, '{--}log_level=debug');
    const full: Partial<Record<Mode, string[]>> = {
      voila: withAll('voila', ['{--}template=gridstack']),
      streamlit: [...PROXY, ...streamlitArgs, ...HUB_TAIL, '--debug', ...SETTINGS],
      dash: withAll('plotlydash'),
      bokeh: withAll('bokeh'),
      panel: withAll('panel'),
      rshiny: withAll('rshiny'),
    };
    for (const mode of Object.keys(full) as Mode[]) {
      it(`${mode}: ${full[mode]!.join(' ')}`, () => {
        // The template only means something to voila; the others have no templateArgs.
        expect(buildLaunch(BUILTIN_LAUNCHERS[mode], all).command).to.deep.equal(full[mode]);
      });
    }
    it("settings equal to the proxy's defaults add no flag (as cdsdashboards leaves them out)", () => {
      expect(proxySettingFlags(PROXY_DEFAULTS)).to.deep.equal([]);
      expect(proxySettingFlags({ ...PROXY_DEFAULTS, lastActivityInterval: 0 })).to.deep.equal(['--last-activity-interval=0']);
    });
    it('voila without a path serves the home (or the clone): the presentation path is the folder', () => {
      expect(BUILTIN_LAUNCHERS.voila.requiresPath).to.equal(undefined);
      const l = buildLaunch(BUILTIN_LAUNCHERS.voila, { ...base, appPath: '' });
      expect(l.command).to.include('--presentation-path=/home/jovyan');
      const clone = buildLaunch(BUILTIN_LAUNCHERS.voila, { ...base, appPath: 'notebooks', presentationRoot: '/home/jovyan/work/github-com-org-repo-git' });
      expect(clone.command).to.include('--presentation-path=/home/jovyan/work/github-com-org-repo-git/notebooks');
    });
    it('a direct launcher gets its debugArgs and templateArgs filled; no proxy flags', () => {
      const entry = { direct: true, args: ['app', '--port={port}'], debugArgs: ['-v'], templateArgs: ['--theme={template}'] };
      expect(buildLaunch(entry, { ...all, hub: false }).command).to.deep.equal(['app', '--port=8888', '-v', '--theme=gridstack']);
    });
  });

  it('every built-in mode of the resource has a valid launcher', () => {
    expect(Object.keys(BUILTIN_LAUNCHERS).sort()).to.deep.equal([...MODES].sort());
    for (const [mode, entry] of Object.entries(BUILTIN_LAUNCHERS)) expect(validateLauncher(mode, entry), mode).to.deep.equal([]);
  });

  describe('with JupyterHub (JUPYTERHUB_API_TOKEN in the env)', () => {
    const hub = { ...base, hub: true, baseUrl: '/user/alice/dash' };
    it('notebook and lab run jupyterhub-singleuser', () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.notebook, hub).command).to.deep.equal(['start.sh', 'jupyterhub-singleuser', '--ip=0.0.0.0', '--port=8888']);
      const lab = buildLaunch(BUILTIN_LAUNCHERS.lab, hub);
      expect(lab.command).to.deep.equal(['start.sh', 'jupyterhub-singleuser', '--ip=0.0.0.0', '--port=8888']);
      expect(lab.env).to.deep.equal({ JUPYTERHUB_DEFAULT_URL: '/lab' });
    });
    it("proxied dashboards keep the proxy's OAuth (no --authtype=none)", () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.voila, hub).command).not.to.include('--authtype=none');
      expect(buildLaunch(BUILTIN_LAUNCHERS.voila, hub).command.slice(-3)).to.deep.equal(TAIL);
    });
    it("dash gets DASH_REQUESTS_PATHNAME_PREFIX from the hub's service prefix", () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.dash, hub).env).to.deep.equal({ DASH_REQUESTS_PATHNAME_PREFIX: '/user/alice/dash/' });
      expect(buildLaunch(BUILTIN_LAUNCHERS.dash, base).env).to.deep.equal({ DASH_REQUESTS_PATHNAME_PREFIX: '/' });
    });
  });

  it('app args go to the app: escaped for the proxy, literal for direct launchers', () => {
    const withArgs = { ...base, appArgs: ['--theme=dark', '-v', 'a{b}'] };
    const streamlit = buildLaunch(BUILTIN_LAUNCHERS.streamlit, withArgs).command;
    expect(streamlit.slice(-7, -4)).to.deep.equal(['{--}theme=dark', '{-}v', 'a{{b}}']);
    expect(buildLaunch(BUILTIN_LAUNCHERS.notebook, withArgs).command.slice(-3)).to.deep.equal(['--theme=dark', '-v', 'a{b}']);
    expect(proxyEscapeArg('plain')).to.equal('plain');
  });

  it('"{args}" places the app args where the launcher says', () => {
    const entry = { direct: true, args: ['app', '{args}', '--port={port}'] };
    expect(buildLaunch(entry, { ...base, appArgs: ['x', 'y'] }).command).to.deep.equal(['app', 'x', 'y', '--port=8888']);
  });

  it("a proxied launcher uses its own cmd, else the policy's proxyCommand", () => {
    const entry = { args: ['voila', '{presentation_path}'] };
    expect(buildLaunch(entry, base, ['jhsingle-native-proxy']).command.slice(0, 2)).to.deep.equal(['jhsingle-native-proxy', 'voila']);
    expect(buildLaunch({ ...entry, cmd: ['/opt/proxy'] }, base, ['jhsingle-native-proxy']).command[0]).to.equal('/opt/proxy');
  });

  it('proxied launchers get {ip} {home} {username} {servername} from the operator, brace-escaped', () => {
    const entry = { args: ['app', '{--}user={username}', '{--}home={home}'] };
    expect(buildLaunch(entry, { ...base, username: 'a{b}' }).command.slice(4, 7)).to.deep.equal(['app', '{--}user=a{{b}}', '{--}home=/home/jovyan']);
  });

  describe('direct variant (no jhsingle-native-proxy)', () => {
    const rshinyDirect = { direct: true, requiresPath: true, args: ['R', '-e', "shiny::runApp('{presentation_path}', port={port}, host='0.0.0.0')"] };
    it('rshiny → R -e shiny::runApp(...) with every placeholder filled by the operator', () => {
      const l = buildLaunch(rshinyDirect, { ...base, appPath: 'work/shinyapp' });
      expect(l.command).to.deep.equal(['R', '-e', "shiny::runApp('/home/jovyan/work/shinyapp', port=8888, host='0.0.0.0')"]);
      expect(validateLauncher('rshiny', rshinyDirect)).to.deep.equal([]);
    });
    it('{-} and {--} become - and -- ; presentation dirname/basename are filled', () => {
      const entry = {
        direct: true,
        args: ['python3', '{-}m', 'voila', '{presentation_basename}', '{--}port={port}', '{--}cwd={presentation_dirname}', '{--}base={base_url}/'],
      };
      expect(buildLaunch(entry, { ...base, appPath: 'work/d/app.ipynb', baseUrl: '/user/alice' }).command).to.deep.equal([
        'python3',
        '-m',
        'voila',
        'app.ipynb',
        '--port=8888',
        '--cwd=/home/jovyan/work/d',
        '--base=/user/alice/',
      ]);
    });
    it('with host networking {ip} is the published host IP and {port} the allocated port', () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.notebook, { ...base, ip: '127.0.0.1', port: 20001 }).command).to.deep.equal([
        'start.sh',
        'jupyter',
        'notebook',
        '--ip=127.0.0.1',
        '--port=20001',
        '--no-browser',
      ]);
    });
    it("custom: unknown placeholders in the user's command stay literal", () => {
      const l = buildLaunch(BUILTIN_LAUNCHERS.custom, { ...base, command: ['sh', '-c', "awk '{print}' /x; echo {port} {user}"] });
      expect(l.command).to.deep.equal(['sh', '-c', "awk '{print}' /x; echo 8888 {user}"]);
    });
  });

  describe('validateLauncher', () => {
    it('names the key and the placeholder that is wrong', () => {
      expect(validateLauncher('rshiny', { direct: true, args: ['R', '{origin_host}'] })[0]).to.match(
        /^launchers\.rshiny\.args\[1\]: unknown placeholder \{origin_host\}/,
      );
      expect(validateLauncher('voila', { args: ['voila', '{bogus}'] })[0]).to.match(/^launchers\.voila\.args\[1\]: unknown placeholder \{bogus\}/);
      expect(validateLauncher('dash', { args: ['x'], env: { P: '{port}' } })[0]).to.match(/^launchers\.dash\.env\.P: unknown placeholder \{port\}/);
      expect(validateLauncher('voila', { args: ['{command}'] })[0]).to.match(/needs a direct launcher/);
      expect(validateLauncher('voila', { args: [] })[0]).to.equal('launchers.voila.args: must be a non-empty list');
      expect(validateLauncher('voila', { args: ['x'], templateArgs: ['--template'] })[0]).to.equal(
        "launchers.voila.templateArgs: must use {template} (the template's name)",
      );
      expect(validateLauncher('voila', { args: ['x'], template: '-rf', templateArgs: ['{--}template={template}'] })[0]).to.match(
        /^launchers\.voila\.template: "-rf" is not a template name/,
      );
      expect(validateLauncher('x', { args: ['x'], debugArgs: ['{args}'] })[0]).to.match(/^launchers\.x\.debugArgs\[0\]: unknown placeholder \{args\}/);
    });
  });
});
