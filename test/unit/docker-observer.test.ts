/**
 * The Docker observer's expiry rules, with a manual clock and a counting source: when a find or a
 * list is answered from the snapshot, and when it goes to Docker.
 */
import { expect } from 'chai';
import { LABELS } from '../../src/api/names.js';
import { DockerObserver, type ObservationSource } from '../../src/backends/docker-observer.js';
import type { ObservedServer, ObservedState } from '../../src/backends/types.js';

const OPTS = { maxAgeMs: 30_000, unsettledTtlMs: 1000, progressTtlMs: 20, writeGraceMs: 5000, taskReportLagMs: 10_000 };

function obs(uid: string, state: ObservedState = 'running', name = `nbs-${uid}`): ObservedServer {
  return { kind: 'service', id: `id-${uid}`, name, labels: { [LABELS.uid]: uid }, state };
}

class Source implements ObservationSource {
  docker = new Map<string, ObservedServer[]>();
  lists = 0;
  fetches: string[] = [];
  unsettled = new Set<string>();
  async listAll() {
    this.lists++;
    return [...this.docker.values()].flat();
  }
  async fetchUid(uid: string) {
    this.fetches.push(uid);
    return this.docker.get(uid) ?? [];
  }
  settled(o: ObservedServer) {
    return !this.unsettled.has(o.labels[LABELS.uid]!);
  }
}

function setup() {
  let t = 1_000_000;
  const src = new Source();
  const clock = { now: () => t, advance: (ms: number) => void (t += ms) };
  const o = new DockerObserver(src, OPTS, clock.now);
  return { src, clock, o };
}

/** An observer whose event stream is live from now on. */
function live() {
  const s = setup();
  s.o.watchingFrom(s.clock.now());
  s.o.setLive(true);
  return s;
}

describe('DockerObserver', () => {
  it('one list answers every find while events say nothing changed, until the list is older than maxAge', async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [obs('a')]);
    src.docker.set('b', [obs('b')]);
    expect(await o.find('a')).to.deep.equal([obs('a')]);
    expect(await o.find('b')).to.deep.equal([obs('b')]);
    expect(await o.find('c')).to.deep.equal([]);
    expect([src.lists, src.fetches.length]).to.deep.equal([1, 0]);
    clock.advance(29_000);
    await o.find('a');
    expect(src.lists).to.equal(1);
    clock.advance(2000);
    await o.find('a');
    expect(src.lists).to.equal(2);
  });

  it('an event about a uid makes its next find read Docker, once', async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [obs('a')]);
    await o.find('a');
    clock.advance(10);
    src.docker.set('a', [obs('a', 'failed')]);
    o.noteEvent({ uid: 'a', type: 'container', action: 'die', time: clock.now() });
    // A read that begins in the event's very millisecond might predate the change: it does not count.
    clock.advance(1);
    expect((await o.find('a'))[0]!.state).to.equal('failed');
    expect(src.fetches).to.deep.equal(['a']);
    await o.find('a');
    expect(src.fetches).to.deep.equal(['a']);
  });

  it('before the event stream is live, answers last only unsettledTtl', async () => {
    const { src, clock, o } = setup();
    src.docker.set('a', [obs('a')]);
    await o.find('a');
    clock.advance(500);
    await o.find('a');
    expect(src.lists + src.fetches.length).to.equal(1);
    clock.advance(600);
    await o.find('a');
    expect(src.lists + src.fetches.length).to.equal(2);
  });

  it('an observation events may not announce lasts unsettledTtl; one in progress only progressTtl', async () => {
    const { src, clock, o } = live();
    src.unsettled.add('a').add('p');
    src.docker.set('a', [obs('a', 'running')]);
    src.docker.set('p', [obs('p', 'pending')]);
    await o.find('a');
    clock.advance(25);
    await o.find('a');
    await o.find('p');
    expect(src.fetches).to.deep.equal(['p']);
    clock.advance(1000);
    await o.find('a');
    expect(src.fetches).to.deep.equal(['p', 'a']);
  });

  it("after a task's container died, its running task is re-read every unsettledTtl until Swarm has had time to report it", async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [obs('a')]);
    await o.find('a');
    clock.advance(10);
    o.noteEvent({ uid: 'a', type: 'task', action: 'die', time: clock.now() });
    clock.advance(1);
    // Read at the container's death: Swarm still says running.
    expect((await o.find('a'))[0].state).to.equal('running');
    expect(src.fetches).to.deep.equal(['a']);
    clock.advance(500);
    await o.find('a');
    expect(src.fetches).to.have.length(1);
    // Swarm reports the task failed (no event): the next look after unsettledTtl sees it.
    src.docker.set('a', [obs('a', 'failed')]);
    clock.advance(600);
    expect((await o.find('a'))[0].state).to.equal('failed');
    expect(src.fetches).to.have.length(2);
    // Once the lag has passed, a settled answer is trusted again until an event.
    clock.advance(10_000);
    await o.find('a');
    const n = src.fetches.length;
    clock.advance(5000);
    await o.find('a');
    expect(src.fetches).to.have.length(n);
  });

  it('a read that began while our write was under way never replaces what the write observed', async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [{ ...obs('a'), specHash: 'old' }]);
    await o.find('a');
    const writeStarted = clock.now();
    clock.advance(10);
    // A read begins during the write and reaches Docker before it: it sees the old spec…
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowList = src.listAll.bind(src);
    src.listAll = async () => {
      const all = await slowList();
      await gate;
      return all;
    };
    o.noteEvent({ uid: 'other', type: 'service', action: 'update', time: clock.now() });
    const listing = o.listManaged();
    // …then the write lands, and the backend records what it observed after it.
    clock.advance(10);
    o.wrote('a', [{ ...obs('a'), specHash: 'new' }], writeStarted);
    release();
    await listing;
    expect((await o.find('a'))[0].specHash).to.equal('new');
    // The same for a per-uid read.
    const slowFetch = src.fetchUid.bind(src);
    let releaseFetch!: () => void;
    const fetchGate = new Promise<void>((r) => (releaseFetch = r));
    src.fetchUid = async (uid: string) => {
      const got = await slowFetch(uid);
      await fetchGate;
      return got;
    };
    clock.advance(10);
    o.noteEvent({ uid: 'a', type: 'service', action: 'update', time: clock.now() });
    clock.advance(1);
    const fetching = o.find('a');
    const secondWrite = clock.now();
    clock.advance(10);
    o.wrote('a', [{ ...obs('a'), specHash: 'newer' }], secondWrite);
    releaseFetch();
    expect((await fetching)[0].specHash).to.equal('newer');
  });

  it('a list that misses our fresh create is not believed within writeGrace, unless Docker said it was removed', async () => {
    const { clock, o } = live();
    o.wrote('a', [obs('a')], clock.now());
    clock.advance(10);
    // Docker's list lags the create: the entry written through stays.
    expect(await o.listManaged()).to.deep.equal([obs('a')]);
    expect(await o.find('a')).to.deep.equal([obs('a')]);
    // Removed by someone (an event says so): the next list is believed.
    clock.advance(10);
    o.noteEvent({ uid: 'a', type: 'service', action: 'remove', time: clock.now() });
    expect(await o.find('a')).to.deep.equal([]);
  });

  it('after writeGrace a list that misses it is believed', async () => {
    const { clock, o } = live();
    o.wrote('a', [obs('a')], clock.now());
    clock.advance(6000);
    expect(await o.listManaged()).to.deep.equal([]);
  });

  it('removed() drops the object from the snapshot without a Docker read', async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [obs('a')]);
    await o.find('a');
    o.removed('a', 'id-a', clock.now());
    src.docker.delete('a');
    expect(await o.find('a')).to.deep.equal([]);
    expect(src.fetches).to.deep.equal([]);
  });

  it('listManaged from the cache costs nothing until something in its prefix is stale', async () => {
    const { src, clock, o } = live();
    src.docker.set('a', [obs('a', 'running', 'mine-a')]);
    src.docker.set('x', [obs('x', 'running', 'theirs-x')]);
    await o.listManaged({ prefix: 'mine-', fromCache: true });
    expect(src.lists).to.equal(1);
    clock.advance(10);
    o.noteEvent({ uid: 'x', name: 'theirs-x', type: 'container', action: 'die', time: clock.now() });
    expect((await o.listManaged({ prefix: 'mine-', fromCache: true })).map((x) => x.name)).to.deep.equal(['mine-a']);
    expect(src.lists).to.equal(1);
    o.noteEvent({ uid: 'a', name: 'mine-a', type: 'container', action: 'die', time: clock.now() });
    await o.listManaged({ prefix: 'mine-', fromCache: true });
    expect(src.lists).to.equal(2);
    // Without fromCache it always reads Docker.
    await o.listManaged();
    expect(src.lists).to.equal(3);
  });

  it('callers of one moment share one list', async () => {
    const { src, o } = live();
    src.docker.set('a', [obs('a')]);
    await Promise.all([o.find('a'), o.find('b'), o.listManaged({ fromCache: true })]);
    expect(src.lists).to.equal(1);
  });
});
