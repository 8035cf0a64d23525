/**
 * Runs the shipped Argo CD health check (manifests/argocd/notebookserver-health.lua) with Debian's
 * Lua interpreter, the way Argo CD runs it: the object as the global `obj`, the script's returned
 * table as the health. JSON becomes a Lua table literal (null → nil, as Argo CD's decoder does).
 */
import { execFileSync } from 'node:child_process';
import { repoPath } from '../../src/paths.js';

export const HEALTH_SCRIPT = repoPath('manifests/argocd/notebookserver-health.lua');

function luaLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(luaLiteral).join(',')}}`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `[${JSON.stringify(k)}]=${luaLiteral(x)}`)
    .join(',')}}`;
}

export interface Health {
  status: string;
  message: string;
}

export function argoHealth(obj: unknown): Health {
  const prog = `obj = ${luaLiteral(obj)}
local hs = assert(loadfile(${JSON.stringify(HEALTH_SCRIPT)}))()
io.write(hs.status, "\\n", hs.message or "")`;
  const out = execFileSync('lua5.4', ['-'], { input: prog, encoding: 'utf8' });
  const nl = out.indexOf('\n');
  return { status: out.slice(0, nl), message: out.slice(nl + 1) };
}
