/**
 * Shell metacharacters in a server's command and app args reach the process as literal argv
 * elements, against the real dockerd: nbswarm adds no shell that could interpret them (the
 * container is created with an argv, never a command string). The server's own script prints the
 * argv it received to its log; an argument interpreted by a shell would show up changed (command
 * substitution, expansion) or split (`;`, `&&`, `|`), and its injected command's output would appear.
 */
import { expect } from 'chai';
import { waitFor } from '../helpers/docker.js';
import { dockerExec, nbsYaml, setupEnv, waitReady, type Env } from './operator-harness.js';

/** The text of a non-TTY container log (Docker's 8-byte frame headers removed). */
function demux(buf: Buffer): string {
  let out = '';
  for (let i = 0; i + 8 <= buf.length;) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return out;
}

/** Every one of these must arrive as it is. */
export const HOSTILE_ARGS = [
  '$(echo INJECTED-subst)',
  '`echo INJECTED-backtick`',
  '; echo INJECTED-semicolon',
  '&& echo INJECTED-and',
  '|| echo INJECTED-or',
  '| echo INJECTED-pipe',
  '> /tmp/INJECTED-redirect',
  '\'single\' "double" \\backslash',
  '$HOME ${PATH} $0 $@',
  '* ? [a-z] ~ # comment',
  '-rf',
  '--port=1',
  '',
  'unicode ✓ \u202e',
];

describe('shell metacharacters in command and app args stay literal argv (container backend, real dockerd)', function () {
  this.timeout(120_000);
  let env: Env;
  before(async () => {
    env = await setupEnv('container');
  });
  after(async () => {
    await env?.close();
  });

  it('mode custom: spec.command and spec.app.args arrive element by element, none interpreted', async () => {
    // The server's own `sh -c` prints its positional parameters, one per line between markers,
    // then serves. Only the script is the server's; what follows it is data.
    const script = `echo ARGV-BEGIN; for a in "$@"; do printf 'ARG[%s]\\n' "$a"; done; echo ARGV-END; exec httpd -f -p {port} -h /www`;
    const [half1, half2] = [HOSTILE_ARGS.slice(0, 7), HOSTILE_ARGS.slice(7)];
    await env.kubectl(['apply', '-f', '-'], nbsYaml('meta', { user: 'meta', command: ['sh', '-c', script, 'argv0', ...half1], app: { args: half2 } }));
    const o = await waitReady(env, 'meta');
    const [obs] = await env.backend.find(o.metadata.uid!);
    const c = env.docker.getContainer(obs!.id);
    const inspect: any = await c.inspect();
    // What Docker runs: an argv (Path + Args), with the hostile elements untouched.
    expect([inspect.Path, ...inspect.Args].slice(-HOSTILE_ARGS.length)).to.deep.equal(HOSTILE_ARGS);
    const log = await waitFor(
      'the argv in the log',
      async () => {
        const text = demux(await c.logs({ stdout: true, stderr: true }));
        return text.includes('ARGV-END') ? text : undefined;
      },
      30_000,
    );
    const lines = log.split('\n');
    const printed = lines.slice(lines.indexOf('ARGV-BEGIN') + 1, lines.indexOf('ARGV-END')).map((l) => l.replace(/^ARG\[(.*)\]$/s, '$1'));
    expect(printed).to.deep.equal(HOSTILE_ARGS);
    expect(log).not.to.match(/^INJECTED/m);
    // Nothing ran a redirection either.
    expect(await dockerExec(env.docker, obs!.id, ['ls', '-a', '/tmp', '/'])).not.to.contain('INJECTED');
  });
});
