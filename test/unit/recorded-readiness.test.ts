import { expect } from 'chai';
import { RecordedReadiness } from '../../src/controller/recorded-readiness.js';
import { World, condition } from './reconcile-world.js';

/** A world whose operator can be "restarted": a fresh memory of first looks, the caches and Docker kept. */
function restartableWorld(kind: 'service' | 'container' = 'service') {
  const memory = { current: new RecordedReadiness() };
  const w = new World(kind, {}, { readiness: { firstLook: (key) => memory.current.firstLook(key) } });
  return {
    w,
    restart: () => {
      memory.current = new RecordedReadiness();
      w.probes = [];
    },
  };
}

describe('recorded readiness: the first look of an operator process at a running server', () => {
  it('answers true once per key, until the key is forgotten', () => {
    const r = new RecordedReadiness();
    expect([r.firstLook('ns/a'), r.firstLook('ns/a'), r.firstLook('ns/b')]).to.deep.equal([true, false, true]);
    r.forget('ns/a');
    expect(r.firstLook('ns/a')).to.equal(true);
    expect(r.size).to.equal(2);
  });

  for (const kind of ['service', 'container'] as const) {
    it(`${kind}: a restarted operator takes the Ready it recorded for an unchanged server (no probe, no write); its next look probes`, async () => {
      const { w, restart } = restartableWorld(kind);
      w.put('nb');
      await w.settle('nb');
      expect(w.probes.length, 'probed while it started').to.be.greaterThan(0);
      expect(condition(w.get('nb').status!, 'Ready')?.status).to.equal('True');

      restart();
      const first = await w.step('nb');
      expect(w.probes).to.deep.equal([]);
      expect(first.docker).to.deep.equal([]);
      expect(first.statusPatches).to.deep.equal([]);
      expect(first.events).to.deep.equal([]);
      expect(first.status.phase).to.equal('Running');

      // The server hung while the operator was away: the next look (resync, an event) finds it.
      w.answering = false;
      const next = await w.step('nb');
      expect(w.probes).to.have.length(1);
      expect([condition(next.status, 'Ready')?.status, condition(next.status, 'Ready')?.reason]).to.deep.equal(['False', 'Starting']);
    });
  }

  it('probes on the first look when the record is not what it would write: Docker restarted the server meanwhile', async () => {
    const { w, restart } = restartableWorld('container');
    w.put('nb');
    await w.settle('nb');
    restart();
    w.backend.setState('uid-nb', 'running', undefined, { restarts: 1, lastFailure: 'exit 137' });
    w.answering = false;
    const s = await w.step('nb');
    expect(w.probes).to.have.length(1);
    expect(condition(s.status, 'Ready')?.status).to.equal('False');
    expect(s.status.restartCount).to.equal(1);
  });

  it('probes on the first look at a server whose record is not Ready (it never answered)', async () => {
    const { w, restart } = restartableWorld();
    w.answering = false;
    w.put('nb');
    await w.step('nb');
    expect(w.get('nb').status?.phase).to.equal('Creating');
    restart();
    w.answering = true;
    const s = await w.step('nb');
    expect(w.probes).to.have.length(1);
    expect(s.status.phase).to.equal('Running');
    expect(condition(s.status, 'Ready')?.status).to.equal('True');
    // The write planned for the first look (before the probe) is the one written, with its Event.
    expect(s.statusPatches).to.have.length(1);
    expect(s.events.map((e) => e.reason)).to.deep.equal(['Ready']);
  });

  it('without it (the default), every look probes, the first one too', async () => {
    const w = new World('service');
    w.put('nb');
    await w.settle('nb');
    w.probes = [];
    await w.step('nb');
    await w.step('nb');
    expect(w.probes).to.have.length(2);
  });
});
