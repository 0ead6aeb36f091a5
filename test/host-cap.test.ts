import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { hang, Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let slow: Receiver;
let fast: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {
    WORKER_CONCURRENCY: 8,
    DESTINATION_CONCURRENCY: 2,
    // Every destination with an attempt in flight counts as slow: the cap holds from the first claim.
    DESTINATION_SLOW_AFTER_MS: 0,
    WORKER_BATCH_SIZE: 8,
    WEBHOOK_TIMEOUT_MS: 60_000,
    SHUTDOWN_GRACE_MS: 0,
  });
  slow = await Receiver.start(hang);
  fast = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await slow?.close();
  await fast?.close();
  await testDb?.drop();
});

async function completedJob(url: string): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "cap", webhookUrl: url });
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

describe("a hanging destination", () => {
  it("holds at most its per-host share of the worker; other destinations keep flowing", async () => {
    for (let i = 0; i < 30; i++) await completedJob(slow.url);
    await slow.waitForRequests(2);

    const fastJobs: string[] = [];
    for (let i = 0; i < 10; i++) fastJobs.push(await completedJob(fast.url));
    for (const jobId of fastJobs) await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));

    expect(fast.requests).toHaveLength(10);
    // The hanging host never had more than its cap of attempts open, and the rest wait unspent.
    expect(slow.requests).toHaveLength(2);
    const [waiting] = await testDb.database.query<{ pending: number; spent: number }>(
      `select count(*) filter (where d.status = 'pending')::int as pending,
              coalesce(sum(d.attempt_count) filter (where d.status = 'pending'), 0)::int as spent
       from webhook_outbox.webhook_deliveries d join webhook_outbox.jobs j on j.id = d.job_id where j.webhook_url = $1`,
      [slow.url],
    );
    expect(waiting).toEqual({ pending: 28, spent: 0 });
  });
});
