/**
 * Container drift is judged on what `docker update` can change, in the canonical form of drift.ts:
 * Docker's own defaults (a swap limit of twice the memory, zero values) are not drift.
 */
import { expect } from 'chai';
import { containerDrift, ownedContainerConfig } from '../../src/backends/container-spec.js';

const MiB = 1024 * 1024;
const desired = { HostConfig: { Memory: 64 * MiB, NanoCpus: 5e8, PidsLimit: 512, RestartPolicy: { Name: 'unless-stopped' }, Init: true, Mounts: [] } };
/** How Docker 20.10 reports such a container in inspect. */
const asStored = () => ({
  Memory: 64 * MiB,
  MemorySwap: 128 * MiB,
  MemoryReservation: 0,
  NanoCpus: 5e8,
  CpuShares: 0,
  CpuPeriod: 0,
  CpuQuota: 0,
  CpusetCpus: '',
  CpusetMems: '',
  PidsLimit: 512,
  BlkioWeight: 0,
  RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
  Binds: null,
  Privileged: false,
});

describe('container drift', () => {
  it('a container as Docker stores it has not drifted', () => {
    expect(containerDrift(ownedContainerConfig(asStored()), desired)).to.deep.equal([]);
  });

  it('names each field `docker update` changed', () => {
    const h = { ...asStored(), Memory: 200 * MiB, MemorySwap: 400 * MiB, NanoCpus: 1e9, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } };
    expect(containerDrift(ownedContainerConfig(h), desired)).to.deep.equal(['Memory', 'NanoCpus', 'RestartPolicy.Name']);
    expect(containerDrift(ownedContainerConfig({ ...asStored(), MemoryReservation: 32 * MiB }), desired)).to.deep.equal(['MemoryReservation']);
    expect(containerDrift(ownedContainerConfig({ ...asStored(), MemorySwap: -1 }), desired)).to.deep.equal(['MemorySwap']);
  });

  it('fields `docker update` cannot change are not judged (they need a new container, which the spec hash covers)', () => {
    expect(ownedContainerConfig({ ...asStored(), Binds: ['/:/host'], Privileged: true })).to.not.have.any.keys('Binds', 'Privileged');
  });
});
