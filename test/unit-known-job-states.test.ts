import { describe, expect, it } from "vitest";
import type { JobRow } from "../src/jobs/job-sql.js";
import { DatabaseClock, KnownJobStates } from "../src/jobs/known-job-states.js";

const job = (id: string, updatedAt = new Date(0)): JobRow =>
  ({ id, status: "queued", updatedAt, createdAt: updatedAt }) as JobRow;
const state = (id: string) => ({ job: job(id), projects: [], version: "1" });

describe("KnownJobStates", () => {
  it("drops the oldest job when full, and a job remembered again becomes the newest", () => {
    const known = new KnownJobStates(2);
    known.remember(state("a"));
    known.remember(state("b"));
    known.remember(state("a"));
    known.remember(state("c"));
    expect(known.get("b")).toBeUndefined();
    expect(known.get("a")?.job.id).toBe("a");
    expect(known.get("c")?.job.id).toBe("c");
    expect(known.size).toBe(2);
  });

  it("remembers nothing at capacity 0, and forgets on demand", () => {
    const none = new KnownJobStates(0);
    none.remember(state("a"));
    expect(none.get("a")).toBeUndefined();
    const known = new KnownJobStates(5);
    known.remember(state("a"));
    known.forget("a");
    expect(known.get("a")).toBeUndefined();
  });
});

describe("DatabaseClock", () => {
  it("reads the database's time as local time plus the offset last observed", () => {
    let local = 1_000_000;
    const clock = new DatabaseClock(() => local);
    clock.observe(new Date(1_000_250), local);
    local += 40;
    expect(clock.now(new Date(0)).getTime()).toBe(1_000_290);
  });

  it("never goes before the job's last write, however far behind the database's clock seems", () => {
    const local = 5_000;
    const clock = new DatabaseClock(() => local);
    clock.observe(new Date(1_000), local);
    expect(clock.now(new Date(9_000)).getTime()).toBe(9_000);
  });
});
