import { describe, expect, it } from "vitest";
import { BoundedMap } from "../src/bounded-map.js";
import type { JobRow } from "../src/jobs/job-sql.js";
import { DatabaseClock, KnownJobStates } from "../src/jobs/known-job-states.js";

const job = (id: string, updatedAt = new Date(0)): JobRow =>
  ({ id, status: "queued", updatedAt, createdAt: updatedAt }) as JobRow;
const state = (id: string) => ({ job: job(id), projects: [], version: "1" });

describe("BoundedMap", () => {
  it("drops the least recently used entry when full; reading or setting an entry makes it the newest", () => {
    const map = new BoundedMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    map.set("a", 3);
    map.set("c", 4);
    expect(map.get("b")).toBeUndefined();
    expect(map.get("a")).toBe(3);
    map.set("d", 5);
    expect(map.get("c")).toBeUndefined();
    expect(map.get("a")).toBe(3);
    expect(map.size).toBe(2);
  });

  it("holds nothing at capacity 0", () => {
    const map = new BoundedMap<string, number>(0);
    map.set("a", 1);
    expect(map.get("a")).toBeUndefined();
    expect(map.size).toBe(0);
  });
});

describe("KnownJobStates", () => {
  it("remembers jobs up to its capacity, and forgets on demand", () => {
    const known = new KnownJobStates(2);
    known.remember(state("a"));
    known.remember(state("b"));
    known.remember(state("c"));
    expect(known.get("a")).toBeUndefined();
    expect(known.get("c")?.job.id).toBe("c");
    known.forget("c");
    expect(known.get("c")).toBeUndefined();
    expect(known.get("b")?.job.id).toBe("b");
  });

  it("remembers nothing at capacity 0", () => {
    const none = new KnownJobStates(0);
    none.remember(state("a"));
    expect(none.get("a")).toBeUndefined();
  });
});

describe("DatabaseClock", () => {
  it("reads the database's time as local time plus the offset last observed", () => {
    let local = 1_000_000;
    const clock = new DatabaseClock(() => local);
    clock.observe(new Date(1_000_250));
    local += 40;
    expect(clock.now(new Date(0)).getTime()).toBe(1_000_290);
  });

  it("never goes before the job's last write, however far behind the database's clock seems", () => {
    const clock = new DatabaseClock(() => 5_000);
    clock.observe(new Date(1_000));
    expect(clock.now(new Date(9_000)).getTime()).toBe(9_000);
  });
});
