/**
 * Presentation modes on a real dockerd. A real R Shiny app (the images/ recipe's local/shiny
 * image, Debian's r-cran-shiny) launched by a direct launcher entry from the policy answers with
 * the app's HTML; mode custom runs what spec.command says; on Swarm the start is visible as
 * task-state conditions and Events (`kubectl describe`), and a task that cannot start is reported
 * with Docker's own reason.
 *
 * Git sources: a real git server (git http-backend over HTTPS with Basic credentials, on
 * 127.0.0.1; test/helpers/git-server.ts) holds a Shiny app; a NotebookServer of a mode the policy
 * adds runs it through nbswarm-dashboard-proxy after the container cloned it with credentials from
 * a Secret (files, not env), and pulls the next commit on restart. The servers use host networking,
 * the one way a container reaches the loopback server.
 */
import { expect } from 'chai';
import type { BackendKind } from '../../src/backends/types.js';
import { defaultPolicy } from '../../src/config/policy.js';
import { httpGet, waitFor } from '../helpers/docker.js';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { enabledModes } from '../../src/config/policy.js';
import { repoFolderName } from '../../src/config/git-source.js';
import { installCrd } from '../../src/controller/crd.js';
import { recordStatuses } from './status-recorder.js';
import { writeIntoVolume } from './volume-writer.js';
import { NS, dockerExec, getNbs, nbsYaml, patchSpec, setupEnv, waitPhase, waitReady, type Env } from './operator-harness.js';

const SHINY_IMAGE = process.env.NBSWARM_SHINY_IMAGE ?? 'local/shiny:latest';
const APP_TITLE = 'nbswarm shiny dashboard';
const APP_R = `library(shiny)
ui <- fluidPage(titlePanel("${APP_TITLE}"), textOutput("greeting"))
server <- function(input, output) { output$greeting <- renderText("hello from R") }
shinyApp(ui, server)
`;

/** The admin's direct R entry: jhsingle-native-proxy (the built-in rshiny launcher's wrapper) is not installable here. */
const RSHINY_DIRECT = {
  direct: true,
  requiresPath: true,
  args: ['R', '--no-echo', '-e', "shiny::runApp('{presentation_path}', port={port}, host='{ip}', launch.browser=FALSE)"],
};

for (const kind of ['service', 'container'] as BackendKind[]) {
  describe(`dashboards with the ${kind} backend`, function () {
    this.timeout(120_000);
    let env: Env;
    before(async function () {
      env = await setupEnv(kind, {
        allowedImages: ['local/*'],
        launchers: { ...defaultPolicy().launchers, rshiny: RSHINY_DIRECT },
        // R with shiny loaded needs more than the busybox default of the harness.
        resources: { defaults: { cpu: '1', memory: '64Mi' }, limits: { cpu: '1', memory: '1Gi' } },
      });
      try {
        await env.docker.getImage(SHINY_IMAGE).inspect();
      } catch {
        throw new Error(`${SHINY_IMAGE} is missing: build it with \`bash images/notebook/build.sh local/shiny:latest --with-shiny\``);
      }
    });
    after(async () => {
      await env?.close();
    });

    it("mode rshiny with a direct R launcher serves the app from the user's volume at status.endpoint.hostUrl", async () => {
      // The app lives in the user's home volume (the policy's {prefix}-{username}-home), as a user
      // would have saved it from their notebook server.
      const volume = `${env.prefix}-carol-home`;
      await writeIntoVolume(env.docker, volume, 'mkdir -p /v/apps/hello && printf "%s" "$APP" > /v/apps/hello/app.R && chown -R 1000:100 /v', { APP: APP_R });
      const rec = kind === 'service' ? await recordStatuses(env, 'shiny') : undefined;
      try {
        await env.kubectl(
          ['apply', '-f', '-'],
          nbsYaml('shiny', {
            user: 'carol',
            servername: 'dash',
            image: SHINY_IMAGE,
            mode: 'rshiny',
            app: { path: 'apps/hello' },
            resources: { memory: '512Mi' },
          }),
        );
        const o = await waitReady(env, 'shiny', '90s');
        const url = o.status!.endpoint!.hostUrl!;
        expect(url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
        const res = await httpGet(url, 5000);
        expect(res.status).to.equal(200);
        expect(res.body).to.contain(`<title>${APP_TITLE}</title>`);
        expect(res.body).to.contain('shiny');
        expect(o.status?.backend?.kind).to.equal(kind);
        expect(o.status?.backend?.image).to.equal(SHINY_IMAGE);
        // The admin's direct entry, placeholders filled by the operator (no proxy in between).
        const [obj] = await env.backend.find(o.metadata.uid!);
        const c: any = await env.docker.getContainer(obj!.containerId!).inspect();
        expect(c.Config.Cmd).to.deep.equal([
          'R',
          '--no-echo',
          '-e',
          `shiny::runApp('/home/jovyan/apps/hello', port=${env.policy.port}, host='0.0.0.0', launch.browser=FALSE)`,
        ]);
        expect(c.Config.WorkingDir).to.equal('/home/jovyan');
        const table = await env.kubectl(['get', 'nbs', 'shiny', '-n', NS]);
        expect(table).to.match(/shiny\s+carol\s+dash\s+rshiny\s+Running\s+http:\/\/127\.0\.0\.1/);

        if (rec) {
          // Progress on Swarm: before Running, the object went through at least one task-state
          // condition (Pending/Preparing/Starting: scheduled, image checked, app not answering yet).
          const firstRunning = rec.steps.findIndex((s) => s.phase === 'Running');
          expect(firstRunning, JSON.stringify(rec.steps)).to.be.greaterThan(0);
          const before = rec.steps.slice(0, firstRunning);
          expect(
            before.every((s) => s.phase === 'Creating' || s.phase === 'Pending' || s.phase === undefined),
            JSON.stringify(before),
          ).to.equal(true);
          expect(
            before.some((s) => s.ready === 'False' && ['Pending', 'Preparing', 'Starting'].includes(s.readyReason ?? '')),
            JSON.stringify(before),
          ).to.equal(true);
          const described = await env.kubectl(['describe', 'nbs', 'shiny', '-n', NS]);
          expect(described).to.match(/Normal\s+Created\s.*created service/);
          expect(described).to.match(/Normal\s+(Pending|ImagePulling|Starting)\s/);
          expect(described).to.match(/Normal\s+Ready\s.*server answers at http:\/\/127\.0\.0\.1/);
          expect(described).to.match(/Reason:\s+Scheduled\s+Status:\s+True\s+Type:\s+Scheduled/);
          const at = (re: RegExp) => described.search(re);
          expect(at(/Normal\s+Created\s/)).to.be.lessThan(at(/Normal\s+(Pending|ImagePulling|Starting)\s/));
          expect(at(/Normal\s+(Pending|ImagePulling|Starting)\s/)).to.be.lessThan(at(/Normal\s+Ready\s/));
        }
      } finally {
        rec?.stop();
      }
    });

    it('mode custom runs spec.command with its placeholders filled and serves what it wrote', async () => {
      const command = [
        'sh',
        '-c',
        'mkdir -p /tmp/site && echo "custom server of {username}/{servername} on port {port}" > /tmp/site/index.html && exec httpd -f -p {port} -h /tmp/site',
      ];
      await env.kubectl(['apply', '-f', '-'], nbsYaml('custom', { user: 'dave', servername: 'c1', mode: 'custom', command }));
      const o = await waitReady(env, 'custom');
      const res = await httpGet(o.status!.endpoint!.hostUrl!);
      expect(res.status).to.equal(200);
      expect(res.body.trim()).to.equal(`custom server of dave/c1 on port ${env.policy.port}`);
      // The process really runs the spec's argv, not the image's default httpd on /www.
      const notThere = await httpGet(`${o.status!.endpoint!.hostUrl!}/nothing-here`);
      expect(notThere.status).to.equal(404);
    });

    if (kind === 'service') {
      it("a Swarm task that cannot start is reported as Failed with Docker's reason, a Degraded condition and a Warning Event", async () => {
        const rec = await recordStatuses(env, 'broken');
        try {
          await env.kubectl(['apply', '-f', '-'], nbsYaml('broken', { user: 'erin', mode: 'custom', command: ['/no/such/binary', '{port}'] }));
          const failed = await rec.until('broken Failed', (s) => s.phase === 'Failed', 60_000);
          expect(failed.readyReason).to.match(/^Task(Rejected|Failed)$/);
          expect(failed.message, failed.message).to.match(/non-zero exit \(127\)|no such file|not found/i);
          // Swarm keeps retrying; the condition and the Event say what Docker said.
          const described = await env.kubectl(['describe', 'nbs', 'broken', '-n', NS]);
          expect(described).to.match(/Warning\s+Task(Rejected|Failed)\s/);
          expect(described).to.match(/Degraded/);
          // The failed task's port is gone with it: no stale URL while Failed.
          expect(failed.hostUrl).to.equal(undefined);
        } finally {
          rec.stop();
        }
      });
    }
  });
}

/**
 * A presentation type the admin adds (cdsdashboards' extra_presentation_launchers): R Shiny run
 * through the dashboard proxy, not through the rshiny_server_cmd package upstream's rshiny uses.
 */
const SHINY_PROXIED = {
  requiresPath: true,
  args: ['--destport=0', 'R', '{--}no-echo', '{-}e', "shiny::runApp('{presentation_path}', port={port}, host='127.0.0.1', launch.browser=FALSE)"],
};
const appR = (title: string) => `library(shiny)\nui <- fluidPage(titlePanel("${title}"))\nserver <- function(input, output) {}\nshinyApp(ui, server)\n`;

for (const kind of ['service', 'container'] as BackendKind[]) {
  describe(`dashboards from a git source with the ${kind} backend`, function () {
    this.timeout(180_000);
    let env: Env;
    let git: GitServer;
    before(async function () {
      git = await startGitServer();
      const lo = 23000 + Math.floor(Math.random() * 60) * 100 + (kind === 'service' ? 0 : 50);
      env = await setupEnv(kind, {
        allowedImages: ['local/*'],
        networkMode: 'host',
        hostPortRange: [lo, lo + 49],
        proxyCommand: ['start.sh', 'nbswarm-dashboard-proxy'],
        launchers: { ...defaultPolicy().launchers, shinyapp: SHINY_PROXIED },
        dashboards: { ...defaultPolicy().dashboards, proxy: { ...defaultPolicy().dashboards.proxy, readyTimeout: 60 } },
        resources: { defaults: { cpu: '1', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
      });
      const img: any = await env.docker
        .getImage(SHINY_IMAGE)
        .inspect()
        .catch(() => undefined);
      const recipe = img?.Config?.Labels?.['nbswarm.recipe'];
      if (!recipe)
        throw new Error(
          `${SHINY_IMAGE} is missing or older than git sources: rebuild it with \`bash images/notebook/build.sh local/shiny:latest --with-shiny\``,
        );
      await env.kubectl([
        'create',
        'secret',
        'generic',
        'git-creds',
        '-n',
        NS,
        `--from-literal=username=${git.username}`,
        `--from-literal=password=${git.password}`,
        `--from-literal=ca.crt=${git.caPem}`,
      ]);
    });
    after(async () => {
      await env?.close();
      await git?.close();
    });

    /** waitReady, with the container's log in the error when the server does not get there. */
    async function readyOrLog(name: string) {
      try {
        return await waitReady(env, name, '120s');
      } catch (err) {
        const o = await getNbs(env, name);
        const [obj] = await env.backend.find(o.metadata.uid!);
        const log = obj?.containerId
          ? await env.docker
              .getContainer(obj.containerId)
              .logs({ stdout: true, stderr: true, tail: 40 })
              .then(String)
              .catch(() => '')
          : '';
        throw new Error(`${(err as Error).message}\n--- container log (tail):\n${log}`);
      }
    }

    it("clones the repository in the container with the Secret's credentials, serves the app from it and pulls the next commit on restart", async () => {
      git.commit('dash', { 'apps/hello/app.R': appR('from git v1'), 'README.md': 'a dashboard' }, 'v1');
      await env.kubectl(
        ['apply', '-f', '-'],
        nbsYaml('gitdash', {
          user: 'gina',
          servername: 'gitdash',
          image: SHINY_IMAGE,
          mode: 'shinyapp',
          app: { path: 'apps/hello' },
          git: { url: git.url('dash'), branch: 'main', secretName: 'git-creds' },
        }),
      );
      const o = await readyOrLog('gitdash');
      const url = o.status!.endpoint!.hostUrl!;
      const first = await waitFor(
        'the app through the proxy',
        async () => {
          const r = await httpGet(`${url}/`, 60_000);
          return r.status === 200 ? r : undefined;
        },
        90_000,
        500,
      );
      expect(first.body).to.contain('<title>from git v1</title>');
      expect(git.stats.authenticated, 'the clone used the credentials').to.be.greaterThan(0);

      // The clone is in the user's volume, made by the server's user.
      const [obj] = await env.backend.find(o.metadata.uid!);
      const owner = await dockerExec(env.docker, obj!.containerId!, ['stat', '-c', '%u', `/home/jovyan/work/${repoFolderName(git.url('dash'))}/.git`]);
      expect(owner.trim()).to.equal('1000');

      // The password reached the container as a file, never through its config or env.
      const c: any = await env.docker.getContainer(obj!.containerId!).inspect();
      expect(JSON.stringify(c.Config)).not.to.contain(git.password);
      expect(c.Config.Env).to.include(`NBSWARM_GIT_URL=${git.url('dash')}`);
      if (kind === 'service') {
        const svc: any = await env.docker.getService(obj!.id).inspect();
        expect(JSON.stringify(svc.Spec)).not.to.contain(git.password);
        expect(svc.Spec.TaskTemplate.ContainerSpec.Secrets.map((x: any) => x.File.Name).sort()).to.deep.equal([
          'nbswarm-git-ca.crt',
          'nbswarm-git-credentials',
        ]);
      }
      const creds = await dockerExec(env.docker, obj!.containerId!, ['cat', '/run/secrets/nbswarm-git-credentials']);
      expect(creds).to.equal(`username=${git.username}\npassword=${git.password}\n`);

      // A new commit, then a restart (stop + start): the container pulls it.
      git.commit('dash', { 'apps/hello/app.R': appR('from git v2') }, 'v2');
      await patchSpec(env, 'gitdash', { stopped: true });
      await waitPhase(env, 'gitdash', 'Stopped', 90_000);
      await patchSpec(env, 'gitdash', { stopped: false });
      const again = await readyOrLog('gitdash');
      const second = await waitFor(
        'v2 through the proxy',
        async () => {
          const r = await httpGet(`${again.status!.endpoint!.hostUrl!}/`, 60_000).catch(() => undefined);
          return r?.status === 200 && r.body.includes('from git v2') ? r : undefined;
        },
        90_000,
        500,
      );
      expect(second.body).to.contain('<title>from git v2</title>');
    });

    it('a URL that is not https/ssh fails the server, a missing Secret is waited for, each with a message naming the field', async () => {
      await env.kubectl(
        ['apply', '-f', '-'],
        nbsYaml('gitbad', {
          user: 'gina',
          servername: 'bad',
          image: SHINY_IMAGE,
          mode: 'shinyapp',
          app: { path: 'a' },
          git: { url: 'git://127.0.0.1/dash.git' },
        }),
      );
      const bad = await waitPhase(env, 'gitbad', 'Failed');
      expect(bad.status!.message).to.match(/spec\.git\.url "git:\/\/127\.0\.0\.1\/dash\.git" uses git:\/\/, which nbswarm does not clone from: use https/);
      await env.kubectl(
        ['apply', '-f', '-'],
        nbsYaml('gitnosecret', {
          user: 'gina',
          servername: 'nosecret',
          image: SHINY_IMAGE,
          mode: 'shinyapp',
          app: { path: 'a' },
          git: { url: git.url('dash'), secretName: 'absent' },
        }),
      );
      // As a Pod waits for its Secrets: Pending, and the Secrets informer wakes it when one appears.
      const missing = await waitFor('gitnosecret waiting for its Secret', async () => {
        const o = await getNbs(env, 'gitnosecret');
        return o.status?.conditions?.find((x) => x.type === 'Ready')?.reason === 'SecretNotFound' ? o : undefined;
      });
      expect(missing.status!.phase).to.equal('Pending');
      expect(missing.status!.message).to.contain('spec.git.secretName: secret default/absent not found');
    });

    if (kind === 'service') {
      it('without credentials the server refuses the clone: the task exits 66 and the server goes Failed', async () => {
        const refusedBefore = git.stats.refused;
        // Another user, so a fresh home volume: gina's holds the clone above, which a failed pull
        // would serve as it is. The server's CA only: TLS succeeds, and the server answers 401.
        await env.kubectl(['create', 'secret', 'generic', 'git-ca-only', '-n', NS, `--from-literal=ca.crt=${git.caPem}`]);
        await env.kubectl(
          ['apply', '-f', '-'],
          nbsYaml('gitanon', {
            user: 'gus',
            servername: 'anon',
            image: SHINY_IMAGE,
            mode: 'shinyapp',
            app: { path: 'apps/hello' },
            git: { url: git.url('dash'), secretName: 'git-ca-only' },
          }),
        );
        const failed = await waitPhase(env, 'gitanon', 'Failed', 120_000);
        expect(failed.status!.message).to.match(/\(66\)|exit code 66/);
        expect(git.stats.refused).to.be.greaterThan(refusedBefore);
      });

      it('kubectl explain lists the modes the policy adds once the CRD is installed with them', async () => {
        await installCrd(env.kc, { modes: enabledModes(env.policy) });
        const explain = await waitFor(
          'kubectl explain with the policy modes',
          async () => {
            const out = await env.kubectl(['explain', 'nbs.spec.mode']);
            return out.includes('shinyapp') ? out : undefined;
          },
          30_000,
          500,
        );
        expect(explain).to.match(/serves the modes: .*shinyapp/s);
        const o = await getNbs(env, 'gitdash').catch(() => undefined);
        expect(o?.spec.mode).to.equal('shinyapp');
      });
    }
  });
}
