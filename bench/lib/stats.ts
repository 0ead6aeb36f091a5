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

/**
 * The order of round `round` (from 0) of runs compared with each other: as given in even rounds,
 * reversed in odd ones (A B C, C B A, A B C, …), so a machine that drifts over the minutes slows
 * every run alike on average instead of whichever came last.
 */
export function roundOrder<T>(runs: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...runs] : [...runs].reverse();
}

/** A figure over several rounds: all their deliveries over all their measured time, and each round's rate. */
export function pooledRate(rounds: ReadonlyArray<{ deliveries: number; elapsedMs: number }>): {
  deliveries: number;
  elapsedMs: number;
  perSecond: number;
  roundRates: number[];
} {
  const deliveries = rounds.reduce((sum, round) => sum + round.deliveries, 0);
  const elapsedMs = rounds.reduce((sum, round) => sum + round.elapsedMs, 0);
  return {
    deliveries,
    elapsedMs,
    perSecond: perSecond(deliveries, elapsedMs),
    roundRates: rounds.map((round) => perSecond(round.deliveries, round.elapsedMs)),
  };
}

/** A run of a throughput scenario: its deliveries over its measured span, and its peak RSS. */
export interface ThroughputRound {
  deliveries: number;
  elapsedMs: number;
  perSecond: number;
  peakRssMiB: number | undefined;
}

export type Pooled<T extends ThroughputRound> = T & { rounds: number; roundRates: number[] };

/** The rounds of one scenario as one result: pooled rate (see pooledRate), summed counts, the highest peak RSS. */
export function poolRounds<T extends ThroughputRound>(rounds: readonly T[]): Pooled<T> | undefined {
  const last = rounds[rounds.length - 1];
  if (!last) return undefined;
  const peaks = rounds.map((round) => round.peakRssMiB).filter((value): value is number => value !== undefined && Number.isFinite(value));
  return {
    ...last,
    ...pooledRate(rounds),
    peakRssMiB: peaks.length > 0 ? Math.max(...peaks) : undefined,
    rounds: rounds.length,
  };
}
