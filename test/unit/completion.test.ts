/** The bash completion script, run in a real bash: commands and each command's own options. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/up.js';

let script = '';

function complete(words: string[]): string[] {
  const line = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _nbswarm; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', line], { encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('shell completion', function () {
  this.timeout(30_000);
  before(() => {
    script = spawnSync(process.execPath, [CLI, 'completion', 'bash'], { encoding: 'utf8' }).stdout;
    expect(script).to.contain('complete -F _nbswarm nbswarm');
  });

  it('completes command names', () => {
    expect(complete(['nbswarm', 'lo'])).to.deep.equal(['logs']);
    expect(complete(['nbswarm', 'd'])).to.deep.equal(['doctor']);
    expect(complete(['nbswarm', 's'])).to.deep.equal(['serve', 'status']);
  });

  it("completes a command's own options only", () => {
    expect(complete(['nbswarm', 'logs', 'x', '--s'])).to.deep.equal(['--since']);
    expect(complete(['nbswarm', 'up', '--status-t'])).to.deep.equal(['--status-tls-cert', '--status-tls-key', '--status-token-file']);
    expect(complete(['nbswarm', 'status', '--f'])).to.deep.equal([]);
  });

  it('refuses an unknown shell in one line', () => {
    const r = spawnSync(process.execPath, [CLI, 'completion', 'fish'], { encoding: 'utf8' });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.equal('nbswarm: no completion for shell "fish" (hint: bash, or zsh with bashcompinit)\n');
  });
});
