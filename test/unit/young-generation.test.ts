import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { repoPath } from '../../src/paths.js';

/** New-space size (MB) of a fresh node process after it allocated briskly, with or without keepYoungGenerationSmall(). */
function newSpaceAfterAllocating(keepSmall: boolean, nodeArgs: string[] = []): number {
  const mod = pathToFileURL(repoPath('dist', 'src', 'young-generation.js')).href;
  const program = `
    import v8 from 'node:v8';
    const { keepYoungGenerationSmall } = await import(${JSON.stringify(mod)});
    if (${keepSmall}) keepYoungGenerationSmall();
    // Short-lived objects with some survivors, as reconciles make them: V8 grows the young generation.
    const keep = [];
    for (let i = 0; i < 3e6; i++) { const o = { i, s: 'x' + i }; if (i % 10 === 0) keep.push(o); if (keep.length > 20000) keep.length = 0; }
    const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    console.log(s.space_size / 2 ** 20);
  `;
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', program], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

describe('keepYoungGenerationSmall (nbswarm operator)', () => {
  it('keeps the young generation at its first size while the process allocates, where V8 alone grows it', () => {
    expect(newSpaceAfterAllocating(false)).to.be.greaterThan(8);
    expect(newSpaceAfterAllocating(true)).to.be.at.most(2);
  });

  it('leaves an explicit --max-semi-space-size on the node command line in charge', () => {
    expect(newSpaceAfterAllocating(true, ['--max-semi-space-size=8'])).to.be.greaterThan(2);
  });
});
