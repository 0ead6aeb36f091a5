/** Pure helpers for the benchmark's figures; kept free of I/O so a unit test can pin them down. */

/** The p-th percentile (0–100) by linear interpolation between closest ranks; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  if (p < 0 || p > 100) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  const highValue = sorted[high] as number;
  return lowValue + (highValue - lowValue) * (rank - low);
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

/** ours ÷ theirs, or NaN when either side is missing or zero. */
export function ratio(ours: number | undefined, theirs: number | undefined): number {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs <= 0) {
    return Number.NaN;
  }
  return ours / theirs;
}

/**
 * Two stages that share the same cores: each item costs 1/a + 1/b seconds of the machine,
 * so the pair cannot beat 1/(1/a + 1/b) items per second.
 */
export function combinedCeiling(httpPerSecond: number, dbPerSecond: number): number {
  if (!(httpPerSecond > 0) || !(dbPerSecond > 0)) return Number.NaN;
  return 1 / (1 / httpPerSecond + 1 / dbPerSecond);
}

/** Items per second over a span in milliseconds. */
export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : Number.NaN;
}
