/** The shape of a scenario's result in the JSON report, and the table printed on stderr. */
import type { BackendKind } from '../../src/backends/types.js';

export interface Target {
  metric: string;
  want: string;
  actual: number | string;
  met: boolean;
}

export interface ScenarioResult {
  id: string;
  title: string;
  backend?: BackendKind;
  params: Record<string, unknown>;
  nbswarm?: Record<string, unknown>;
  raw?: Record<string, unknown>;
  ratio?: Record<string, number>;
  targets: Target[];
  notes: string[];
  error?: string;
  seconds?: number;
}

/** One row per target (and per failed scenario), columns padded. */
export function resultTable(results: ScenarioResult[]): string {
  const rows: string[][] = [['scenario', 'backend', 'metric', 'target', 'actual', 'met']];
  for (const r of results) {
    if (r.error) rows.push([r.id, r.backend ?? '-', 'ERROR', '', r.error.slice(0, 60), 'no']);
    for (const t of r.targets) rows.push([r.id, r.backend ?? '-', t.metric, t.want, String(t.actual), t.met ? 'yes' : 'NO']);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(w[c]!)).join('  ')).join('\n');
}
