import { expect } from 'chai';
import { BUILTIN_LAUNCHERS, buildLaunch, proxyEscapeArg, validateLauncher, type LaunchInput } from '../../src/config/launchers.js';
import { MODES, type Mode } from '../../src/api/types.js';

const base: LaunchInput = {
  port: 8888, ip: '0.0.0.0', home: '/home/jovyan', username: 'alice', servername: 'dash',
  appPath: 'work/app.py', appArgs: [], command: [], hub: false, baseUrl: '',
};
const PROXY = ['start.sh', 'python3', '-m', 'jhsingle_native_proxy.main'];
const TAIL = ['--presentation-path=/home/jovyan/work/app.py', '--ip=0.0.0.0', '--port=8888'];

describe('launchers', () => {
  // Every built-in command line, pinned (standalone: no JupyterHub in the env).
  const pinned: Record<Mode, string[]> = {
    notebook: ['start.sh', 'jupyter', 'notebook', '--ip=0.0.0.0', '--port=8888', '--no-browser'],
    lab: ['start.sh', 'jupyter', 'lab', '--ip=0.0.0.0', '--port=8888', '--no-browser'],
    voila: [...PROXY, '--destport=0', 'python3', '{-}m', 'voila', '{presentation_path}', '{--}port={port}', '{--}no-browser',
      '{--}Voila.base_url={base_url}/', '{--}Voila.server_url=/', '--progressive', '--ready-check-path=/voila/static/', ...TAIL, '--authtype=none'],
    streamlit: [...PROXY, '--destport=0', 'streamlit', 'run', '{presentation_path}', '{--}server.port={port}', '{--}server.headless=True',
      '{--}browser.serverAddress={origin_host}', '{--}browser.gatherUsageStats=false', ...TAIL, '--authtype=none'],
    dash: [...PROXY, '--destport=0', 'python3', '{-}m', 'plotlydash_tornado_cmd.main', '{presentation_path}', '{--}port={port}', ...TAIL, '--authtype=none'],
    bokeh: [...PROXY, '--destport=0', 'python3', '{-}m', 'bokeh_root_cmd.main', '{presentation_path}', '{--}port={port}',
      '{--}allow-websocket-origin={origin_host}', '{--}prefix={base_url}', '--ready-check-path=/ready-check', ...TAIL, '--authtype=none'],
    panel: [...PROXY, '--destport=0', 'python3', '{-}m', 'bokeh_root_cmd.main', '{presentation_path}', '{--}port={port}',
      '{--}allow-websocket-origin={origin_host}', '{--}server=panel', '{--}prefix={base_url}', '--ready-check-path=/ready-check', ...TAIL, '--authtype=none'],
    rshiny: [...PROXY, '--destport=0', 'python3', '{-}m', 'rshiny_server_cmd.main', '{presentation_path}', '{--}port={port}', ...TAIL, '--authtype=none'],
    custom: ['httpd', '-f', '-p', '8888', '-h', '/www'],
  };
  for (const mode of Object.keys(pinned) as Mode[]) {
    it(`${mode}: ${pinned[mode].join(' ')}`, () => {
      const input = mode === 'custom' ? { ...base, command: ['httpd', '-f', '-p', '{port}', '-h', '/www'] } : base;
      expect(buildLaunch(BUILTIN_LAUNCHERS[mode], input).command).to.deep.equal(pinned[mode]);
    });
  }

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
    it('proxied dashboards keep the proxy\'s OAuth (no --authtype=none)', () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.voila, hub).command).not.to.include('--authtype=none');
      expect(buildLaunch(BUILTIN_LAUNCHERS.voila, hub).command.slice(-3)).to.deep.equal(TAIL);
    });
    it('dash gets DASH_REQUESTS_PATHNAME_PREFIX from the hub\'s service prefix', () => {
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

  it('a proxied launcher uses its own cmd, else the policy\'s proxyCommand', () => {
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
      const entry = { direct: true, args: ['python3', '{-}m', 'voila', '{presentation_basename}', '{--}port={port}', '{--}cwd={presentation_dirname}', '{--}base={base_url}/'] };
      expect(buildLaunch(entry, { ...base, appPath: 'work/d/app.ipynb', baseUrl: '/user/alice' }).command)
        .to.deep.equal(['python3', '-m', 'voila', 'app.ipynb', '--port=8888', '--cwd=/home/jovyan/work/d', '--base=/user/alice/']);
    });
    it('with host networking {ip} is the published host IP and {port} the allocated port', () => {
      expect(buildLaunch(BUILTIN_LAUNCHERS.notebook, { ...base, ip: '127.0.0.1', port: 20001 }).command)
        .to.deep.equal(['start.sh', 'jupyter', 'notebook', '--ip=127.0.0.1', '--port=20001', '--no-browser']);
    });
    it('custom: unknown placeholders in the user\'s command stay literal', () => {
      const l = buildLaunch(BUILTIN_LAUNCHERS.custom, { ...base, command: ['sh', '-c', "awk '{print}' /x; echo {port} {user}"] });
      expect(l.command).to.deep.equal(['sh', '-c', "awk '{print}' /x; echo 8888 {user}"]);
    });
  });

  describe('validateLauncher', () => {
    it('names the key and the placeholder that is wrong', () => {
      expect(validateLauncher('rshiny', { direct: true, args: ['R', '{origin_host}'] })[0]).to.match(/^launchers\.rshiny\.args\[1\]: unknown placeholder \{origin_host\}/);
      expect(validateLauncher('voila', { args: ['voila', '{bogus}'] })[0]).to.match(/^launchers\.voila\.args\[1\]: unknown placeholder \{bogus\}/);
      expect(validateLauncher('dash', { args: ['x'], env: { P: '{port}' } })[0]).to.match(/^launchers\.dash\.env\.P: unknown placeholder \{port\}/);
      expect(validateLauncher('voila', { args: ['{command}'] })[0]).to.match(/needs a direct launcher/);
      expect(validateLauncher('voila', { args: [] })[0]).to.equal('launchers.voila.args: must be a non-empty list');
    });
  });
});
