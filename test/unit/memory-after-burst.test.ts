import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { repoPath } from '../../src/paths.js';
import { MemoryAfterBurst } from '../../src/memory-after-burst.js';
import { createLogger } from '../../src/log.js';

/** A work queue seen from outside: a reconcile counter and whether anything is queued or running. */
class Queue {
  reconciled = 0;
  busy = false;
  get idle(): boolean {
    return !this.busy;
  }
  run(n: number): void {
    this.reconciled += n;
  }
}

function burstWatcher(q: Queue, minReconciles = 100) {
  const collected: number[] = [];
  const w = new MemoryAfterBurst(
    q,
    createLogger({ silent: true }),
    // The checks are driven by the test; the interval is never reached.
    { minReconciles, checkEveryMs: 3_600_000, collect: () => collected.push(q.reconciled) },
  );
  return { w, collected };
}

describe('MemoryAfterBurst (nbswarm operator)', () => {
  it('collects once a burst is followed by a quiet interval, and once per burst', () => {
    const q = new Queue();
    const { w, collected } = burstWatcher(q);
    try {
      q.run(150);
      expect(w.check(), 'reconciles ran since the last check').to.equal(false);
      expect(w.check(), 'a whole quiet interval after 150 reconciles').to.equal(true);
      expect(w.check(), 'nothing ran since').to.equal(false);
      q.run(150);
      w.check();
      expect(w.check()).to.equal(true);
      expect(collected).to.deep.equal([150, 300]);
      expect(w.s.collections).to.equal(2);
      expect(w.s.lastPauseMs).to.be.a('number');
    } finally {
      w.stop();
    }
  });

  it('waits while work is queued or running, and for a burst of minReconciles', () => {
    const q = new Queue();
    const { w, collected } = burstWatcher(q);
    try {
      q.run(99);
      w.check();
      expect(w.check(), '99 reconciles are not a burst').to.equal(false);
      q.run(1);
      w.check();
      q.busy = true;
      expect(w.check(), 'a key is in flight').to.equal(false);
      expect(w.check()).to.equal(false);
      q.busy = false;
      expect(w.check(), 'the count did not move while busy, and now nothing runs').to.equal(true);
      expect(collected).to.deep.equal([100]);
    } finally {
      w.stop();
    }
  });

  it("compactingCollection gives back a fragmented old generation's pages, where a plain full collection keeps most", () => {
    const mod = pathToFileURL(repoPath('dist', 'src', 'memory-after-burst.js')).href;
    // 200,000 objects promoted to the old generation, then three in four dropped: pages 1/4 full.
    const program = (compact: boolean) => `
      import v8 from 'node:v8';
      import { runInNewContext } from 'node:vm';
      const { compactingCollection } = await import(${JSON.stringify(mod)});
      const collect = compactingCollection();
      const gc = runInNewContext('gc');
      let all = [];
      for (let i = 0; i < 200000; i++) all.push({ s: 'y'.repeat(400) + i, a: [i, i + 1] });
      gc(); gc();
      all = all.filter((_, i) => i % 4 === 0);
      gc();
      const before = process.memoryUsage().heapTotal;
      if (${compact}) collect(); else gc();
      const after = process.memoryUsage().heapTotal;
      console.log(JSON.stringify({ before, after, kept: all.length }));
    `;
    const run = (compact: boolean) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', program(compact)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as { before: number; after: number; kept: number };
    };
    const plain = run(false);
    const compacted = run(true);
    expect(compacted.kept).to.equal(50_000);
    // Measured: 117 MB committed → 99 MB (plain) and → 67 MB (compacting).
    expect(compacted.after, 'compacting').to.be.below(compacted.before * 0.7);
    expect(compacted.after, 'compacting vs plain').to.be.below(plain.after - 16 * 2 ** 20);
  });
});
