/**
 * What a bench run has started and must stop however the run ends — done, failed, Ctrl-C or
 * SIGTERM: operators, the API server child, the proxies, a hub stack, a cluster. Each piece is
 * registered when it starts and undone once, by its scenario when it is done with it or by the
 * run's teardown (newest first, so an operator stops before the API server it talks to). Whatever
 * process is still below the bench after that (started by code that registered nothing, or whose
 * stop failed) is ended too.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';

interface Step {
  what: string;
  undo: () => Promise<void>;
}

/** The run is being torn down: nothing new may start. */
export class TornDownError extends Error {
  constructor(what: string) {
    super(`${what} started while the run was being torn down; stopped it again`);
  }
}

export class Teardown {
  private readonly steps: Step[] = [];
  private closed = false;

  constructor(private readonly log: (msg: string) => void) {}

  /** Whether the run is being torn down. */
  get tearingDown(): boolean {
    return this.closed;
  }

  /**
   * Registers `undo` for `what` (just started); the returned function undoes it now and
   * unregisters it. `undo` runs once however often either side asks, and a second caller waits
   * for the first. Registered once the teardown has begun, `what` is undone at once and
   * TornDownError thrown: its scenario must not go on.
   */
  add(what: string, undo: () => Promise<void>): () => Promise<void> {
    let running: Promise<void> | undefined;
    const step: Step = { what, undo: () => (running ??= undo()) };
    if (this.closed) {
      void step.undo().catch((e: Error) => this.log(`${what}: ${e.message}`));
      throw new TornDownError(what);
    }
    this.steps.push(step);
    return () => {
      const i = this.steps.indexOf(step);
      if (i >= 0) this.steps.splice(i, 1);
      return step.undo();
    };
  }

  /** Undoes every piece still registered, newest first; a failure is logged and the rest go on. */
  async all(): Promise<void> {
    this.closed = true;
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.undo();
      } catch (err) {
        this.log(`stopping ${step.what}: ${(err as Error).message}`);
      }
    }
  }
}

/** A process as /proc shows it: its pid and its start time, which tell it from a later process given the same pid. */
export interface Proc {
  pid: number;
  startedAt: string;
}

/** "pid (command) state ppid …" → the fields after the command (which may hold spaces and parentheses), or undefined once it is gone. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The live processes below `pid` (children, theirs, …), from /proc; zombies left out. */
export function descendants(pid: number): Proc[] {
  const children = new Map<number, Proc[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(entry);
    // state, ppid; the start time is the 22nd field of the line, the 20th after the command.
    if (!f || f[0] === 'Z') continue;
    const ppid = Number(f[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), { pid: Number(entry), startedAt: f[19]! }]);
  }
  const found: Proc[] = [];
  const parents = [pid];
  for (let parent = parents.pop(); parent !== undefined; parent = parents.pop()) {
    for (const child of children.get(parent) ?? []) {
      found.push(child);
      parents.push(child.pid);
    }
  }
  return found;
}

/** Whether `p` still runs (not a zombie, and its pid not taken by another process since). */
export function running(p: Proc): boolean {
  const f = statFields(p.pid);
  return f !== undefined && f[0] !== 'Z' && f[19] === p.startedAt;
}

/**
 * Ends every process still below `root` (this one): all are found first (so a grandchild whose
 * parent dies meanwhile is not missed), sent SIGTERM, and those still running after graceMs
 * SIGKILL. Returns them once they have ended.
 */
export async function endDescendants(graceMs: number, root = process.pid): Promise<Proc[]> {
  const procs = descendants(root);
  signal(procs, 'SIGTERM');
  await exited(procs, graceMs);
  signal(procs, 'SIGKILL');
  await exited(procs, 2000);
  return procs;
}

/** Waits up to `ms` for every one of `procs` to have ended. */
async function exited(procs: Proc[], ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline && procs.some(running);) await new Promise((r) => setTimeout(r, 50));
}

/** SIGKILL every process below this one, at once (a second Ctrl-C). */
export function killDescendants(): Proc[] {
  const procs = descendants(process.pid);
  signal(procs, 'SIGKILL');
  return procs;
}

function signal(procs: Proc[], sig: NodeJS.Signals): void {
  for (const p of procs) {
    if (!running(p)) continue;
    try {
      process.kill(p.pid, sig);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * For a bench script run on its own (bench/apiserver, bench/etcd): however it ends — its work
 * settles, a signal stops it, or an exception no handler caught ends the process — the processes
 * below it and the directories in `dirs` (its data dirs; it removes its own as it goes) do not
 * outlive it. A terminal's Ctrl-C reaches its children too; `kill PID`, or bench/run.ts stopping a
 * scenario, reaches the script alone. A signal ends the script at once (its requests in flight
 * would only fail one by one); `what` names it in the line it logs.
 */
export function leaveNothingBehind(what: string, dirs: ReadonlySet<string>): void {
  // Only synchronous work runs on 'exit': its servers get SIGKILL (their data is thrown away anyway).
  process.on('exit', () => {
    killDescendants();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${what}: ${signal}: stopping what it started\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}
