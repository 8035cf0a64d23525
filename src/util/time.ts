let cachedSecond = -1;
let cachedText = '';

/**
 * The current time at second precision in the form of Kubernetes' metav1.Time
 * (`2026-11-25T10:00:00Z`). Formatted once per second: every create stamps a timestamp, and
 * Date#toISOString was a measurable part of one.
 */
export function nowIso(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedText = new Date(second * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  return cachedText;
}
