import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {
    // Long enough that a burst of reports fits inside it on any machine; no polling, so only
    // NOTIFY and the window decide when the worker claims.
    WORKER_BATCH_WINDOW_MS: 1_000,
    WORKER_POLL_INTERVAL_MS: 60_000,
  });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

/** Claims so far: how many, how many came back empty, and how many deliveries they returned. */
async function claims(): Promise<{ count: number; empty: number; claimed: number }> {
  const { values } = await harness.service.metrics.claimBatchSize.get();
  const value = (name: string, le?: number) =>
    values.find((v) => v.metricName === name && (le === undefined || v.labels.le === le))?.value ?? 0;
  return {
    count: value("webhook_outbox_claim_batch_size_count"),
    empty: value("webhook_outbox_claim_batch_size_bucket", 0),
    claimed: value("webhook_outbox_claim_batch_size_sum"),
  };
}

describe("the batch window", () => {
  it("claims deliveries whose reports commit close together in one round trip", async () => {
    const jobIds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await harness.api.post("/api/v1/generate", { prompt: "burst", webhookUrl: receiver.url });
      jobIds.push(created.body.jobId);
    }
    const before = await claims();
    // Five commits, each with its own NOTIFY.
    for (const jobId of jobIds) await harness.api.finishJob(jobId, 1, "completed");
    for (const jobId of jobIds) await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));

    const after = await claims();
    expect(after.claimed - before.claimed).toBe(5);
    // At most the first after a quiet spell goes alone; the rest wait out its window and share a claim.
    const nonEmpty = after.count - before.count - (after.empty - before.empty);
    expect(nonEmpty).toBeGreaterThanOrEqual(1);
    expect(nonEmpty).toBeLessThanOrEqual(2);
    expect(receiver.requests).toHaveLength(5);
  });
});
