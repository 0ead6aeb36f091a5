import { describe, expect, it } from "vitest";
import { NaturalBatcher } from "../src/jobs/natural-batcher.js";

/** A batcher whose runs wait for the test: each started batch is recorded with its controls. */
function controlled(options: { concurrency: number; key?: (item: string) => string }) {
  const started: Array<{ batch: string[]; release: () => void; settle: () => void }> = [];
  const batcher = new NaturalBatcher<string>({
    concurrency: options.concurrency,
    maxBatch: 10,
    key: options.key,
    run: (batch, release) =>
      new Promise<void>((settle) => {
        started.push({ batch, release, settle });
      }),
    onCrash: (error) => {
      throw error;
    },
  });
  return { batcher, started };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("NaturalBatcher", () => {
  it("sends what queued behind a running batch as one batch when its slot frees", async () => {
    const { batcher, started } = controlled({ concurrency: 1 });
    batcher.add("a");
    batcher.add("b");
    batcher.add("c");
    expect(started.map((run) => run.batch)).toEqual([["a"]]);
    started[0]?.settle();
    await flush();
    expect(started.map((run) => run.batch)).toEqual([["a"], ["b", "c"]]);
  });

  it("holds the slot until the run settles when it never releases", async () => {
    const { batcher, started } = controlled({ concurrency: 1 });
    batcher.add("a");
    batcher.add("b");
    await flush();
    expect(started).toHaveLength(1);
  });

  it("starts the next batch at release, before the first batch's items are settled", async () => {
    const { batcher, started } = controlled({ concurrency: 1 });
    batcher.add("a");
    batcher.add("b");
    started[0]?.release();
    // Synchronously: the next batch is on its way while the first still runs.
    expect(started.map((run) => run.batch)).toEqual([["a"], ["b"]]);
    // Settling the released batch frees nothing twice: a third item waits for the second batch.
    started[0]?.settle();
    await flush();
    batcher.add("c");
    expect(started).toHaveLength(2);
    started[1]?.settle();
    await flush();
    expect(started.map((run) => run.batch)).toEqual([["a"], ["b"], ["c"]]);
  });

  it("frees a released batch's keys: an item of the same key may run from then on", async () => {
    const { batcher, started } = controlled({ concurrency: 2, key: (item) => item.split(":")[0] ?? "" });
    batcher.add("job1:first");
    batcher.add("job1:second");
    expect(started.map((run) => run.batch)).toEqual([["job1:first"]]);
    started[0]?.release();
    expect(started.map((run) => run.batch)).toEqual([["job1:first"], ["job1:second"]]);
  });
});
