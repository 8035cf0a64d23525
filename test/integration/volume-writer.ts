/**
 * Put files into a named volume before a server mounts it: a one-shot root container of the test
 * image runs a shell script with the volume at /v.
 */
import type Docker from 'dockerode';
import { TEST_IMAGE, testLabels } from '../helpers/docker.js';

/**
 * Run `script` with sh as root in a throw-away test-image container with `volume` at /v, and wait
 * for it to exit 0. `env` passes file contents without shell quoting.
 */
export async function writeIntoVolume(docker: Docker, volume: string, script: string, env: Record<string, string> = {}): Promise<void> {
  const c = await docker.createContainer({
    Image: TEST_IMAGE,
    User: '0',
    Cmd: ['sh', '-euc', script],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: testLabels(),
    HostConfig: { Mounts: [{ Type: 'volume', Source: volume, Target: '/v' }], NetworkMode: 'none' },
  } as Docker.ContainerCreateOptions);
  try {
    await c.start();
    const res = (await c.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0) {
      const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
      throw new Error(`helper container exited ${res.StatusCode}: ${logs.toString('utf8')}`);
    }
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}
