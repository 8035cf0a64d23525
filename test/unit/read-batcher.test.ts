/** Shared per-key reads: callers of one moment share one read; reads are spaced. */
import { expect } from 'chai';
import { ReadBatcher } from '../../src/backends/read-batcher.js';

describe('ReadBatcher', () => {
  it('callers that ask while a read is in flight share the next one; a key it misses gets the default', async () => {
    const reads: string[][] = [];
    let t = 1_000_000;
    const slept: number[] = [];
    const b = new ReadBatcher<string, number[]>(
      async (keys) => {
        reads.push(keys);
        return new Map(keys.filter((k) => k !== 'none').map((k) => [k, [k.length]]));
      },
      [],
      { spacingMs: (n) => (n > 2 ? 40 : 20), now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) },
    );
    const first = Promise.all([b.get('a'), b.get('bb')]);
    const later = Promise.all([b.get('a'), b.get('ccc'), b.get('none')]);
    expect(await first).to.deep.equal([[1], [2]]);
    expect(await later).to.deep.equal([[1], [3], []]);
    // One tick: one read for all five callers.
    expect(reads).to.deep.equal([['a', 'bb', 'ccc', 'none']]);
    const third = b.get('dd');
    expect(await third).to.deep.equal([2]);
    expect(reads).to.have.length(2);
    // The second read waited out the spacing after the first.
    expect(slept).to.deep.equal([20]);
  });

  it('a failed read rejects every caller of it, and the next read is tried again', async () => {
    let fail = true;
    const b = new ReadBatcher<string, number>(
      async (keys) => {
        if (fail) throw new Error('docker down');
        return new Map(keys.map((k) => [k, 1]));
      },
      0,
      { spacingMs: () => 0 },
    );
    const r = await Promise.allSettled([b.get('a'), b.get('b')]);
    expect(r.map((x) => x.status)).to.deep.equal(['rejected', 'rejected']);
    fail = false;
    expect(await b.get('a')).to.equal(1);
  });
});
