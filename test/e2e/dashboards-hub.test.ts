/**
 * End to end through JupyterHub: a dashboard whose source is a git repository, shared with other
 * users (cdsdashboards' "Git Repo" source and "Selected Users" / "All Users").
 *
 * `nbswarm up` on this machine's Swarm, JupyterHub 3.0 with the spawner from hub/, a real git
 * server (git http-backend over HTTPS with Basic credentials on 127.0.0.1). alice spawns a named
 * server with cdsdashboards' options (presentation_type, presentation_path, git_repo,
 * git_repo_branch) plus viewers; the operator runs an admin-defined presentation type — R Shiny
 * behind nbswarm-dashboard-proxy — in a container that cloned the repository with the credentials
 * Secret the hub config names. Requests go through the real proxy: the owner and the viewers get
 * the app (200), other users get 403 from the dashboard's OAuth check, and a browser without a
 * token is sent to the hub, whose OAuth step refuses users without access. The viewers live in the
 * NotebookServer: editing them with kubectl changes who gets in.
 *
 * Networking stays on loopback: servers use host networking on ports the operator allocates.
 */
import assert from 'node:assert/strict';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { waitFor } from '../helpers/docker.js';
import { startHubStack, type HubStack } from './hub-harness.js';

const SHINY_IMAGE = process.env.NBSWARM_SHINY_IMAGE ?? 'local/shiny:latest';
const NOTEBOOK_IMAGE = process.env.NBSWARM_NOTEBOOK_IMAGE ?? 'local/notebook:latest';
const appR = (title: string) => `library(shiny)\nui <- fluidPage(titlePanel("${title}"))\nserver <- function(input, output) {}\nshinyApp(ui, server)\n`;

describe('e2e: dashboards through JupyterHub (git source, viewers)', function () {
  this.timeout(240_000);
  let stack: HubStack;
  let git: GitServer;
  const tokens: Record<string, string> = {};

  before(async function () {
    git = await startGitServer();
    git.commit('sales', { 'dashboards/q3/app.R': appR('Q3 sales from git') }, 'first version');
    const lo = 24000 + Math.floor(Math.random() * 60) * 100;
    stack = await startHubStack({
      images: [SHINY_IMAGE, NOTEBOOK_IMAGE],
      policy: `networkMode: host
hostPortRange: [${lo}, ${lo + 99}]
allowedImages: ["local/*"]
defaultImage: ${NOTEBOOK_IMAGE}
proxyCommand: ["start.sh", "nbswarm-dashboard-proxy"]
launchers:
  shinyapp:
    requiresPath: true
    # --hub-auth-cache=2: a viewer change is in force within seconds (the default caches 30 s).
    args: ["--destport=0", "--hub-auth-cache=2", "R", "{--}no-echo", "{-}e", "shiny::runApp('{presentation_path}', port={port}, host='127.0.0.1', launch.browser=FALSE)"]
dashboards:
  git:
    allowedUrls: ["https://127.0.0.1:*/**"]
  proxy:
    readyTimeout: 90
resources:
  defaults: { cpu: "1", memory: 512Mi }
`,
      hubConfig: `
c.Authenticator.allowed_users = {'alice', 'bob', 'carol', 'dave'}
c.NotebookServerSpawner.image = '${NOTEBOOK_IMAGE}'
c.NotebookServerSpawner.allowed_images = ['${NOTEBOOK_IMAGE}', '${SHINY_IMAGE}']
c.NotebookServerSpawner.allowed_modes = ['notebook', 'shinyapp']
c.NotebookServerSpawner.git_secret_name = 'git-{username}'
c.Spawner.start_timeout = 180
# Viewer changes made with kubectl reach the hub at the next poll.
c.Spawner.poll_interval = 2
`,
    });
    await stack.kubectl([
      'create',
      'secret',
      'generic',
      'git-alice',
      '-n',
      stack.ns,
      `--from-literal=username=${git.username}`,
      `--from-literal=password=${git.password}`,
      `--from-literal=ca.crt=${git.caPem}`,
    ]);
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const created = await stack.hubApi('POST', '/users', { usernames: [user] });
      assert.ok([201, 409].includes(created.status), JSON.stringify(created.json));
      const t = await stack.hubApi('POST', `/users/${user}/tokens`, { note: 'e2e dashboards' });
      assert.equal(t.status, 201, JSON.stringify(t.json));
      tokens[user] = t.json.token;
    }
  });

  after(async function () {
    this.timeout(120_000);
    await stack?.stop();
    await git?.close();
  });

  const DASH = '/user/alice/sales/';
  async function statusOf(user: string | undefined): Promise<number> {
    const res = await stack.viaProxy(DASH, user ? tokens[user] : undefined);
    await res.arrayBuffer();
    return res.status;
  }

  it("alice spawns a dashboard from a git repository with cdsdashboards' options; she and bob (a viewer) get it, carol gets 403", async () => {
    const res = await stack.hubApi('POST', '/users/alice/servers/sales', {
      image: SHINY_IMAGE,
      presentation_type: 'shinyapp',
      presentation_path: 'dashboards/q3',
      git_repo: git.url('sales'),
      git_repo_branch: 'main',
      viewers: { users: ['bob'] },
    });
    assert.ok([201, 202].includes(res.status), `spawn: HTTP ${res.status} ${JSON.stringify(res.json)}\n${stack.hubLog()}`);
    await waitFor('the hub to report alice/sales ready', async () => (await stack.hubApi('GET', '/users/alice')).json?.servers?.sales?.ready, 180_000, 500);

    const owner = await waitFor(
      'the app through the proxy',
      async () => {
        const r = await stack.viaProxy(DASH, tokens.alice);
        const body = await r.text();
        return r.status === 200 ? body : undefined;
      },
      120_000,
      500,
    );
    assert.match(owner, /<title>Q3 sales from git<\/title>/);
    assert.ok(git.stats.authenticated > 0, 'the container cloned with the Secret named by git_secret_name');

    const nbs = JSON.parse(await stack.kubectl(['get', 'nbs', 'nbs-alice-sales', '-n', stack.ns, '-o', 'json']));
    assert.equal(nbs.spec.mode, 'shinyapp');
    assert.deepEqual(nbs.spec.git, { url: git.url('sales'), branch: 'main', secretName: 'git-alice' });
    assert.deepEqual(nbs.spec.viewers, { allUsers: false, users: ['bob'], groups: [] });

    assert.equal(await statusOf('bob'), 200, 'bob is a viewer');
    assert.equal(await statusOf('carol'), 403, 'carol is not');
  });

  it("a browser without a token is sent to the hub's OAuth; there carol is refused, bob is asked to confirm", async () => {
    const first = await stack.viaProxy(DASH);
    assert.equal(first.status, 302);
    const authorize = new URL(first.headers.get('location')!, `http://127.0.0.1:${stack.hubPort}`);
    assert.equal(authorize.pathname, '/hub/api/oauth2/authorize');
    assert.equal(authorize.searchParams.get('client_id'), 'jupyterhub-user-alice-sales');

    async function loginCookies(user: string): Promise<string> {
      const res = await fetch(`http://127.0.0.1:${stack.hubPort}/hub/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: user, password: 'any' }),
      });
      assert.equal(res.status, 302, `login ${user}`);
      return res.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
    }
    const asUser = async (user: string) => fetch(authorize, { redirect: 'manual', headers: { Cookie: await loginCookies(user) } });
    const carol = await asUser('carol');
    assert.equal(carol.status, 403);
    assert.match(await carol.text(), /You do not have permission to access/);
    const bob = await asUser('bob');
    assert.equal(bob.status, 200, 'bob is shown the hub\'s "authorize access" page for alice\'s server');
    assert.match(await bob.text(), /alice/);
  });

  it('the viewers live in the NotebookServer: kubectl edits them, groups and "all users" work', async () => {
    const patch = (viewers: object) =>
      stack.kubectl(['patch', 'nbs', 'nbs-alice-sales', '-n', stack.ns, '--type', 'merge', '-p', JSON.stringify({ spec: { viewers } })]);
    // The hub applies a change at its next poll (2 s here); the dashboard proxy caches a user's
    // access for 2 s here (--hub-auth-cache; 30 s by default), so a change is in force within seconds.
    const until = (what: string, check: () => Promise<boolean>) => waitFor(what, async () => ((await check()) ? true : undefined), 60_000, 1000);

    await patch({ users: ['carol'] });
    await until('carol in, bob out', async () => (await statusOf('carol')) === 200 && (await statusOf('bob')) === 403);

    await patch({ users: [], groups: ['analysts'] });
    await until('carol out again', async () => (await statusOf('carol')) === 403);
    assert.equal(await statusOf('dave'), 403);
    const added = await stack.hubApi('POST', '/groups/analysts/users', { users: ['dave'] });
    assert.equal(added.status, 200, JSON.stringify(added.json));
    await until('dave in through the group', async () => (await statusOf('dave')) === 200);

    await patch({ allUsers: true, groups: [] });
    await until('every user in', async () => (await statusOf('bob')) === 200 && (await statusOf('carol')) === 200 && (await statusOf('dave')) === 200);
    assert.equal(await statusOf('alice'), 200);
  });

  it("a git URL the policy refuses fails the spawn with the resource's message", async () => {
    const res = await stack.hubApi('POST', '/users/alice/servers/bad', {
      image: SHINY_IMAGE,
      presentation_type: 'shinyapp',
      presentation_path: 'x',
      git_repo: 'http://127.0.0.1:1/repo.git',
    });
    const message = res.status === 500 ? String(res.json.message) : JSON.stringify(res.json);
    assert.match(message, /spec\.git\.url "http:\/\/127\.0\.0\.1:1\/repo\.git" uses http:\/\/, which nbswarm does not clone from/);
  });
});
