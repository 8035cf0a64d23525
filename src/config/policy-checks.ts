/** What the policy schema cannot express: placeholders, constraints, ranges, launchers and limits that fit together. */
import { isIP } from 'node:net';
import { MODES } from '../api/types.js';
import { APP_PATH_PATTERN, MODE_PATTERN, TOKEN_PATTERN } from '../api/schema.js';
import type { Policy } from './types.js';
import { validateLauncher } from './launchers.js';
import { normaliseReference } from './image-refs.js';
import { NAME_PLACEHOLDERS, unknownPlaceholders } from './templates.js';
import { parseQuantity } from './quantity.js';
import { parseCidr } from '../util/cidr.js';
import { didYouMean } from './did-you-mean.js';

export function semanticProblems(p: Policy): string[] {
  const errs: string[] = [];
  const unknown = (tpl: string, key: string, allowed: readonly string[]): void => {
    for (const u of unknownPlaceholders(tpl, allowed)) errs.push(`${key}: unknown placeholder ${u} (known: ${allowed.map((a) => `{${a}}`).join(' ')})`);
  };
  try {
    normaliseReference(p.defaultImage);
  } catch (err) {
    errs.push(`defaultImage: ${(err as Error).message}`);
  }
  unknown(p.nameTemplate, 'nameTemplate', NAME_PLACEHOLDERS);
  for (const must of ['{username}', '{servername}']) {
    if (!p.nameTemplate.includes(must)) errs.push(`nameTemplate: must contain ${must}, or two servers would get the same Docker name`);
  }
  p.volumes.forEach((v, i) => {
    unknown(v.name, `volumes[${i}].name`, NAME_PLACEHOLDERS);
    if (v.type === 'bind' && !v.name.startsWith('/')) errs.push(`volumes[${i}].name: a bind volume needs an absolute host path`);
    if (v.type === 'bind' && (v.driver !== undefined || v.driverOptions !== undefined))
      errs.push(`volumes[${i}]: driver and driverOptions apply to named volumes (type volume), not binds`);
    for (const [k, o] of Object.entries(v.driverOptions ?? {})) unknown(o, `volumes[${i}].driverOptions.${k}`, NAME_PLACEHOLDERS);
  });
  p.constraints.forEach((c, i) => {
    if (!isConstraint(c))
      errs.push(
        `constraints[${i}]: "${c}" is not a Swarm constraint like node.labels.gpu==true (node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY, engine.labels.KEY with == or !=)`,
      );
  });
  p.placementRules.forEach((r, i) => {
    r.constraints.forEach((c, j) => {
      if (!isConstraint(c)) errs.push(`placementRules[${i}].constraints[${j}]: "${c}" is not a Swarm constraint like node.labels.gpu==true`);
    });
  });
  p.probeNetworks.forEach((n, i) => {
    if (!parseCidr(n)) errs.push(`probeNetworks[${i}]: "${n}" is not an address or network like 10.0.0.0/24`);
  });
  unknown(p.systemUsers.homeTemplate, 'systemUsers.homeTemplate', ['username']);
  unknown(p.systemUsers.mountTarget, 'systemUsers.mountTarget', ['username']);
  const [lo, hi] = p.hostPortRange;
  if (lo > hi) errs.push(`hostPortRange: [${lo}, ${hi}] is empty (first must be <= second)`);
  if (isIP(p.publishHostIp) === 0) errs.push(`publishHostIp: "${p.publishHostIp}" is not an IP address`);
  const modeRe = new RegExp(MODE_PATTERN);
  for (const [mode, entry] of Object.entries(p.launchers)) {
    if (!modeRe.test(mode)) {
      const hint = didYouMean(mode, MODES);
      errs.push(`launchers.${mode}: a mode name must be a DNS label (lower-case letters, digits and "-")${hint ? `; did you mean "${hint}"?` : ''}`);
      continue;
    }
    if (!(MODES as readonly string[]).includes(mode) && !entry.args?.length) {
      // A new mode has nothing to merge over: without args it is most likely a misspelt built-in.
      const hint = didYouMean(mode, MODES);
      errs.push(
        `launchers.${mode}: "${mode}" is not a built-in mode, so it needs its own args${hint ? ` (did you mean "${hint}"?)` : ''}; built-in modes: ${MODES.join(', ')}`,
      );
      continue;
    }
    errs.push(...validateLauncher(mode, entry));
  }
  const dm = p.launchers[p.defaultMode];
  if (!dm) errs.push(`defaultMode: "${p.defaultMode}" has no launcher; modes: ${Object.keys(p.launchers).join(', ')}`);
  else if (dm.enabled === false) errs.push(`defaultMode: "${p.defaultMode}" is disabled in launchers.${p.defaultMode}.enabled`);
  const dir = p.dashboards.git.directory;
  if (!new RegExp(APP_PATH_PATTERN).test(dir) || dir.startsWith('/')) {
    errs.push(`dashboards.git.directory: "${dir}" must be relative to the home directory, without ".." segments`);
  }
  const tokenRe = new RegExp(TOKEN_PATTERN);
  p.dashboards.conda.envs.forEach((e, i) => {
    if (!tokenRe.test(e)) errs.push(`dashboards.conda.envs[${i}]: "${e}" is not a conda env name (letters, digits, "._+-", not starting with "-")`);
  });
  for (const kind of ['cpu', 'memory'] as const) {
    const d = p.resources.defaults[kind];
    const l = p.resources.limits[kind];
    const dq = d === undefined ? undefined : parseQuantity(d);
    const lq = l === undefined ? undefined : parseQuantity(l);
    if (d !== undefined && dq === undefined) errs.push(`resources.defaults.${kind}: "${d}" is not a quantity like "500m" or "2Gi"`);
    if (l !== undefined && lq === undefined) errs.push(`resources.limits.${kind}: "${l}" is not a quantity like "500m" or "2Gi"`);
    if (dq !== undefined && lq !== undefined && dq > lq) errs.push(`resources.defaults.${kind}: ${d} is above resources.limits.${kind} ${l}`);
    const r = p.resources.requests?.[kind];
    const rq = r === undefined ? undefined : parseQuantity(r);
    if (r !== undefined && (rq === undefined || rq <= 0)) errs.push(`resources.requests.${kind}: "${r}" is not a positive quantity like "500m" or "2Gi"`);
    if (rq !== undefined && lq !== undefined && rq > lq) errs.push(`resources.requests.${kind}: ${r} is above resources.limits.${kind} ${l}`);
  }
  const su = p.systemUsers;
  for (const [name, u] of Object.entries(su.users)) {
    if (u.uid < su.uidFloor) errs.push(`systemUsers.users.${name}.uid: ${u.uid} is below systemUsers.uidFloor ${su.uidFloor}`);
    if (u.uid > su.uidCeiling) errs.push(`systemUsers.users.${name}.uid: ${u.uid} is above systemUsers.uidCeiling ${su.uidCeiling}`);
  }
  if (su.uidFloor > su.uidCeiling) errs.push(`systemUsers.uidFloor: ${su.uidFloor} is above systemUsers.uidCeiling ${su.uidCeiling}`);
  // The hub picks spec.user: without a list, it could pick any login account of the host.
  if (su.enabled && !Object.keys(su.users).length && !su.allowedUsers?.length && !su.allowedGroups?.length) {
    errs.push(
      'systemUsers.enabled: name the host accounts servers may run as in systemUsers.allowedGroups (e.g. [jupyterhub-users]), systemUsers.allowedUsers (globs) or systemUsers.users',
    );
  }
  return errs;
}

/** A Swarm placement constraint: a node or engine attribute, == or !=, a value. */
const CONSTRAINT = /^\s*(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[^\s=!]+)|engine\.labels\.[^\s=!]+)\s*(==|!=)\s*[^\s=!][^=!]*$/;

export function isConstraint(text: string): boolean {
  return CONSTRAINT.test(text);
}
