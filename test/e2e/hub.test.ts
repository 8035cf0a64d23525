/**
 * End to end: `nbswarm up` (embedded API server + operator on Swarm), a real JupyterHub 3.0
 * (Debian's, under /usr/bin/python3) with configurable-http-proxy, DummyAuthenticator and the
 * spawner from hub/, driven through the hub's REST API with an admin service token and, for logins,
 * through the browser's flow (login form, OAuth redirects, cookies). Networking stays on loopback
 * (see hub-stack.ts).
 *
 * Needs: dockerd in Swarm mode, images local/notebook:latest and local/busybox:test
 * (images/build-all.sh), Debian's jupyterhub + node-configurable-http-proxy + python3-kubernetes.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describeWalk, loginAndOpen } from './browser.js';
import { BROKEN_IMAGE, CRASH_LOOP_BACKOFF, HubStack, serverPath, urlName } from './hub-stack.js';
import { freePort, sleep, waitFor } from '../helpers/docker.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

describe('e2e: JupyterHub + NotebookServerSpawner + nbswarm up (Swarm)', function () {
  this.timeout(180_000);

  const stack = new HubStack();
  const { run } = stack;
  const spawnTimes: number[] = [];
  const viaProxy = (path: string, init?: RequestInit) => stack.viaProxy(path, init);
  const getNbs = (name: string) => stack.getNbs(name);

  /**
   * Log `user` in through the browser's flow and open their server: the page must come from the
   * server (200 under its path) after the OAuth callback, where a server holding a stale token fails.
   */
  async function assertBrowserLogin(user: string, server = ''): Promise<void> {
    const path = serverPath(user, server);
    const page = await loginAndOpen(stack.hubBase, user, path);
    const walk = describeWalk(page);
    assert.equal(page.status, 200, `${user}: ${walk}`);
    assert.ok(page.url.startsWith(path), `${user} ends on their server: ${walk}`);
    assert.ok(
      page.hops.some((h) => h.url.startsWith(`${path}oauth_callback`) && h.status === 302),
      `${user} went through the OAuth callback: ${walk}`,
    );
    assert.ok(!page.hops.some((h) => h.status >= 500), `${user}: ${walk}`);
  }

  /** The token the server's container runs with: the one in its Secret, and one the hub accepts for `user`. */
  async function assertServerHoldsCurrentToken(user: string, resource: string): Promise<void> {
    const obj = await getNbs(resource);
    const container = await stack.runningContainer(obj.metadata.uid);
    assert.ok(container, `${resource} has a running container`);
    const env: string[] = (await stack.docker.getContainer(container.Id).inspect()).Config.Env;
    const token = env.find((e) => e.startsWith('JUPYTERHUB_API_TOKEN='))?.slice('JUPYTERHUB_API_TOKEN='.length);
    assert.ok(token, 'the container has a hub token');
    const secrets = await stack.tokenSecrets(resource);
    assert.equal(secrets.length, 1, `one token Secret: ${secrets.join(', ')}`);
    const r = await stack.kubectl(['get', 'secret', secrets[0]!, '-n', stack.ns, '-o', 'jsonpath={.data.token}']);
    assert.equal(Buffer.from(r.stdout, 'base64').toString(), token, 'the container runs with the token of its Secret');
    const me = await stack.hubApi('GET', '/user', undefined, token);
    assert.equal(me.status, 200, `the hub accepts the server's token: ${JSON.stringify(me.json)}`);
    assert.equal(me.json.name, user);
  }

  before(async function () {
    this.timeout(240_000);
    await stack.start();
    const created = await stack.hubApi('POST', '/users', { usernames: ['alice'] });
    assert.equal(created.status, 201, JSON.stringify(created.json));
  });

  after(async function () {
    this.timeout(180_000);
    await stack.close();
    if (spawnTimes.length) {
      console.log(`      hub spawn → proxy answering: ${spawnTimes.map((t) => t.toFixed(2)).join(', ')} s; median ${median(spawnTimes).toFixed(2)} s`);
    }
  });

  it("starts alice's default server; the proxy serves its /api", async () => {
    spawnTimes.push(await stack.spawnAndReach('alice'));
    const res = await viaProxy('/user/alice/api');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { version?: string };
    assert.match(String(body.version), /^\d+\.\d+/);
    const model = await stack.serverModel('alice');
    assert.equal(model?.ready, true);
    assert.equal(model?.state?.object_name, 'nbs-alice');
  });

  it("runs alice's named server dash1 beside it: two NotebookServers, two Swarm services, both in kubectl get nbs", async () => {
    await stack.spawnAndReach('alice', 'dash1');
    const byServer = new Map<string, any>((await stack.listNbs()).map((o: any) => [o.spec.servername, o]));
    assert.deepEqual([...byServer.keys()].sort(), ['', 'dash1']);
    for (const o of byServer.values()) {
      assert.equal(o.spec.user, 'alice');
      assert.equal(o.status.phase, 'Running');
      assert.match(o.status.endpoint.hostUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    }
    const services = (await stack.docker.listServices({ filters: JSON.stringify({ label: [`nbswarm.io/namespace=${stack.ns}`] }) } as any)) as unknown as any[];
    assert.equal(services.length, 2);
    const table = await stack.kubectl(['get', 'nbs', '-n', stack.ns]);
    for (const o of byServer.values()) assert.ok(table.stdout.includes(o.status.endpoint.hostUrl), table.stdout);
    assert.match(table.stdout, /dash1/);
  });

  it("does not put the hub's API token in the NotebookServer (kubectl get nbs -o yaml); the server holds the token of its one Secret", async () => {
    const [secret, ...more] = await stack.tokenSecrets('nbs-alice');
    assert.ok(secret && more.length === 0, 'one token Secret per server');
    const data = await stack.kubectl(['get', 'secret', secret, '-n', stack.ns, '-o', 'jsonpath={.data.token}']);
    const token = Buffer.from(data.stdout, 'base64').toString();
    assert.ok(token.length >= 16, 'the Secret holds the token');
    const yaml = await stack.kubectl(['get', 'nbs', '-n', stack.ns, '-o', 'yaml']);
    assert.equal(yaml.code, 0);
    assert.ok(!yaml.stdout.includes(token), 'token must not appear in the NotebookServer');
    assert.match(yaml.stdout, /secretKeyRef/);
    await assertServerHoldsCurrentToken('alice', 'nbs-alice');
  });

  it('logs alice in through the browser flow (login form, OAuth callback, cookies)', async () => {
    await assertBrowserLogin('alice');
  });

  it('keeps routing to the running server across a hub restart, without respawning', async () => {
    const before = await getNbs('nbs-alice');
    await stack.stopHub();
    await stack.startHub();
    const model = await waitFor('the restarted hub to load alice', async () => stack.serverModel('alice'), 30_000, 100);
    assert.equal(model.ready, true);
    assert.equal((await viaProxy('/user/alice/api')).status, 200);
    const after = await getNbs('nbs-alice');
    assert.equal(after.metadata.uid, before.metadata.uid);
    assert.equal(after.metadata.generation, before.metadata.generation, 'the hub must not have patched the spec');
    assert.equal(after.status.backend.id, before.status.backend.id);
  });

  it('stops (resource kept, stopped, token Secret gone) and starts again with the files of the first session', async () => {
    const content = `written by the e2e run ${run}`;
    const put = await viaProxy('/user/alice/api/contents/work/e2e.txt', {
      method: 'PUT',
      body: JSON.stringify({ type: 'file', format: 'text', content }),
    });
    assert.ok([200, 201].includes(put.status), `PUT contents: HTTP ${put.status} ${await put.text()}`);

    const uid = (await getNbs('nbs-alice')).metadata.uid;
    await stack.stopServer('alice');
    const stopped = await getNbs('nbs-alice');
    assert.equal(stopped.spec.stopped, true);
    assert.equal(stopped.status.phase, 'Stopped');
    const running = await stack.docker.listContainers({ filters: JSON.stringify({ label: [`nbswarm.io/uid=${uid}`], status: ['running'] }) });
    assert.deepEqual(
      running.map((c) => c.Names),
      [],
      'phase Stopped means no container runs',
    );
    assert.deepEqual(await stack.tokenSecrets('nbs-alice'), [], 'a stopped server keeps no token');

    spawnTimes.push(await stack.spawnAndReach('alice'));
    const got = await viaProxy('/user/alice/api/contents/work/e2e.txt');
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as { content: string }).content, content);
  });

  it("fails a spawn the operator's policy refuses with the resource's message, not a hang; nothing is left running or holding a token", async () => {
    const res = await stack.spawn('alice', 'bad', { image: 'evil/miner:1' });
    assert.equal(res.status, 500);
    assert.match(res.json.message, /not allowed by the operator policy/);
    assert.equal((await stack.serverModel('alice', 'bad'))?.ready ?? false, false);
    const obj = await waitFor(
      'the refused server stopped',
      async () => {
        const o = await getNbs('nbs-alice-bad');
        return o?.spec.stopped ? o : undefined;
      },
      30_000,
    );
    assert.match(obj.status.message, /stopped|not allowed/);
    assert.deepEqual(await stack.tokenSecrets('nbs-alice-bad'), []);
  });

  it('a spawn the API refuses (422) leaves no token Secret behind', async () => {
    const res = await stack.spawn('alice', 'refused');
    assert.equal(res.status, 500);
    assert.match(res.json.message, /spec\.resources\.memory/);
    assert.equal(await getNbs('nbs-alice-refused'), undefined);
    await waitFor('no token Secret of the refused spawn', async () => (await stack.tokenSecrets('nbs-alice-refused')).length === 0, 20_000);
  });

  it('with delete_on_stop: stop removes the resource and its service, a new start still has the files', async () => {
    await stack.spawnAndReach('alice', 'gone1');
    const content = `kept across a delete ${run}`;
    const put = await viaProxy('/user/alice/gone1/api/contents/work/gone.txt', {
      method: 'PUT',
      body: JSON.stringify({ type: 'file', format: 'text', content }),
    });
    assert.ok([200, 201].includes(put.status), `PUT contents: HTTP ${put.status}`);
    const uid = (await getNbs('nbs-alice-gone1')).metadata.uid;

    await stack.stopServer('alice', 'gone1');
    assert.equal(await getNbs('nbs-alice-gone1'), undefined, 'the NotebookServer is gone');
    assert.deepEqual(await stack.tokenSecrets('nbs-alice-gone1'), []);
    const services = (await stack.docker.listServices({ filters: JSON.stringify({ label: [`nbswarm.io/uid=${uid}`] }) } as any)) as unknown as any[];
    assert.equal(services.length, 0);

    await stack.spawnAndReach('alice', 'gone1');
    assert.notEqual((await getNbs('nbs-alice-gone1')).metadata.uid, uid, 'a new resource');
    const got = await viaProxy('/user/alice/gone1/api/contents/work/gone.txt');
    assert.equal(((await got.json()) as { content: string }).content, content);
    await stack.stopServer('alice', 'gone1');
  });

  /** The failure message of a spawn: from the POST's error, or from the progress stream when pending. */
  async function spawnFailure(name: string, options: object): Promise<string> {
    const res = await stack.spawn('alice', name, options);
    if (res.status === 500) return String(res.json.message);
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const progress = await fetch(`${stack.hubBase}/hub/api/users/alice/servers/${name}/progress`, {
      headers: { Authorization: `token ${stack.adminToken}` },
    });
    const text = await progress.text();
    const events = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => JSON.parse(l.slice(5)));
    const failed = events.find((e) => e.failed);
    assert.ok(failed, text);
    return String(failed.message);
  }

  it("fails a spawn whose container cannot run the server (it crashes twice before it is Ready) with the resource's message", async () => {
    // The test image has neither start.sh nor jupyterhub-singleuser.
    const message = await spawnFailure('broken', { image: BROKEN_IMAGE });
    assert.match(message, /NotebookServer \S*nbs-alice-broken crashed 2 times while starting: .*non-zero exit/);
    assert.equal((await stack.serverModel('alice', 'broken'))?.ready ?? false, false);
    // The hub stopped it after the failed spawn: nothing keeps running, no token is left.
    await waitFor('the broken server stopped', async () => (await getNbs('nbs-alice-broken'))?.spec.stopped === true, 30_000);
    assert.deepEqual(await stack.tokenSecrets('nbs-alice-broken'), []);
  });

  it("fails a spawn that never gets Ready at start_timeout with the resource's message, not a hang", async () => {
    const message = await spawnFailure('slow', {});
    assert.match(message, /nbs-alice-slow not ready after 6s: .+/);
    assert.equal((await stack.serverModel('alice', 'slow'))?.ready ?? false, false);
    // The hub stopped it after the failed spawn: nothing keeps running.
    const obj = await getNbs('nbs-alice-slow');
    assert.equal(obj.spec.stopped, true);
    assert.deepEqual(await stack.tokenSecrets('nbs-alice-slow'), []);
  });

  it('runs servers for names JupyterHub accepts: user "zoë", server "My Dash!" (escaped for Docker, raw in the spec)', async () => {
    await stack.hubApi('POST', '/users', { usernames: ['zoë'] });
    await Promise.all([stack.spawnAndReach('zoë'), stack.spawnAndReach('alice', 'My Dash!')]);
    const items = await stack.listNbs();
    const zoe = items.find((o) => o.spec.user === 'zoë');
    const dash = items.find((o) => o.spec.servername === 'My Dash!');
    assert.ok(zoe && dash, items.map((o) => `${o.spec.user}/${o.spec.servername}`).join(', '));
    assert.match(zoe.metadata.name, /^nbs-zo-c3-ab-[0-9a-f]{8}$/);
    // DockerSpawner's escaping: everything but [a-z0-9] becomes "-" + the hex of its UTF-8 bytes. The
    // name carries the namespace (here named like the run), as every namespace but "default" does.
    assert.equal(dash.status.backend.name, `${run}-${stack.ns}-alice--4dy-20-44ash-21`);
    await assertBrowserLogin('zoë');
    await assertBrowserLogin('alice', 'My Dash!');
    await Promise.all([stack.stopServer('zoë'), stack.stopServer('alice', 'My Dash!')]);
  });

  describe('crashes', function () {
    /** What became of one user's spawn after a crash. */
    interface Outcome {
      user: string;
      ready: boolean;
      problems: string[];
    }

    /** The API's side, read once per round for every user (kubectl runs are not cheap on 2 cores). */
    interface Snapshot {
      objects: any[];
      /** Token Secret names by NotebookServer name. */
      secrets: Map<string, string[]>;
    }

    async function snapshot(): Promise<Snapshot> {
      const objects = await stack.listNbs();
      const r = await stack.kubectl(['get', 'secrets', '-n', stack.ns, '-l', 'nbswarm.io/name', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const secrets = new Map<string, string[]>();
      for (const s of JSON.parse(r.stdout).items) {
        const owner = String(s.metadata.labels['nbswarm.io/name']);
        secrets.set(owner, [...(secrets.get(owner) ?? []), s.metadata.name]);
      }
      return { objects, secrets };
    }

    /**
     * One user's server as the hub, the proxy, the API and Docker see it. Consistent means: ready
     * and answering through the proxy (no phantom), or not running with no Swarm task running for
     * it and its object stopped or gone (no orphan), and a token Secret exactly while it runs.
     */
    async function outcomeOf(user: string, api: Snapshot): Promise<Outcome | 'pending'> {
      const model = await stack.serverModel(user);
      if (model?.pending) return 'pending';
      const problems: string[] = [];
      const resource = model?.state?.object_name as string | undefined;
      const objects = api.objects.filter((o) => o.spec.user === user && o.spec.servername === '');
      const tasks = await stack.runningTasks(user);
      const secrets = objects.flatMap((o) => api.secrets.get(o.metadata.name) ?? []);
      if (model?.ready) {
        const res = await viaProxy(`${serverPath(user)}api`);
        if (res.status !== 200) problems.push(`phantom: the hub says ready, the proxy answers ${res.status}`);
        if (tasks.length !== 1) problems.push(`ready with ${tasks.length} running tasks`);
        if (secrets.length !== 1) problems.push(`ready with token Secrets [${secrets.join(', ')}]`);
        if (resource && !objects.some((o) => o.metadata.name === resource)) problems.push(`the hub's object ${resource} does not exist`);
        return { user, ready: true, problems };
      }
      if (model) return 'pending'; // a server entry, neither ready nor pending: the hub is still deciding
      if (tasks.length) problems.push(`orphan: no hub server, ${tasks.length} running task(s)`);
      for (const o of objects) {
        const stopped = o.spec.stopped === true || o.metadata.annotations?.['nbswarm.io/stopped'] !== undefined;
        if (!stopped && !o.metadata.deletionTimestamp) problems.push(`orphan: no hub server, ${o.metadata.name} is not stopped (${o.status?.phase})`);
      }
      if (secrets.length) problems.push(`token Secrets without a server: ${secrets.join(', ')}`);
      return { user, ready: false, problems };
    }

    async function settle(users: string[]): Promise<Outcome[]> {
      let last: Array<Outcome | 'pending'> = [];
      try {
        return await waitFor(
          'every spawn settled consistently',
          async () => {
            const api = await snapshot();
            last = await Promise.all(users.map((u) => outcomeOf(u, api)));
            return last.every((o) => o !== 'pending' && o.problems.length === 0) ? (last as Outcome[]) : undefined;
          },
          90_000,
          1000,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}\n--- hub.log:\n${stack.hubLogTail(60)}\n--- up.log:\n${stack.upLogTail(20)}`);
      }
    }

    const timings: string[] = [];
    after(() => {
      if (timings.length) console.log(`      crash matrix: ${timings.join('; ')}`);
    });

    /**
     * A burst of 5 spawns, then kill -9 of the hub or of `nbswarm up` `afterMs` into it, then a
     * restart (the hub at once, `nbswarm up` 4 s later). Then every user's server must be
     * consistent (see outcomeOf), and each user must be able to start it and log in through the
     * browser flow.
     */
    async function crashCase(tag: string, victim: 'hub' | 'up', afterMs: number): Promise<void> {
      const t0 = performance.now();
      const users = [`${tag}-1`, `${tag}-2`, `${tag}-3`, `zoë ${tag}`, `ann lee ${tag}`];
      const created = await stack.hubApi('POST', '/users', { usernames: users });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const posts = users.map((u) => stack.spawn(u).catch((err: Error) => ({ status: -1, json: err.message })));
      await sleep(afterMs);
      let written: number | undefined;
      if (victim === 'hub') {
        await stack.killHub();
        // How far the spawns had got when it died (for the log: which recovery path this run took).
        written = (await stack.listNbs()).filter((o) => users.includes(o.spec.user)).length;
        await stack.startHub();
      } else {
        await stack.killUp();
        await sleep(4000);
        await stack.startUp();
      }
      const answers = await Promise.all(posts);
      const outcomes = await settle(users);
      const ready = outcomes.filter((o) => o.ready).length;
      if (victim === 'up') {
        // A short outage of the API server is ridden out: every spawn succeeds.
        assert.equal(ready, users.length, `every spawn rides out the outage: ${JSON.stringify(answers)}`);
      }
      const settled = (performance.now() - t0) / 1000;
      // Each user starts (those the crash left stopped) and logs in through the browser.
      await Promise.all(outcomes.filter((o) => !o.ready).map((o) => stack.spawnAndReach(o.user)));
      await Promise.all(users.map((u) => assertBrowserLogin(u)));
      await Promise.all(users.map(async (u) => assertServerHoldsCurrentToken(u, String((await stack.serverModel(u))?.state?.object_name))));
      await Promise.all(users.map((u) => stack.stopServer(u)));
      const at = written === undefined ? '' : `${written}/5 objects written at the kill, `;
      timings.push(
        `${tag}: ${at}${ready}/5 ready after the restart, consistent after ${settled.toFixed(1)} s, case ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }

    it('kill -9 of the hub 0.3 s into a burst of 5 spawns, restart: each server ready and adopted, or stopped; no phantom, no orphan; all log in', async () => {
      await crashCase('h03', 'hub', 300);
    });

    it('kill -9 of the hub 1 s into a burst of 5 spawns, restart: each server ready and adopted, or stopped; no phantom, no orphan; all log in', async () => {
      await crashCase('h10', 'hub', 1000);
    });

    it('kill -9 of nbswarm up 0.3 s into a burst of 5 spawns, back 4 s later: every spawn rides it out; all log in', async () => {
      await crashCase('u03', 'up', 300);
    });

    it('kill -9 of nbswarm up 1 s into a burst of 5 spawns, back 4 s later: every spawn rides it out; all log in', async () => {
      await crashCase('u10', 'up', 1000);
    });

    it('a crash Swarm restarts is not a failure (the hub keeps the server); a crash loop is dropped and stopped; every new start runs the current token', async () => {
      const user = 'looper';
      await stack.hubApi('POST', '/users', { usernames: [user] });
      await stack.spawnAndReach(user);
      const resource = String((await stack.serverModel(user))?.state?.object_name);
      const uid = (await getNbs(resource)).metadata.uid;

      // One crash: Swarm restarts the container; the resource is never Failed meanwhile, and the
      // hub (checking every 2 s) keeps the server, which answers again.
      const first = await stack.runningContainer(uid);
      assert.ok(first);
      await stack.docker.getContainer(first.Id).kill();
      const phases = new Set<string>();
      await waitFor(
        'the server answering again after one crash',
        async () => {
          phases.add(String((await getNbs(resource))?.status?.phase));
          const c = await stack.runningContainer(uid);
          return c && c.Id !== first.Id && (await viaProxy(`${serverPath(user)}api`)).status === 200;
        },
        60_000,
        200,
      );
      assert.ok(!phases.has('Failed'), `phases while Swarm restarted it: ${[...phases].join(', ')}`);
      assert.equal((await stack.serverModel(user))?.ready, true, 'the hub kept the server');
      assert.equal((await getNbs(resource)).status.restartCount, 1);

      // A crash loop: killed as soon as each new container runs, until Swarm stops restarting it.
      let kills = 1;
      await waitFor(
        'Swarm to give up and the hub to drop the server',
        async () => {
          if (!(await stack.serverModel(user))) return true;
          const c = await stack.runningContainer(uid);
          if (c) {
            await stack.docker
              .getContainer(c.Id)
              .kill()
              .catch(() => undefined);
            kills++;
          }
          return false;
        },
        120_000,
        100,
      );
      // Dropped by the hub means stopped: the operator's crash-loop back-off must not run it for nobody.
      const dropped = await getNbs(resource);
      assert.equal(dropped.spec.stopped, true, `stopped after ${kills} kills`);
      await waitFor('no task running for the dropped server', async () => (await stack.runningTasks(user)).length === 0, 30_000);
      assert.deepEqual(await stack.tokenSecrets(resource), []);

      // Started again, twice: each start is answered by this start (not the old Failed), and the
      // server runs the hub's current token (OAuth login, activity with its token).
      for (let round = 1; round <= 2; round++) {
        await stack.spawnAndReach(user);
        await assertBrowserLogin(user);
        await assertServerHoldsCurrentToken(user, resource);
        await stack.stopServer(user);
      }
    });

    it('a server whose spec says running is brought back by the operator after Swarm gives up (back-off, reason shown)', async function () {
      // Swarm's 5 restarts take ~15 s; when the operator's first look comes after the first back-off
      // has run out it restarts at once, so the first Failed it writes may be a later round.
      this.timeout(240_000);
      // The container exits until the test opens a gate on loopback, so Swarm's restart policy
      // runs out; then only the operator's back-off can start it again.
      const gatePort = await freePort();
      const name = 'backoff-demo';
      const manifest = {
        apiVersion: 'nbswarm.io/v1alpha1',
        kind: 'NotebookServer',
        metadata: { name, namespace: stack.ns },
        spec: {
          user: 'operator-only',
          image: BROKEN_IMAGE,
          mode: 'custom',
          command: ['sh', '-c', `wget -q -O /dev/null http://127.0.0.1:${gatePort}/ || exit 3; exec httpd -f -p {port} -h /`],
        },
      };
      const r = await stack.kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
      assert.equal(r.code, 0, r.stderr);
      const seen: Array<{ phase: string; reason?: string; restarts?: number; message?: string }> = [];
      const failed = await waitFor(
        'Swarm to stop restarting it (Failed with the back-off)',
        async () => {
          const o = await getNbs(name);
          const ready = o?.status?.conditions?.find((c: any) => c.type === 'Ready');
          seen.push({ phase: o?.status?.phase, reason: ready?.reason, restarts: o?.status?.restartCount, message: o?.status?.message });
          return o?.status?.phase === 'Failed' ? o : undefined;
        },
        120_000,
        250,
      );
      // The first Failed this poll sees is usually attempt 1; on a loaded machine a reconcile that comes
      // after the first back-off has run out restarts at once, and the first Failed written is a later attempt.
      const retry = /Swarm stopped restarting it, the operator starts it again at \S+ \(back-off (\d+) s, attempt (\d+)\)/.exec(failed.status.message);
      assert.ok(retry, failed.status.message);
      const { initialSeconds, maxSeconds } = CRASH_LOOP_BACKOFF;
      assert.equal(
        Number(retry[1]),
        Math.min(initialSeconds * 2 ** (Number(retry[2]) - 1), maxSeconds),
        `back-off doubles from ${initialSeconds} s up to ${maxSeconds} s: ${failed.status.message}`,
      );
      assert.ok(
        seen.some((s) => s.reason === 'Restarting'),
        `Restarting while Swarm retried: ${JSON.stringify(seen.slice(-5))}`,
      );
      assert.ok(
        seen.filter((s) => s.phase === 'Failed').every((s) => /Swarm stopped restarting it/.test(s.message ?? '')),
        'Failed only once Swarm gave up',
      );

      const gate = http.createServer((_req, res) => res.end('open'));
      await new Promise<void>((ok) => gate.listen(gatePort, '127.0.0.1', ok));
      try {
        const back = await waitFor(
          'the operator to start it again',
          async () => {
            const o = await getNbs(name);
            return o?.status?.phase === 'Running' ? o : undefined;
          },
          90_000,
          250,
        );
        const restarted = back.status.conditions.find((c: any) => c.type === 'Restarted');
        assert.equal(restarted?.reason, 'CrashLoopBackOff', JSON.stringify(back.status));
        const res = await fetch(back.status.endpoint.hostUrl).catch(() => undefined);
        assert.ok(res, `${back.status.endpoint.hostUrl} answers`);
        const events = JSON.parse(
          (await stack.kubectl(['get', 'events', '-n', stack.ns, '--field-selector', `involvedObject.name=${name}`, '-o', 'json'])).stdout,
        ).items;
        assert.ok(
          events.some((e: any) => e.reason === 'Restarted' && /after Docker stopped restarting it/.test(e.message)),
          JSON.stringify(events.map((e: any) => e.reason)),
        );
      } finally {
        gate.close();
        await stack.kubectl(['delete', 'nbs', name, '-n', stack.ns, '--wait=true']);
      }
    });
  });

  it('names in URLs are escaped as JupyterHub escapes them', () => {
    assert.equal(urlName('My Dash!'), 'My%20Dash%21');
    assert.equal(urlName('ann lee'), 'ann%20lee');
    assert.equal(urlName('zoë'), 'zo%C3%AB');
    assert.equal(urlName('a@b'), 'a@b');
  });
});
