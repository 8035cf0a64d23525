/**
 * How the Swarm reader plans its per-server reads: while a service's last read stands
 * (SERVICE_REUSE_MS, no change announced since), a poll lists only its tasks. A fake Docker client
 * answers and counts the calls; what is under test is which calls the reader makes and what it
 * reports from them.
 */
import { expect } from 'chai';
import type Docker from 'dockerode';
import { LABELS } from '../../src/api/names.js';
import { ServiceDrift } from '../../src/backends/swarm-drift.js';
import { SERVICE_REUSE_MS, SwarmReader } from '../../src/backends/swarm-reader.js';

const UID = 'uid-1';

function service(id: string, hash: string): any {
  return {
    ID: id,
    CreatedAt: '2026-12-01T00:00:00Z',
    Version: { Index: 1 },
    Spec: {
      Name: `svc-${id}`,
      Labels: { [LABELS.uid]: UID, [LABELS.managedBy]: 'nbswarm', [LABELS.specHash]: hash, [LABELS.port]: '8888' },
      TaskTemplate: { ContainerSpec: { Image: 'sha256:abc' } },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 8888, PublishMode: 'host' }] },
    },
  };
}

/** A Docker client with one service whose task waits to be scheduled; it counts the calls. */
class FakeDocker {
  calls: string[] = [];
  svc = service('s1', 'h1');
  /** Resolves a service list only when released (to overtake it with a change). */
  holdList?: Promise<void>;

  async listServices(): Promise<any[]> {
    this.calls.push('GET /services');
    const snapshot = structuredClone(this.svc);
    await this.holdList;
    return [snapshot];
  }
  async listTasks(): Promise<any[]> {
    this.calls.push('GET /tasks');
    return [
      {
        ID: 't1',
        ServiceID: this.svc.ID,
        Slot: 1,
        DesiredState: 'running',
        Status: { State: 'pending', Message: 'pending' },
        Spec: {},
        CreatedAt: '2026-12-01T00:00:01Z',
      },
    ];
  }
  getService(id: string) {
    return {
      inspect: async () => {
        this.calls.push(`GET /services/${id}`);
        return structuredClone(this.svc);
      },
    };
  }
  async info(): Promise<any> {
    this.calls.push('GET /info');
    return { Swarm: { NodeID: 'n1', Nodes: 1, ControlAvailable: true } };
  }
}

/** A reader on a fake Docker client, with a clock the test moves. */
function setup(): { d: FakeDocker; clock: { t: number }; r: SwarmReader } {
  const d = new FakeDocker();
  const clock = { t: 1_000_000 };
  return { d, clock, r: new SwarmReader(d as unknown as Docker, new ServiceDrift(), () => clock.t) };
}

/** One poll of the server: the lists it made of Docker, and the spec hashes it reported. */
async function poll(d: FakeDocker, r: SwarmReader): Promise<{ reads: string[]; hashes: (string | undefined)[] }> {
  d.calls = [];
  const servers = await r.fetchUid(UID);
  return { reads: d.calls.filter((c) => c === 'GET /services' || c === 'GET /tasks'), hashes: servers.map((o) => o.specHash) };
}

const BOTH = ['GET /services', 'GET /tasks'];

describe('SwarmReader: polling a server that starts', () => {
  it('lists only the tasks while the service as last read stands, and the service again once it is too old', async () => {
    const { d, clock, r } = setup();
    expect((await r.fetchUid(UID)).map((o) => [o.id, o.specHash, o.state])).to.deep.equal([['s1', 'h1', 'pending']]);
    clock.t += SERVICE_REUSE_MS;
    expect(await poll(d, r)).to.deep.equal({ reads: ['GET /tasks'], hashes: ['h1'] });
    clock.t += 1;
    expect(await poll(d, r)).to.deep.equal({ reads: BOTH, hashes: ['h1'] });
  });

  it('reads the service again after a change is announced (an event or a write of ours)', async () => {
    const { d, r } = setup();
    await r.fetchUid(UID);
    d.svc = service('s1', 'h2');
    r.serviceChanged('s1');
    expect(await poll(d, r)).to.deep.equal({ reads: BOTH, hashes: ['h2'] });
  });

  it('does not keep a read that a change overtook: the read may predate the change', async () => {
    const { d, r } = setup();
    let release!: () => void;
    d.holdList = new Promise((ok) => (release = ok));
    const slow = r.fetchUid(UID);
    // The list is on its way with h1 when the service changes (and says so).
    await new Promise((ok) => setImmediate(ok));
    d.svc = service('s1', 'h2');
    r.serviceChanged('s1');
    release();
    expect((await slow).map((o) => o.specHash)).to.deep.equal(['h1']);
    d.holdList = undefined;
    expect(await poll(d, r)).to.deep.equal({ reads: BOTH, hashes: ['h2'] });
  });

  it('keeps what an inspect read, until a change is announced', async () => {
    const { d, r } = setup();
    await r.fetchUid(UID);
    r.serviceChanged('s1');
    await r.inspectService('s1');
    expect(await poll(d, r)).to.deep.equal({ reads: ['GET /tasks'], hashes: ['h1'] });
  });
});

describe('SwarmReader: services kept as last read', () => {
  it('keeps none for longer than it may reuse them', async () => {
    const { d, clock, r } = setup();
    await r.fetchUid(UID);
    expect(r.servicesKept).to.equal(1);
    clock.t += SERVICE_REUSE_MS + 1;
    d.svc = service('s2', 'h1');
    await r.inspectService('s2');
    // s1 expired and is gone: only the service just read is kept.
    expect(r.servicesKept).to.equal(1);
    r.serviceChanged('s2');
    expect(r.servicesKept).to.equal(0);
  });
});
