/** Timestamps as Kubernetes writes them (metav1.Time: RFC 3339, whole seconds, UTC). */

/** `ms` (epoch milliseconds) as metav1.Time. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

let cachedSecond = -1;
let cachedText = '';

/** Now as metav1.Time, formatted once per second (the API server stamps every write with it). */
export function nowIso(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedText = isoSeconds(second * 1000);
  }
  return cachedText;
}
