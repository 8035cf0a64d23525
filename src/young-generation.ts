/**
 * The operator's young generation, kept at its first size. V8 grows the young generation (two
 * semi-spaces) up to 2 x 16 MB while a process allocates fast, and gives the pages back only once
 * it is idle for a while; an operator with thousands of resources reconciles in steady passes
 * (resync) and is rarely idle that long, so the grown young generation stayed resident: P4 (10,000
 * NotebookServers) read 32 MB of new space in an operator whose live objects were a fraction of it.
 * With growth off the young generation stays at V8's initial 2 x 1 MB: scavenges run more often,
 * each over the same few live objects (a reconcile's garbage dies young either way).
 *
 * `--max-semi-space-size` only takes effect at the isolate's start, so it would need a flag on every
 * `node` command line that runs nbswarm; the growth factor is read each time V8 considers growing,
 * so setting it here works for `nbswarm operator` however it is started. Only the operator: `up`
 * and `serve` run the API server, whose list and watch bursts benefit from a larger young generation.
 */
import v8 from 'node:v8';

export function keepYoungGenerationSmall(): void {
  // An explicit --semi-space-growth-factor or --max-semi-space-size on the command line wins.
  if (v8FlagGiven('semi-space-growth-factor', 'max-semi-space-size')) return;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Whether one of these V8 flags (as --name or --no-name, - or _) is on node's command line or in NODE_OPTIONS. */
export function v8FlagGiven(...names: string[]): boolean {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => a.replace(/_/g, '-'));
  return given.some((a) => names.some((n) => a === `--${n}` || a === `--no-${n}` || a.startsWith(`--${n}=`)));
}
