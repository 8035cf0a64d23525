/**
 * A CPU profile of one window of the bench process (node:inspector), for explaining a figure:
 * NBSWARM_BENCH_CPU_PROF=<dir> makes the scenarios that call it write <dir>/<name>.cpuprofile
 * (open it in Chrome DevTools or speedscope). Off, it costs nothing.
 */
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuProfile {
  /** Stop profiling and write the file (a no-op when profiling is off). */
  stop(): Promise<string | undefined>;
}

export async function profileWindow(name: string): Promise<CpuProfile> {
  const dir = process.env.NBSWARM_BENCH_CPU_PROF;
  if (!dir) return { stop: async () => undefined };
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${name}-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      return file;
    },
  };
}
