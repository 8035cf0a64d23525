/**
 * Per-call Docker deadlines: which calls get which deadline, and a call to a socket that accepts
 * and never answers (a real unix socket) failing in time with an error that names it.
 */
import { expect } from 'chai';
import Docker from 'dockerode';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDockerDeadlines, deadlineOf, DEFAULT_DOCKER_DEADLINES } from '../../src/backends/docker-deadlines.js';
import { wrapDockerError } from '../../src/backends/docker.js';
import { BackendError } from '../../src/backends/types.js';

describe('Docker call deadlines', () => {
  const d = { callMs: 1, stopMs: 2, imageMs: 3 };

  it('image transfers and commits get the long deadline, stops the medium one, the rest the short one', () => {
    expect(deadlineOf('POST', '/images/create?fromImage=x', d)).to.equal(3);
    expect(deadlineOf('POST', '/images/127.0.0.1:5000/a/b/push?tag=1', d)).to.equal(3);
    expect(deadlineOf('POST', '/commit?container=abc&repo=x', d)).to.equal(3);
    expect(deadlineOf('POST', '/containers/abc/stop?t=10', d)).to.equal(2);
    expect(deadlineOf('DELETE', '/containers/abc?force=true', d)).to.equal(2);
    expect(deadlineOf('POST', '/services/abc/update?version=3', d)).to.equal(1);
    expect(deadlineOf('GET', '/containers/json?all=true', d)).to.equal(1);
    expect(deadlineOf('POST', '/containers/create?name=x', d)).to.equal(1);
    expect(deadlineOf('GET', '/_ping', d)).to.equal(1);
  });

  it('streams get one until the daemon starts answering; calls long-lived before they answer get none: attach, exec, wait, followed logs', () => {
    expect(deadlineOf('GET', '/events?filters=x', d)).to.equal(1);
    expect(deadlineOf('POST', '/containers/abc/wait', d)).to.equal(undefined);
    expect(deadlineOf('POST', '/containers/abc/attach?stream=1', d, { hijack: true })).to.equal(undefined);
    expect(deadlineOf('POST', '/exec/abc/start', d)).to.equal(undefined);
    expect(deadlineOf('GET', '/containers/abc/logs?follow=1', d, { follow: true })).to.equal(undefined);
    expect(deadlineOf('GET', '/containers/abc/logs', d)).to.equal(1);
  });

  it('defaults: a minute for a call, two for a stop, half an hour for images', () => {
    expect(DEFAULT_DOCKER_DEADLINES).to.deep.equal({ callMs: 60_000, stopMs: 120_000, imageMs: 1_800_000 });
  });

  describe('against a socket that accepts and never answers', () => {
    let dir: string;
    let server: net.Server;
    const held: net.Socket[] = [];
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'nbs-hang-'));
      server = net.createServer((s) => {
        held.push(s);
        s.resume();
      });
      await new Promise<void>((r) => server.listen(join(dir, 'd.sock'), r));
    });
    after(async () => {
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    });

    it('a call fails at its deadline with an error naming the call, wrapped as DockerUnavailable', async () => {
      const docker = new Docker({ socketPath: join(dir, 'd.sock') });
      applyDockerDeadlines(docker, { callMs: 300, stopMs: 600 });
      applyDockerDeadlines(docker, { callMs: 60_000 }); // idempotent: the first deadlines stay
      const t0 = Date.now();
      const err = await docker
        .getContainer('abc')
        .inspect()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      const took = Date.now() - t0;
      expect(took).to.be.within(250, 3000);
      expect((err as { code?: string }).code).to.equal('EDOCKERTIMEOUT');
      expect(String((err as Error).message)).to.contain('GET /containers/{id}/json');
      const wrapped = wrapDockerError('docker inspect abc', err);
      expect(wrapped).to.be.instanceOf(BackendError);
      expect(wrapped.reason).to.equal('DockerUnavailable');
      expect(wrapped.message).to.equal('docker inspect abc: the Docker daemon did not answer within 0.3 s');
      expect(wrapped.hint).to.contain('does not answer');

      const stop = await docker
        .getContainer('abc')
        .stop({ t: 10 })
        .then(
          () => undefined,
          (e: unknown) => e as Error & { timeoutMs?: number },
        );
      expect(stop?.timeoutMs).to.equal(600);
    });

    it("a caller's own abort signal still ends the call first", async () => {
      const docker = new Docker({ socketPath: join(dir, 'd.sock') });
      applyDockerDeadlines(docker, { callMs: 5000 });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      const t0 = Date.now();
      const err = await docker.listContainers({ abortSignal: ac.signal } as object).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      expect(Date.now() - t0).to.be.below(2000);
      expect(err?.code).to.not.equal('EDOCKERTIMEOUT');
    });
  });
});
