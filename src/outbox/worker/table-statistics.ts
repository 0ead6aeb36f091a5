import type { TableCounts } from "../sql/claim.js";

/**
 * Whether the planner's statistics of webhook_deliveries still describe the table, read off each
 * claim (the rows they describe, `pg_class.reltuples`, and the rows it has now, `n_live_tup`), and
 * so whether the claim may be sent as a named statement.
 *
 * A named statement keeps its plan once Postgres has switched it to a generic one (after five
 * executions), until the table's statistics change. A generic plan made while the table was nearly
 * empty can be ruinous once it has grown (a whole index scanned for each claimed row: 110 ms a
 * claim at 100k rows instead of 5), and so can any plan made from statistics taken while a bulk
 * insert was still running (they count none of its rows). So while the table holds more than twice
 * the rows its statistics describe, the claim goes unnamed (planned for the table as it is, every
 * time) and the worker runs an ANALYZE, which replaces the statistics and drops every session's
 * cached plans of the table. Autovacuum analyzes a table long before it doubles, but only once a
 * minute: this covers the first minute of a burst into a small table. While the statistics are
 * current the named claim saves its planning: about 1.5 ms of Postgres CPU a claim, half the p99
 * commit → arrival latency at 1,000 deliveries/s.
 *
 * States: `unknown` (no claim has reported yet, or an ANALYZE just ended), `current`, `stale`,
 * `analyzing` (an ANALYZE of this worker's is running). Only `current` sends the claim named.
 */
export type StatisticsState = "unknown" | "current" | "stale" | "analyzing";

/** A table of fewer rows than this never has stale statistics: any plan of it is cheap. */
export const MIN_STALE_ROWS = 1_000;

/** Whether statistics of `rows` rows still describe a table of `liveRows`. */
export function statisticsAreCurrent({ rows, liveRows }: TableCounts): boolean {
  return liveRows < Math.max(MIN_STALE_ROWS, 2 * rows);
}

export class TableStatistics {
  private current: StatisticsState = "unknown";
  /** The table's rows when this worker last started an ANALYZE that has not taken yet. */
  private analyzedAt = 0;

  get state(): StatisticsState {
    return this.current;
  }

  /** Whether the next claim may be sent as a named statement. */
  get named(): boolean {
    return this.current === "current";
  }

  /**
   * What a claim saw. True when this worker should ANALYZE the table now (the state becomes
   * `analyzing` until `analyzeEnded`): the statistics are stale and, if an ANALYZE of this worker's
   * has not taken (a role that does not own the table is refused; one that found the table busy is
   * skipped), the table has doubled since, so it is not repeated at every claim.
   */
  observe(counts: TableCounts): boolean {
    if (this.current === "analyzing") return false;
    if (statisticsAreCurrent(counts)) {
      this.current = "current";
      this.analyzedAt = 0;
      return false;
    }
    this.current = "stale";
    if (counts.liveRows < 2 * this.analyzedAt) return false;
    this.analyzedAt = counts.liveRows;
    this.current = "analyzing";
    return true;
  }

  /** The ANALYZE ended, done or not: the next claim tells whether the statistics are current. */
  analyzeEnded(): void {
    this.current = "unknown";
  }
}
