import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { hang, ok, Receiver, status } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
/** Creates jobs whose deliveries freeze a 300 ms timeout, for the hanging receiver. */
let impatient: Harness;
let receiver: Receiver;

// Short, distinct delays so the schedule can be read back from the attempt rows.
const RETRY_DELAYS = [0, 150, 300];

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: RETRY_DELAYS });
  impatient = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: RETRY_DELAYS, WEBHOOK_TIMEOUT_MS: 300 }, { worker: false });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await impatient?.stop();
  await receiver?.close();
  await testDb?.drop();
});

beforeEach(() => {
  receiver.requests.length = 0;
});

async function completedJob(): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "retry me", webhookUrl: receiver.url });
  expect(created.status).toBe(202);
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

describe("the retry schedule", () => {
  it("retries 5xx on the configured delays and records each attempt", async () => {
    receiver.respondWith(status(500, {}, "boom"), status(503), ok);
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => [a.attempt_number, a.outcome, a.response_status, a.error_kind])).toEqual([
      [1, "retry", 500, "http_status"],
      [2, "retry", 503, "http_status"],
      [3, "succeeded", 200, null],
    ]);
    expect(attempts[0]?.response_body_excerpt).toBe("boom");
    // Each retry waited at least its configured delay after the previous attempt ended.
    for (const n of [1, 2]) {
      const gap = (attempts[n]?.started_at.getTime() ?? 0) - (attempts[n - 1]?.finished_at.getTime() ?? 0);
      expect(gap).toBeGreaterThanOrEqual((RETRY_DELAYS[n] ?? 0) - 5);
    }
    expect(receiver.requests.map((r) => r.headers["x-webhook-attempt"])).toEqual(["1", "2", "3"]);
    // Every attempt carries the same webhook-id.
    expect(new Set(receiver.requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([delivery.id]));
  });

  it("marks the delivery failed after the last attempt", async () => {
    receiver.respondWith(status(500));
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    expect(delivery.attempt_count).toBe(3);
    expect(delivery.next_attempt_at).toBeNull();
    expect(delivery.finished_at).not.toBeNull();
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => a.outcome)).toEqual(["retry", "retry", "failed"]);
    expect(receiver.requests).toHaveLength(3);
  });

  it("does not retry a 4xx", async () => {
    receiver.respondWith(status(400, {}, "bad"), ok);
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ outcome: "failed", response_status: 400, error_kind: "http_status" });
    expect(delivery.last_response_status).toBe(400);
  });

  it("retries 408 and 429", async () => {
    receiver.respondWith(status(408), status(429), ok);
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => a.response_status)).toEqual([408, 429, 200]);
  });

  it("honours Retry-After on a 429 beyond the scheduled delay", async () => {
    receiver.respondWith(status(429, { "retry-after": "1" }), ok);
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(2);
    const gap = (attempts[1]?.started_at.getTime() ?? 0) - (attempts[0]?.finished_at.getTime() ?? 0);
    expect(gap).toBeGreaterThanOrEqual(990);
  });

  it("never follows a redirect", async () => {
    receiver.respondWith(status(302, { location: "http://127.0.0.1:1/elsewhere" }), ok);
    const jobId = await completedJob();
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ outcome: "failed", response_status: 302, error_kind: "redirect" });
    expect(receiver.requests).toHaveLength(1);
  });

  it("records a receiver that never answers as a timeout, and retries it", async () => {
    receiver.respondWith(hang);
    const created = await impatient.api.post("/api/v1/generate", { prompt: "hang", webhookUrl: receiver.url });
    await impatient.api.finishJob(created.body.jobId, 1, "completed");
    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => [a.outcome, a.error_kind, a.response_status])).toEqual([
      ["retry", "timeout", null],
      ["retry", "timeout", null],
      ["failed", "timeout", null],
    ]);
    expect(attempts[0]?.error_message).toContain("300 ms");
  });

  it("records a refused connection as a connect error", async () => {
    const closed = await Receiver.start();
    const url = closed.url;
    await closed.close();
    const created = await harness.api.post("/api/v1/generate", { prompt: "nobody home", webhookUrl: url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => [a.outcome, a.error_kind])).toEqual([
      ["retry", "connect"],
      ["retry", "connect"],
      ["failed", "connect"],
    ]);
    expect(attempts[0]?.error_message).toContain("ECONNREFUSED");
  });
});
