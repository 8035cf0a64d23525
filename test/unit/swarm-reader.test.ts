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

function reader(docker: FakeDocker, clock: { t: number }): SwarmReader {
  return new SwarmReader(docker as unknown as Docker, new ServiceDrift(), () => clock.t);
}

const dockerReads = (d: FakeDocker) => d.calls.filter((c) => c === 'GET /services' || c === 'GET /tasks');

describe('SwarmReader: polling a server that starts', () => {
  it('lists only the tasks while the service as last read stands, and the service again once it is too old', async () => {
    const d = new FakeDocker();
    const clock = { t: 1_000_000 };
    const r = reader(d, clock);
    const first = await r.fetchUid(UID);
    expect(first.map((o) => [o.id, o.specHash, o.state])).to.deep.equal([['s1', 'h1', 'pending']]);
    expect(dockerReads(d)).to.deep.equal(['GET /services', 'GET /tasks']);

    d.calls = [];
    clock.t += SERVICE_REUSE_MS;
    const second = await r.fetchUid(UID);
    expect(second.map((o) => o.specHash)).to.deep.equal(['h1']);
    expect(dockerReads(d)).to.deep.equal(['GET /tasks']);

    d.calls = [];
    clock.t += 1;
    await r.fetchUid(UID);
    expect(dockerReads(d)).to.deep.equal(['GET /services', 'GET /tasks']);
  });

  it('reads the service again after a change is announced (an event or a write of ours)', async () => {
    const d = new FakeDocker();
    const clock = { t: 1_000_000 };
    const r = reader(d, clock);
    await r.fetchUid(UID);
    d.svc = service('s1', 'h2');
    r.serviceChanged('s1');
    d.calls = [];
    const after = await r.fetchUid(UID);
    expect(dockerReads(d)).to.deep.equal(['GET /services', 'GET /tasks']);
    expect(after.map((o) => o.specHash)).to.deep.equal(['h2']);
  });

  it('does not keep a read that a change overtook: the read may predate the change', async () => {
    const d = new FakeDocker();
    const clock = { t: 1_000_000 };
    const r = reader(d, clock);
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
    d.calls = [];
    const next = await r.fetchUid(UID);
    expect(dockerReads(d)).to.deep.equal(['GET /services', 'GET /tasks']);
    expect(next.map((o) => o.specHash)).to.deep.equal(['h2']);
  });

  it('keeps what an inspect read, until a change is announced', async () => {
    const d = new FakeDocker();
    const clock = { t: 1_000_000 };
    const r = reader(d, clock);
    await r.fetchUid(UID);
    r.serviceChanged('s1');
    await r.inspectService('s1');
    d.calls = [];
    await r.fetchUid(UID);
    expect(dockerReads(d)).to.deep.equal(['GET /tasks']);
  });
});
