import { describe, expect, it } from "vitest";
import { MIN_STALE_ROWS, statisticsAreCurrent, TableStatistics } from "../src/outbox/worker/table-statistics.js";

const counts = (rows: number, liveRows: number) => ({ rows, liveRows });

describe("whether webhook_deliveries' statistics are current", () => {
  it("are, on a table of few rows, whatever they say: any plan of it is cheap", () => {
    expect(statisticsAreCurrent(counts(0, 0))).toBe(true);
    expect(statisticsAreCurrent(counts(0, MIN_STALE_ROWS - 1))).toBe(true);
    expect(statisticsAreCurrent(counts(0, MIN_STALE_ROWS))).toBe(false);
  });

  it("are while the table holds less than twice the rows they describe", () => {
    expect(statisticsAreCurrent(counts(50_000, 99_999))).toBe(true);
    expect(statisticsAreCurrent(counts(50_000, 100_000))).toBe(false);
    // Taken while a bulk insert was still running, they saw few rows: its commit makes them stale.
    expect(statisticsAreCurrent(counts(300, 100_000))).toBe(false);
    // A table that shrank (pruned) is described well enough.
    expect(statisticsAreCurrent(counts(100_000, 2_000))).toBe(true);
  });
});

describe("the claim's statistics states", () => {
  it("sends the claim unnamed until a claim has reported current statistics", () => {
    const statistics = new TableStatistics();
    expect(statistics.state).toBe("unknown");
    expect(statistics.named).toBe(false);
    expect(statistics.observe(counts(10, 5))).toBe(false);
    expect(statistics.state).toBe("current");
    expect(statistics.named).toBe(true);
  });

  it("on stale statistics: unnamed, one ANALYZE, and none more while it runs", () => {
    const statistics = new TableStatistics();
    statistics.observe(counts(10, 5));
    expect(statistics.observe(counts(1_000, 5_000))).toBe(true);
    expect(statistics.state).toBe("analyzing");
    expect(statistics.named).toBe(false);
    expect(statistics.observe(counts(1_000, 60_000))).toBe(false);
    expect(statistics.state).toBe("analyzing");
    statistics.analyzeEnded();
    expect(statistics.state).toBe("unknown");
    expect(statistics.named).toBe(false);
    // The ANALYZE took: named again.
    expect(statistics.observe(counts(60_000, 60_000))).toBe(false);
    expect(statistics.named).toBe(true);
  });

  it("an ANALYZE that did not take (not the table's owner, or skipped) is repeated only once the table has doubled again", () => {
    const statistics = new TableStatistics();
    expect(statistics.observe(counts(0, 4_000))).toBe(true);
    statistics.analyzeEnded();
    expect(statistics.observe(counts(0, 4_000))).toBe(false);
    expect(statistics.state).toBe("stale");
    expect(statistics.observe(counts(0, 7_999))).toBe(false);
    expect(statistics.named).toBe(false);
    expect(statistics.observe(counts(0, 8_000))).toBe(true);
    statistics.analyzeEnded();
    // Autovacuum analyzed it meanwhile.
    expect(statistics.observe(counts(8_100, 8_200))).toBe(false);
    expect(statistics.state).toBe("current");
    // Stale again later: analyzed at once, not only past twice the rows of the attempt before.
    expect(statistics.observe(counts(8_100, 16_200))).toBe(true);
  });
});
