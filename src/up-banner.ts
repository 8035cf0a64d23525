/**
 * What `nbswarm up` prints on stdout once the API server, the CRD and the operator answer. It ends
 * with the things a person copies or clicks: each path and URL absolute and alone on its line, so a
 * terminal links it and a double-click selects all of it.
 */
import { resolve } from 'node:path';

export interface UpSummary {
  apiUrl: string;
  backend: string;
  kubeconfigPath: string;
  /** The status page's address; the one place `nbswarm up` prints it. */
  statusPageUrl?: string;
}

export function upBanner(s: UpSummary): string {
  const kubeconfig = resolve(s.kubeconfigPath);
  const lines = [
    `nbswarm is up: API server ${s.apiUrl}, Docker backend "${s.backend}".`,
    `try: kubectl --kubeconfig ${kubeconfig} get nbs -A`,
    'kubeconfig:',
    kubeconfig,
  ];
  if (s.statusPageUrl) lines.push('status page:', s.statusPageUrl);
  return lines.join('\n') + '\n';
}

/** The kubeconfig path from a banner: the line after "kubeconfig:" (for scripts and tests). */
export function kubeconfigFromBanner(text: string): string | undefined {
  return /^kubeconfig:\n(\/\S+)$/m.exec(text)?.[1];
}
