import { expect } from 'chai';
import { WorkQueue } from '../../src/controller/workqueue.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('WorkQueue', () => {
  let q: WorkQueue | undefined;
  afterEach(async () => {
    await q?.shutdown();
    q = undefined;
  });

  it('keeps nothing per key once the key is forgotten (its object deleted)', async () => {
    q = new WorkQueue({ concurrency: 2, handler: async () => undefined });
    q.enqueue('gone');
    q.enqueue('kept');
    await q.whenIdle();
    expect(Object.keys(q.stats().perKey).sort()).to.deep.equal(['gone', 'kept']);
    q.forget('gone');
    expect(Object.keys(q.stats().perKey)).to.deep.equal(['kept']);
    expect(q.stats().perKey.kept!.reconciles).to.equal(1);
  });

  it('coalesces a key that is already waiting', async () => {
    const seen: Array<[string, string[]]> = [];
    const gate = deferred();
    q = new WorkQueue({
      concurrency: 1,
      handler: async (key, reasons) => {
        seen.push([key, reasons]);
        if (key === 'blocker') await gate.promise;
      },
    });
    q.enqueue('blocker');
    await tick();
    for (let i = 0; i < 10; i++) q.enqueue('a', i % 2 ? 'watch' : 'docker');
    expect(q.stats().depth).to.equal(1);
    gate.resolve();
    await q.whenIdle();
    expect(seen.map((s) => s[0])).to.deep.equal(['blocker', 'a']);
    expect(seen[1][1]).to.have.members(['watch', 'docker']);
  });

  it('never runs one key twice at once, and re-runs a key dirtied while running exactly once', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const gate = deferred();
    q = new WorkQueue({
      concurrency: 4,
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        if (runs === 1) await gate.promise;
        running--;
      },
    });
    q.enqueue('k');
    await tick();
    expect(q.isProcessing('k')).to.equal(true);
    for (let i = 0; i < 25; i++) q.enqueue('k');
    await tick();
    expect(runs).to.equal(1);
    gate.resolve();
    await q.whenIdle();
    await tick();
    await q.whenIdle();
    expect(runs).to.equal(2);
    expect(maxRunning).to.equal(1);
    expect(q.stats().maxConcurrentPerKey).to.equal(1);
  });

  it('serialises per key under load while bounding parallelism across keys', async () => {
    const activeByKey = new Map<string, number>();
    let active = 0;
    let maxActive = 0;
    let maxPerKey = 0;
    q = new WorkQueue({
      concurrency: 3,
      handler: async (key) => {
        active++;
        maxActive = Math.max(maxActive, active);
        const n = (activeByKey.get(key) ?? 0) + 1;
        activeByKey.set(key, n);
        maxPerKey = Math.max(maxPerKey, n);
        await new Promise((r) => setTimeout(r, 1 + Math.floor(Math.random() * 3)));
        activeByKey.set(key, (activeByKey.get(key) ?? 1) - 1);
        active--;
      },
    });
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 8; k++) q.enqueue(`ns/k${k}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    await q.whenIdle();
    await new Promise((r) => setTimeout(r, 20));
    await q.whenIdle();
    expect(maxPerKey).to.equal(1);
    expect(maxActive).to.be.at.most(3);
    expect(maxActive).to.be.greaterThan(1);
    const s = q.stats();
    expect(s.maxConcurrentPerKey).to.equal(1);
    expect(s.maxInFlight).to.be.at.most(3);
    // Coalescing: far fewer runs than the 320 enqueues.
    expect(s.reconcilesTotal).to.be.lessThan(320);
    for (let k = 0; k < 8; k++) expect(s.perKey[`ns/k${k}`].enqueued).to.equal(40);
  });

  it('backs off exponentially on failure and resets on success', async () => {
    let calls = 0;
    const retries: number[] = [];
    const done = deferred();
    q = new WorkQueue({
      concurrency: 1,
      baseDelayMs: 5,
      maxDelayMs: 20,
      handler: async () => {
        calls++;
        if (calls <= 4) throw new Error('boom');
        done.resolve();
      },
      onError: (_k, _e, retryIn) => retries.push(retryIn),
    });
    q.enqueue('x');
    await done.promise;
    await q.whenIdle();
    expect(retries).to.deep.equal([5, 10, 20, 20]);
    const s = q.stats();
    expect(s.errorsTotal).to.equal(4);
    expect(s.perKey.x.failures).to.equal(0);
    expect(q.backoffFor(1)).to.equal(5);
    expect(q.backoffFor(10)).to.equal(20);
  });

  it('requeueAfter runs the key again; an earlier timer wins over a later one', async () => {
    let calls = 0;
    const second = deferred();
    q = new WorkQueue({
      concurrency: 1,
      handler: async () => {
        calls++;
        if (calls === 1) return { requeueAfterMs: 5 };
        second.resolve();
        return undefined;
      },
    });
    q.enqueue('r');
    await second.promise;
    expect(calls).to.equal(2);
    q.enqueueAfter('t', 60_000);
    q.enqueueAfter('t', 1);
    expect(q.stats().delayed).to.equal(1);
    await new Promise((r) => setTimeout(r, 10));
    await q.whenIdle();
    expect(q.stats().perKey.t.reconciles).to.equal(1);
  });

  /** A one-slot queue whose first key ('blocker') holds the slot until gate.resolve(); keys run are recorded in order. */
  async function blockedQueue(): Promise<{ order: string[]; gate: ReturnType<typeof deferred>; queue: WorkQueue }> {
    const order: string[] = [];
    const gate = deferred();
    const queue = new WorkQueue({
      concurrency: 1,
      handler: async (key) => {
        order.push(key);
        if (key === 'blocker') await gate.promise;
      },
    });
    queue.enqueue('blocker', 'list', 'low');
    await tick();
    return { order, gate, queue };
  }

  it('serves the high lane before the low lane, FIFO within each, and promotes a waiting key', async () => {
    const { order, gate, queue } = await blockedQueue();
    q = queue;
    for (let i = 0; i < 5; i++) q.enqueue(`new${i}`, 'list', 'low');
    q.enqueue('conv1', 'docker', 'high');
    q.enqueue('conv2', 'docker', 'high');
    // A key already waiting in the low lane moves ahead when a high-priority reason names it.
    q.enqueue('new3', 'docker', 'high');
    q.enqueue('conv1', 'list', 'low');
    expect(q.stats().depthByLane).to.deep.equal({ high: 3, low: 4 });
    expect(q.stats().depth).to.equal(7);
    gate.resolve();
    await q.whenIdle();
    expect(order).to.deep.equal(['blocker', 'conv1', 'conv2', 'new3', 'new0', 'new1', 'new2', 'new4']);
    expect(q.stats().perKey.new3.reconciles).to.equal(1);
    expect(q.stats().maxConcurrentPerKey).to.equal(1);
  });

  it('runs a requeueAfter key ahead of a backlog of first-time keys', async () => {
    const { order, gate, queue } = await blockedQueue();
    q = queue;
    for (let i = 0; i < 50; i++) q.enqueue(`new${i}`, 'list', 'low');
    q.enqueueAfter('conv', 1);
    while (q.stats().delayed > 0) await new Promise((r) => setTimeout(r, 2));
    expect(q.stats().depthByLane).to.deep.equal({ high: 1, low: 50 });
    gate.resolve();
    await q.whenIdle();
    expect(order.slice(0, 3)).to.deep.equal(['blocker', 'conv', 'new0']);
    expect(order).to.have.length(52);
    expect(q.stats().maxConcurrentPerKey).to.equal(1);
  });

  it('while first-time keys wait, the high lane holds at most half the slots (a burst keeps creating while earlier servers poll)', async () => {
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const running = new Set<string>();
    q = new WorkQueue({
      concurrency: 4,
      handler: async (key) => {
        running.add(key);
        const g = deferred();
        gates.set(key, g);
        await g.promise;
        running.delete(key);
      },
    });
    for (let i = 0; i < 4; i++) q.enqueue(`busy${i}`, 'list', 'low');
    await tick();
    for (let i = 0; i < 6; i++) q.enqueue(`poll${i}`, 'requeue', 'high');
    for (let i = 0; i < 3; i++) q.enqueue(`create${i}`, 'added', 'low');
    for (let i = 0; i < 4; i++) gates.get(`busy${i}`)!.resolve();
    await tick();
    // Two of four slots to polls, two to creates; strict priority would run four polls.
    expect([...running].sort()).to.deep.equal(['create0', 'create1', 'poll0', 'poll1']);
    gates.get('create0')!.resolve();
    await tick();
    expect(running.has('create2')).to.equal(true);
    gates.get('create1')!.resolve();
    await tick();
    // No first-time key waits now: the high lane takes the free slot.
    expect([...running].sort()).to.deep.equal(['create2', 'poll0', 'poll1', 'poll2']);
    for (const k of ['poll0', 'poll1', 'poll2', 'create2']) gates.get(k)!.resolve();
    await tick();
    for (const k of ['poll3', 'poll4', 'poll5']) gates.get(k)?.resolve();
    await q.whenIdle();
    expect(q.stats().reconcilesTotal).to.equal(13);
  });

  it('a key dirtied while running goes back in the highest lane it was named in', async () => {
    const order: string[] = [];
    const gate = deferred();
    let kRuns = 0;
    q = new WorkQueue({
      concurrency: 1,
      handler: async (key) => {
        order.push(key);
        if (key === 'k' && ++kRuns === 1) await gate.promise;
      },
    });
    q.enqueue('k', 'list', 'low');
    await tick();
    q.enqueue('a', 'list', 'low');
    q.enqueue('k', 'resync', 'low');
    q.enqueue('k', 'docker', 'high');
    q.enqueue('k', 'resync', 'low');
    gate.resolve();
    await q.whenIdle();
    expect(order).to.deep.equal(['k', 'k', 'a']);
  });

  it('exposes prom-client metrics', async () => {
    q = new WorkQueue({ concurrency: 2, handler: async () => undefined, metricPrefix: 'test_wq_' });
    q.enqueue('m');
    await q.whenIdle();
    const text = await q.registry.metrics();
    expect(text).to.match(/test_wq_reconciles_total\{result="success"\} 1/);
    expect(text).to.match(/test_wq_max_concurrent_per_key 1/);
    expect(text).to.contain('test_wq_depth 0');
  });
});
