/**
 * Fault suite: the Docker socket accepts requests and never answers them (a proxy in front of the
 * machine's real dockerd that holds chosen requests). Every Docker call has a deadline: the
 * server whose calls hang gets a condition naming the call, the other servers keep being
 * reconciled by the same (single) worker, and everything converges once the socket answers again.
 */
import { expect } from 'chai';
import Docker from 'dockerode';
import { LABELS } from '../../src/api/names.js';
import type { NotebookServer } from '../../src/api/types.js';
import { requireDocker, waitFor } from '../helpers/docker.js';
import { startHangingDockerProxy, type HangingDockerProxy } from '../helpers/hanging-docker-proxy.js';
import { containerEnv, getNbs, HTTPD, nbsYaml, patchSpec, setupEnv, waitReady, type Env } from './operator-harness.js';

/** A condition of `o` whose message says a Docker call went unanswered, naming the call. */
function timeoutCondition(o: NotebookServer, call: RegExp): string | undefined {
  const c = (o.status?.conditions ?? []).find((x) => x.status === 'True' && x.type === 'Degraded' && /did not answer within/.test(x.message ?? ''));
  return c && call.test(c.message ?? '') ? `${c.reason}: ${c.message}` : undefined;
}

describe('fault: the Docker socket stops answering (a hanging proxy in front of the real dockerd)', function () {
  this.timeout(240_000);
  let proxy: HangingDockerProxy;
  let env: Env;

  before(async () => {
    const { docker } = await requireDocker();
    // dockerode's default socket path is a function that looks for the socket.
    const socketPath = (docker.modem as unknown as { socketPath: string | (() => string | Promise<string>) }).socketPath;
    proxy = await startHangingDockerProxy(typeof socketPath === 'function' ? await socketPath() : socketPath);
    // One worker: without deadlines, one hung call would hold every other server's reconcile too.
    env = await setupEnv('container', { concurrency: 1 }, { docker: new Docker({ socketPath: proxy.socketPath }), deadlines: { callMs: 5000, stopMs: 8000 } });
  });
  after(async () => {
    proxy?.hang(undefined);
    await env?.close();
    await proxy?.close();
  });

  it('calls about one server hang: it gets a condition naming the call, the others are reconciled meanwhile, it recovers when Docker answers', async () => {
    await env.kubectl(['apply', '-f', '-'], nbsYaml('stuck', { user: 'stuck', command: HTTPD }));
    const before = await waitReady(env, 'stuck');
    const uid = before.metadata.uid!;
    const [obs] = await env.backend.find(uid);
    const id = obs!.id;
    proxy.hang((_m, url) => url.includes(id) || url.includes(uid) || url.includes(obs!.name));

    // A spec change replaces the container: its `docker stop` never gets an answer.
    await patchSpec(env, 'stuck', { env: [{ name: 'CHANGED', value: '1' }] });
    const failing = await waitFor(
      'a condition naming the unanswered docker stop',
      async () => timeoutCondition(await getNbs(env, 'stuck'), new RegExp(`docker stop ${obs!.name}`)),
      60_000,
      250,
    );
    console.log(`      [fault] ${failing}`);
    expect(
      proxy.held.some((r) => r.startsWith(`POST`) && r.includes(`/containers/${id}/stop`)),
      proxy.held.join('\n'),
    ).to.equal(true);

    // Meanwhile other servers are created and become Ready, through the same single worker.
    const others = ['flow0', 'flow1', 'flow2'];
    await env.kubectl(['apply', '-f', '-'], others.map((n) => nbsYaml(n, { user: n, command: HTTPD })).join('---\n'));
    for (const n of others) await waitReady(env, n, '90s');
    expect(timeoutCondition(await getNbs(env, 'stuck'), /docker stop/), 'still stuck while its calls hang').to.be.a('string');

    // The socket answers again: the server converges on its new spec, in a new container.
    proxy.hang(undefined);
    const after = await waitReady(env, 'stuck', '90s');
    expect(after.status?.conditions?.find((c) => c.type === 'Degraded')?.status).to.equal('False');
    expect(await containerEnv(env, uid)).to.include('CHANGED=1');
    const now = await env.backend.find(uid);
    expect(now.map((o) => o.id))
      .to.have.length(1)
      .and.not.include(id);
  });

  it('every call hangs: the reconcile times out with a condition, and recovers when the socket answers', async () => {
    const o = await getNbs(env, 'flow0');
    proxy.hang(() => true);
    await patchSpec(env, 'flow0', { env: [{ name: 'AGAIN', value: '1' }] });
    const failing = await waitFor('a condition naming an unanswered call', async () => timeoutCondition(await getNbs(env, 'flow0'), /^.*docker /), 60_000, 250);
    console.log(`      [fault] ${failing}`);
    proxy.hang(undefined);
    await waitReady(env, 'flow0', '90s');
    expect(await containerEnv(env, o.metadata.uid!)).to.include('AGAIN=1');
    // Nothing duplicated by calls whose answers were lost.
    const all = await env.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.uid}=${o.metadata.uid}`] }) });
    expect(all).to.have.length(1);
  });
});
