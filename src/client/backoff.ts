/**
 * @module client/backoff
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): the delay is uniform in [0, min(max, base * 2^attempt)), so clients that
 * lost the same server spread their reconnects instead of arriving together.
 */

/** Milliseconds to wait before reconnect attempt `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 31));
  return Math.floor(random() * cap);
}
