/**
 * Reconcile through the work queue and the progress clock, as the operator wires them, with the
 * FakeBackend: failures back off and recover; a server on its way is polled until it runs.
 */
import { expect } from 'chai';
import { ProgressClock } from '../../src/controller/progress.js';
import { WorkQueue } from '../../src/controller/workqueue.js';
import { IMAGE, World, condition } from './reconcile-world.js';

function queueFor(w: World, retries: number[], delays: (number | undefined)[] = []) {
  const progress = new ProgressClock();
  const queue = new WorkQueue({
    concurrency: 2,
    baseDelayMs: 5,
    maxDelayMs: 40,
    handler: async (key, reasons) => {
      if (reasons.includes('docker')) progress.reset(key);
      const outcome = progress.outcome(key, await w.reconciler.reconcile(key));
      delays.push(outcome?.requeueAfterMs);
      return outcome;
    },
    onError: (_key, _err, retryIn) => retries.push(retryIn),
  });
  return { queue, progress };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('reconcile through the queue (FakeBackend)', () => {
  it('back-off: a missing image is retried with doubling delays, and the server runs once the image is there', async () => {
    const w = new World('service', { pullPolicy: 'never' });
    const retries: number[] = [];
    const { queue } = queueFor(w, retries);
    try {
      w.put('nb', { image: 'local/later:1' });
      queue.enqueue('default/nb');
      await until('four failures', () => retries.length >= 4);
      expect(retries.slice(0, 4)).to.deep.equal([5, 10, 20, 40]);
      expect(queue.stats().perKey['default/nb']!.failures).to.be.at.least(4);
      // The status was written once; retries with the same failure write nothing.
      expect(w.statusPatches.length).to.equal(1);
      expect(condition(w.get('nb').status ?? {}, 'ImageReady')?.reason).to.equal('ImageNotFound');
      expect(w.backend.writes).to.deep.equal([]);
      w.backend.addImage('local/later:1');
      await until('Running', () => w.get('nb').status?.phase === 'Running');
      expect(w.backend.writes).to.deep.equal(['volume-create nbs-alice-home', 'create nbs-alice']);
      await queue.whenIdle();
      expect(queue.stats().perKey['default/nb']!.failures).to.equal(0);
    } finally {
      await queue.shutdown();
    }
  });

  it('a server on its way is polled by stage until it runs, then left alone', async () => {
    const w = new World('service');
    w.backend.startState = 'pending';
    const { queue, progress } = queueFor(w, []);
    try {
      w.put('nb', { image: IMAGE });
      queue.enqueue('default/nb');
      await until('Creating', () => w.get('nb').status?.phase === 'Creating');
      expect(progress.size).to.equal(1);
      const polls = () => queue.stats().perKey['default/nb']!.reconciles;
      const before = polls();
      await until('a few polls', () => polls() >= before + 3);
      expect(w.backend.writes).to.deep.equal(['volume-create nbs-alice-home', 'create nbs-alice']);
      w.backend.setState('uid-nb', 'running');
      await until('Running', () => w.get('nb').status?.phase === 'Running');
      await queue.whenIdle();
      expect(progress.size).to.equal(0);
      expect(queue.stats().delayed).to.equal(0);
      expect(w.events.map((e) => e.reason)).to.deep.equal(['Created', 'Pending', 'Ready']);
    } finally {
      await queue.shutdown();
    }
  });

  it('a stopped server whose task Swarm still reports running is polled from short delays until it is reported down', async () => {
    const w = new World('service');
    const delays: (number | undefined)[] = [];
    const { queue, progress } = queueFor(w, [], delays);
    try {
      w.put('nb', { image: IMAGE });
      queue.enqueue('default/nb');
      await until('Running', () => w.get('nb').status?.phase === 'Running');
      await queue.whenIdle();
      w.backend.stoppedState = 'running';
      w.edit('nb', { stopped: true });
      delays.length = 0;
      queue.enqueue('default/nb');
      await until('Stopping', () => w.get('nb').status?.phase === 'Stopping');
      expect(progress.size).to.equal(1);
      // The first looks come within the progress clock's first step (25 ms), not a second later.
      await until('two polls', () => delays.length >= 2);
      expect(delays[0]).to.be.at.most(25);
      expect(delays[1]).to.be.at.most(50);
      w.backend.setState('uid-nb', 'stopped');
      await until('Stopped', () => w.get('nb').status?.phase === 'Stopped');
      await queue.whenIdle();
      expect(progress.size).to.equal(0);
      expect(delays.at(-1)).to.equal(undefined);
    } finally {
      await queue.shutdown();
    }
  });
});
