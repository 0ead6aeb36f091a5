import { describe, expect, it } from "vitest";
import { cpuBetween, readCpu } from "../bench/lib/cpu.js";
import { renderTable, throughputRow } from "../bench/lib/report.js";
import { combinedCeiling, median, percentile, perSecond, pooledRate, poolRounds, ratio, roundOrder } from "../bench/lib/stats.js";

describe("bench CPU readings", () => {
  it("turns two readings into the machine's busy share and each group's cores", () => {
    const from = { atMs: 1_000, machine: { busy: 500, total: 1_000 }, groups: { postgres: 100, worker: 40, idle: 7 } };
    const to = { atMs: 3_000, machine: { busy: 880, total: 1_400 }, groups: { postgres: 330, worker: 90, idle: 7 } };
    const use = cpuBetween(from, to);
    expect(use.machineBusy).toBeCloseTo(0.95);
    // 230 ticks at 100 a second over 2 s: 1.15 cores. A group that used nothing is left out.
    expect(use.cores).toEqual({ postgres: 1.15, worker: 0.25 });
    expect(cpuBetween({ ...from, machine: undefined }, to).machineBusy).toBeUndefined();
  });

  it("reads this process's own CPU from /proc where there is one", () => {
    const reading = readCpu({ self: () => [process.pid], gone: () => [undefined, 2 ** 22 + 1] });
    expect(reading.groups.gone).toBe(0);
    if (process.platform === "linux") expect(reading.groups.self).toBeGreaterThan(0);
  });
});

describe("bench statistics", () => {
  it("interpolates percentiles between closest ranks, whatever the input order", () => {
    const samples = [40, 10, 30, 20, 50];
    expect(percentile(samples, 0)).toBe(10);
    expect(percentile(samples, 50)).toBe(30);
    expect(percentile(samples, 100)).toBe(50);
    expect(percentile(samples, 25)).toBe(20);
    expect(percentile([10, 20], 99)).toBeCloseTo(19.9);
    expect(median([3, 1, 2, 4])).toBe(2.5);
    expect(samples).toEqual([40, 10, 30, 20, 50]);
  });

  it("has no percentile of nothing and refuses one outside 0..100", () => {
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it("divides ours by theirs, with NaN for a missing or zero side", () => {
    expect(ratio(3000, 1500)).toBe(2);
    expect(ratio(undefined, 1500)).toBeNaN();
    expect(ratio(3000, 0)).toBeNaN();
    expect(ratio(3000, Number.NaN)).toBeNaN();
  });

  it("combines two ceilings that share the cores as 1/(1/a + 1/b)", () => {
    expect(combinedCeiling(17_600, 32_000)).toBeCloseTo(11_354.8, 1);
    expect(combinedCeiling(1000, 1000)).toBe(500);
    expect(combinedCeiling(0, 1000)).toBeNaN();
  });

  it("turns a count over milliseconds into a rate per second", () => {
    expect(perSecond(2000, 500)).toBe(4000);
    expect(perSecond(1, 0)).toBeNaN();
  });

  it("runs compared side by side in order, then reversed, round after round", () => {
    const runs = ["ours", "graphile", "pg-boss"];
    expect([0, 1, 2, 3].map((round) => roundOrder(runs, round).join(" "))).toEqual([
      "ours graphile pg-boss",
      "pg-boss graphile ours",
      "ours graphile pg-boss",
      "pg-boss graphile ours",
    ]);
    expect(runs).toEqual(["ours", "graphile", "pg-boss"]);
  });

  it("pools rounds as all their deliveries over all their time, not as a mean of rates", () => {
    // 1,000 in 1 s and 1,000 in 4 s: 2,000 in 5 s is 400/s (the mean of the rates would say 625).
    const pooled = pooledRate([
      { deliveries: 1000, elapsedMs: 1000 },
      { deliveries: 1000, elapsedMs: 4000 },
    ]);
    expect(pooled.perSecond).toBe(400);
    expect(pooled.roundRates).toEqual([1000, 250]);
    expect(pooledRate([]).perSecond).toBeNaN();
  });

  it("pools a scenario's rounds into one result with the highest peak RSS", () => {
    const round = (elapsedMs: number, peakRssMiB: number | undefined) => ({ label: "one destination", deliveries: 500, elapsedMs, perSecond: 500_000 / elapsedMs, peakRssMiB });
    const pooled = poolRounds([round(1000, 140), round(1500, undefined), round(2500, 161)]);
    expect(pooled).toMatchObject({ label: "one destination", deliveries: 1500, elapsedMs: 5000, perSecond: 300, peakRssMiB: 161, rounds: 3 });
    expect(pooled?.roundRates).toEqual([500, 500_000 / 1500, 200]);
    expect(poolRounds([round(1000, undefined)])?.peakRssMiB).toBeUndefined();
    expect(poolRounds([])).toBeUndefined();
  });

  it("renders one aligned table with the ratio column", () => {
    const table = renderTable([throughputRow("graphile-worker", 1000, 2500), throughputRow("ours", 2500, 2500, "note")]);
    const lines = table.split("\n");
    expect(lines[0]).toMatch(/^scenario\s+figure\s+unit\s+ours ÷ it\s+notes$/);
    expect(lines[2]).toMatch(/graphile-worker\s+1,000\s+deliveries\/s\s+2\.50×/);
    expect(lines[3]).toMatch(/ours\s+2,500\s+deliveries\/s\s+1\.00×\s+note/);
  });
});
