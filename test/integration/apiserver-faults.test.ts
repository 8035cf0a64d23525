import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { apiRequest, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

const CM = '/api/v1/namespaces/default/configmaps';
const configMap = (name: string, data: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });

/** Writes zeros to `file` until the file system is full; returns the bytes written. */
function fillUp(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    for (;;) n += writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return n;
}

describe("API server faults: the data directory's file system is full", function () {
  this.timeout(120_000);
  let mountpoint: string;
  let srv: TestApiServer | undefined;

  before(function () {
    // A small tmpfs of our own: the machine's disks are never filled. Needs root (mount).
    mountpoint = mkdtempSync(join(tmpdir(), 'nbswarm-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mountpoint]);
  });
  after(async () => {
    await srv?.close().catch(() => undefined);
    execFileSync('umount', [mountpoint]);
    rmSync(mountpoint, { recursive: true, force: true });
  });

  it('writes get a 507 naming the cause, reads go on, and writes resume once there is space; nothing acknowledged is lost', async () => {
    const dataDir = join(mountpoint, 'data');
    srv = await startTestApiServer({ dataDir });
    const value = 'v'.repeat(20_000);
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await apiRequest(srv, 'POST', CM, { body: configMap(`before-${i}`, { value }) });
      expect(r.status, r.text).to.equal(201);
      acknowledged.push(`before-${i}`);
    }
    const filler = join(mountpoint, 'filler');
    fillUp(filler);
    const refused: string[] = [];
    for (let i = 0; i < 40 && refused.length < 3; i++) {
      const r = await apiRequest(srv, 'POST', CM, { body: configMap(`full-${i}`, { value }) });
      if (r.status === 201) acknowledged.push(`full-${i}`);
      else {
        refused.push(`full-${i}`);
        expect(r.status, r.text).to.equal(507);
        expect(r.body).to.include({ kind: 'Status', reason: 'InsufficientStorage' });
        expect(r.body.message).to.contain("file system holding the server's data directory is full");
      }
    }
    expect(refused.length, 'writes refused while the file system is full').to.be.greaterThan(0);
    const list = await apiRequest(srv, 'GET', CM);
    expect(list.status).to.equal(200);
    const listed = list.body.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    expect(listed).to.include.members(acknowledged);
    // A refused write is not shown as if it had been stored.
    expect(listed).not.to.include.members(refused.slice(0, 1));
    expect((await apiRequest(srv, 'GET', `${CM}/${refused[0]}`)).status).to.equal(404);
    expect((await apiRequest(srv, 'GET', `${CM}/before-0`)).body.data.value).to.equal(value);
    expect((await apiRequest(srv, 'GET', '/healthz', { token: null })).status).to.equal(200);

    rmSync(filler);
    const after = await apiRequest(srv, 'POST', CM, { body: configMap('after-space', { value }) });
    expect(after.status, after.text).to.equal(201);
    acknowledged.push('after-space');

    // A restart reads a whole store holding every acknowledged write.
    await srv.close();
    srv = await startTestApiServer({ dataDir });
    const again = (await apiRequest(srv, 'GET', CM)).body.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    expect(again).to.include.members(acknowledged);
    for (const name of refused) expect(again).not.to.include(name);
  });
});
