/**
 * Loading the operator's policy: defaults ← YAML file (deep merge, lists replace) ← NBSWARM_* env
 * ← explicit overrides (flags), then validation that names the key and where it came from.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { Mode } from '../api/types.js';
import type { LauncherEntry, Policy } from './types.js';
import { defaultPolicy } from './policy-defaults.js';
import { envOverrides } from './policy-env.js';
import { PolicyError } from './policy-error.js';
import { describeAjvError, validatePolicyDoc } from './policy-schema.js';
import { semanticProblems } from './policy-checks.js';

// bench/ and the commands load the policy from here: the defaults and the error come with it.
export { defaultPolicy } from './policy-defaults.js';
export { PolicyError } from './policy-error.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key; lists and scalars replace (so a file's allowedImages is the whole list). */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k], v) : v;
  }
  return out as T;
}
export interface LoadPolicyOptions {
  /** YAML policy file; defaults to $NBSWARM_POLICY when set. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Partial<Policy>;
}

/** defaults ← file ← env ← overrides, validated. Throws PolicyError naming each bad key and its source. */
export function loadPolicy(opts: LoadPolicyOptions = {}): Policy {
  const env = opts.env ?? {};
  const file = opts.file ?? env.NBSWARM_POLICY;
  let fileDoc: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new PolicyError(`policy file ${file}: cannot read it (${(e as Error).message})`, [file]);
    }
    try {
      fileDoc = YAML.parse(text) ?? {};
    } catch (e) {
      throw new PolicyError(`policy file ${file}: not valid YAML: ${(e as Error).message}`, [file]);
    }
    if (!isPlainObject(fileDoc)) throw new PolicyError(`policy file ${file}: the top level must be a mapping of policy keys`, [file]);
  }
  const { doc: envDoc, origin } = envOverrides(env);
  for (const key of Object.keys(opts.overrides ?? {})) origin.set(key, 'command-line options');
  const merged = deepMerge(deepMerge(deepMerge(defaultPolicy(), fileDoc), envDoc), opts.overrides ?? {});
  const where = (problem: string): string => {
    const key = problem.split(':')[0]!;
    const src = [...origin.entries()].find(([k]) => key === k || key.startsWith(k + '.') || key.startsWith(k + '['));
    if (src) return `${problem} (from ${src[1]})`;
    return file ? `${problem} (in ${file})` : problem;
  };
  let problems: string[] = [];
  if (!validatePolicyDoc(merged)) problems = (validatePolicyDoc.errors ?? []).map(describeAjvError);
  else problems = semanticProblems(merged);
  if (problems.length) {
    const lines = [...new Set(problems)].map(where);
    throw new PolicyError(`invalid nbswarm policy${file ? ` (file ${file})` : ''}:\n  - ${lines.join('\n  - ')}`, lines);
  }
  return merged;
}

/** The launcher of `mode`, or undefined when the policy has none. */
export function launcherFor(policy: Policy, mode: Mode | string): LauncherEntry | undefined {
  return Object.prototype.hasOwnProperty.call(policy.launchers, mode) ? policy.launchers[mode] : undefined;
}

/** The modes servers may use under this policy (built-in and added, minus disabled ones), sorted. */
export function enabledModes(policy: Pick<Policy, 'launchers'>): string[] {
  return Object.keys(policy.launchers)
    .filter((m) => policy.launchers[m]?.enabled !== false)
    .sort();
}
