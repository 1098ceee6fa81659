/**
 * operator/campaigns/rollout: how many jobs a campaign may release now — a token bucket kept as one
 * persisted time (`nextReleaseAt`: the earliest virtual time of the next release; one release every
 * 60 000 / rate ms, at most one second's worth at once), and a hard cap from the store's own release
 * timestamps (never more than `ratePerMinute` in any 60-second window). Both live in the database,
 * so a restarted or another operator node continues the same schedule instead of bursting.
 * Pure arithmetic; imports nothing.
 */

export const WINDOW_MS = 60_000;

/** Releases at once at most: one second's worth of the rate (at least 1). */
export function burstOf(ratePerMinute: number): number {
  return Math.max(1, Math.ceil(ratePerMinute / 60));
}

/**
 * How many may be released at `now`: the bucket's allowance, capped by what the last minute's
 * releases (`releasedInWindow`: released in (now − 60 s, now]) leave of the rate.
 */
export function allowance(ratePerMinute: number, nextReleaseAt: number, now: number, releasedInWindow: number): number {
  if (now < nextReleaseAt) return 0;
  const interval = WINDOW_MS / ratePerMinute;
  const bucket = Math.min(burstOf(ratePerMinute), Math.floor((now - nextReleaseAt) / interval) + 1);
  return Math.max(0, Math.min(bucket, ratePerMinute - releasedInWindow));
}

/** The bucket after `released` releases at `now` (credit never accumulates beyond one burst). */
export function nextReleaseAfter(ratePerMinute: number, nextReleaseAt: number, now: number, released: number): number {
  if (released === 0) return nextReleaseAt;
  const interval = WINDOW_MS / ratePerMinute;
  const base = Math.max(nextReleaseAt, now - (burstOf(ratePerMinute) - 1) * interval);
  return Math.ceil(base + released * interval);
}
