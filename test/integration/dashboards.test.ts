/**
 * Issue 6 "Must show": presentation modes on a real dockerd. A real R Shiny app (the images/
 * recipe's local/shiny image, Debian's r-cran-shiny) launched by a direct launcher entry from the
 * policy answers with the app's HTML; mode custom runs what spec.command says; on Swarm the start
 * is visible as task-state conditions and Events (`kubectl describe`), and a task that cannot start
 * is reported with Docker's own reason.
 */
import { expect } from 'chai';
import type { BackendKind } from '../../src/backends/types.js';
import { defaultPolicy } from '../../src/config/policy.js';
import { httpGet } from '../helpers/docker.js';
import { recordStatuses } from './status-recorder.js';
import { writeIntoVolume } from './volume-writer.js';
import { NS, nbsYaml, setupEnv, waitReady, type Env } from './operator-harness.js';

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

    it('mode rshiny with a direct R launcher serves the app from the user\'s volume at status.endpoint.hostUrl', async () => {
      // The app lives in the user's home volume (the policy's {prefix}-{username}-home), as a user
      // would have saved it from their notebook server.
      const volume = `${env.prefix}-carol-home`;
      await writeIntoVolume(env.docker, volume, 'mkdir -p /v/apps/hello && printf "%s" "$APP" > /v/apps/hello/app.R && chown -R 1000:100 /v', { APP: APP_R });
      const rec = kind === 'service' ? await recordStatuses(env, 'shiny') : undefined;
      try {
        await env.kubectl(['apply', '-f', '-'], nbsYaml('shiny', {
          user: 'carol', servername: 'dash', image: SHINY_IMAGE, mode: 'rshiny', app: { path: 'apps/hello' }, resources: { memory: '512Mi' },
        }));
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
        expect(c.Config.Cmd).to.deep.equal(['R', '--no-echo', '-e', `shiny::runApp('/home/jovyan/apps/hello', port=${env.policy.port}, host='0.0.0.0', launch.browser=FALSE)`]);
        expect(c.Config.WorkingDir).to.equal('/home/jovyan');
        const table = await env.kubectl(['get', 'nbs', 'shiny', '-n', NS]);
        expect(table).to.match(/shiny\s+carol\s+dash\s+rshiny\s+Running\s+http:\/\/127\.0\.0\.1/);

        if (rec) {
          // Progress on Swarm: before Running, the object went through at least one task-state
          // condition (Pending/Preparing/Starting: scheduled, image checked, app not answering yet).
          const firstRunning = rec.steps.findIndex((s) => s.phase === 'Running');
          expect(firstRunning, JSON.stringify(rec.steps)).to.be.greaterThan(0);
          const before = rec.steps.slice(0, firstRunning);
          expect(before.every((s) => s.phase === 'Creating' || s.phase === 'Pending' || s.phase === undefined), JSON.stringify(before)).to.equal(true);
          expect(before.some((s) => s.ready === 'False' && ['Pending', 'Preparing', 'Starting'].includes(s.readyReason ?? '')), JSON.stringify(before)).to.equal(true);
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
      const command = ['sh', '-c', 'mkdir -p /tmp/site && echo "custom server of {username}/{servername} on port {port}" > /tmp/site/index.html && exec httpd -f -p {port} -h /tmp/site'];
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
      it('a Swarm task that cannot start is reported as Failed with Docker\'s reason, a Degraded condition and a Warning Event', async () => {
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
