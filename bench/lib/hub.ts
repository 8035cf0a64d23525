/**
 * A real JupyterHub in front of nbswarm, as a site runs it and as the hub end-to-end tests start
 * it (test/e2e/hub-harness.ts): `nbswarm up` on Swarm with host networking on loopback ports,
 * configurable-http-proxy, and Debian's JupyterHub 3 with the spawner from hub/, driven through the
 * hub's REST API with an admin service token. This module only adds the bench's policy and hub
 * configuration: one user, "bench", with any number of named servers.
 */
import { startHubStack as startHarness, type HubStack } from '../../test/e2e/hub-harness.js';

export type { HubStack };

export const BENCH_USER = 'bench';

/** jupyterhub_config.py lines after the harness's own (`c` is the config); a JSON string is a Python literal. */
const benchHubConfig = (image: string) => `
c.Authenticator.allowed_users = {'${BENCH_USER}'}
c.JupyterHub.named_server_limit_per_user = 0
c.NotebookServerSpawner.image = ${JSON.stringify(image)}
c.NotebookServerSpawner.delete_on_stop = False
c.Spawner.start_timeout = 120
`;

/** `nbswarm up` + CHP + JupyterHub, all on loopback; resolves once the hub's API answers and the user exists. */
export async function startHubStack(opts: { image: string; portRange: [number, number] }): Promise<HubStack> {
  const stack = await startHarness({
    policy: `backend: service\nnetworkMode: host\nhostPortRange: [${opts.portRange[0]}, ${opts.portRange[1]}]\nallowedImages: ["local/*"]\ndefaultImage: ${opts.image}\npullPolicy: never\n`,
    hubConfig: benchHubConfig(opts.image),
    images: [opts.image],
    upEnv: { NBSWARM_LOG_LEVEL: process.env.NBSWARM_BENCH_LOG_LEVEL ?? 'info' },
  });
  try {
    const created = await stack.hubApi('POST', `/users/${BENCH_USER}`);
    // 409: the hub made the allowed user itself at start.
    if (![201, 409].includes(created.status)) throw new Error(`cannot create hub user ${BENCH_USER}: HTTP ${created.status} ${JSON.stringify(created.json)}`);
  } catch (err) {
    const detail = stack.logs();
    await stack.stop();
    throw new Error(`${(err as Error).message}\n${detail}`);
  }
  return stack;
}
