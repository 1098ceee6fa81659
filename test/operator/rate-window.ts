/**
 * The rollout-rate check shared by the campaign tests and benches: the largest number of events
 * (job releases) inside any 60 s window [t, t + 60 000). imports nothing.
 */
export function maxPerWindow(times: readonly number[]): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < s.length; i++) {
    while (s[j]! < s[i]! - 60_000 + 1) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}
