/** The per-key poll delays of servers on their way, and host port reservations. */
import { expect } from 'chai';
import { LABELS } from '../../src/api/names.js';
import type { ObservedServer } from '../../src/backends/types.js';
import { HostPortAllocator } from '../../src/controller/ports.js';
import { ProgressClock } from '../../src/controller/progress.js';

describe('ProgressClock', () => {
  it('polls a stage every 25 ms for its first second, then doubles up to 1 s', () => {
    let t = 0;
    const c = new ProgressClock(() => t);
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      delays.push(c.next('ns/a', 'Pending'));
      t += 200;
    }
    expect(delays).to.deep.equal([25, 25, 25, 25, 25, 25, 50, 100, 200, 400, 800, 1000]);
  });

  it('a new stage starts short again; a reset (Docker event, converged) too', () => {
    let t = 0;
    const c = new ProgressClock(() => t);
    t = 2000;
    c.next('ns/a', 'Pending');
    t = 4000;
    expect(c.next('ns/a', 'Pending')).to.equal(25);
    expect(c.next('ns/a', 'Pending')).to.equal(50);
    expect(c.next('ns/a', 'Starting')).to.equal(25);
    c.next('ns/a', 'Starting');
    t = 6000;
    c.next('ns/a', 'Starting');
    c.reset('ns/a');
    expect(c.next('ns/a', 'Starting')).to.equal(25);
  });

  it('stops fast polling when more than 4 servers are in progress', () => {
    const four = new ProgressClock(() => 0);
    for (const k of ['a', 'b', 'c', 'd']) four.next(k, 's');
    expect([four.next('d', 's'), four.next('d', 's')]).to.deep.equal([25, 25]);
    const five = new ProgressClock(() => 0);
    for (const k of ['a', 'b', 'c', 'd', 'e']) five.next(k, 's');
    expect([five.next('e', 's'), five.next('e', 's'), five.next('e', 's')]).to.deep.equal([25, 50, 100]);
    expect(five.size).to.equal(5);
  });

  it('polls a server that does not answer yet at most every 100 ms alone, and the answering polls of many at ~40/s together', () => {
    const polls = (inProgress: number) => {
      let t = 0;
      const c = new ProgressClock(() => t);
      for (let i = 1; i < inProgress; i++) c.next(`other${i}`, 'Pending');
      const delays: number[] = [];
      for (let i = 0; i < 9; i++) {
        delays.push(c.next('ns/a', 'answering'));
        t += 200;
      }
      return delays;
    };
    expect(polls(1)).to.deep.equal([25, 25, 25, 25, 25, 25, 50, 100, 100]);
    expect(polls(10)).to.deep.equal([25, 50, 100, 200, 250, 250, 250, 250, 250]);
    expect(polls(200).slice(-2)).to.deep.equal([1000, 1000]);
  });

  it('turns a reconcile result into the queue outcome', () => {
    const c = new ProgressClock(() => 0);
    expect(c.outcome('a', { progress: 'answering' })).to.deep.equal({ requeueAfterMs: 25 });
    expect(c.size).to.equal(1);
    expect(c.outcome('a', { requeueAfterMs: 5000 })).to.deep.equal({ requeueAfterMs: 5000 });
    expect(c.size).to.equal(0);
    expect(c.outcome('a', undefined)).to.equal(undefined);
  });
});

describe('HostPortAllocator', () => {
  const managed =
    (...ports: number[]) =>
    async (): Promise<ObservedServer[]> =>
      ports.map((p, i) => ({ kind: 'container', id: String(i), name: `n${i}`, labels: { [LABELS.port]: String(p) }, state: 'running' }));

  it("skips ports labelled on objects, reserved for others, or not bindable; keeps a server's reservation", async () => {
    const a = new HostPortAllocator([100, 105], async (p) => p !== 102);
    expect(await a.allocate('u1', managed(100))).to.equal(101);
    expect(await a.allocate('u2', managed(100))).to.equal(103);
    expect(await a.allocate('u1', managed(100))).to.equal(101);
    a.release(101);
    expect(await a.allocate('u3', managed(100, 101))).to.equal(104);
  });

  it('says what to do when the range is full', async () => {
    const a = new HostPortAllocator([100, 100], async () => true);
    const err = await a.allocate('u1', managed(100)).catch((e: unknown) => e);
    expect((err as Error).message).to.equal('no free host port in 100-100');
    expect((err as { hint?: string }).hint).to.match(/hostPortRange/);
  });
});
