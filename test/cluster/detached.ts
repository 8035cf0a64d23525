/** Starting the test cluster's long-lived processes: namespace anchors, dockerds, the registry, the hub's agent. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/**
 * Start a long-lived process that outlives this one (the CLI exits after `cluster:up`): its own
 * session, output appended to `logFile`. The caller records its PID in the cluster state.
 */
export function spawnDetached(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env });
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}
