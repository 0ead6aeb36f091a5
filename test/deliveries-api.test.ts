import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { ok, Receiver, status } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let other: Harness;
let flaky: Receiver;
let down: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0, 50, 50] });
  other = await startHarness(testDb, {}, { worker: false });
  flaky = await Receiver.start(status(500, {}, "try later"), ok);
  down = await Receiver.start(status(503));
});

afterAll(async () => {
  await harness?.stop();
  await other?.stop();
  await flaky?.close();
  await down?.close();
  await testDb?.drop();
});

/** Creates a one-project job to `url`, completes it and waits for its delivery to finish as `status`. */
async function deliveredJob(client: Harness, url: string, finalStatus: "succeeded" | "failed"): Promise<string> {
  const created = await client.api.post("/api/v1/generate", { prompt: "audited", webhookUrl: url });
  const jobId: string = created.body.jobId;
  await client.api.finishJob(jobId, 1, "completed");
  await eventually(() => finishedDelivery(testDb.database, jobId, finalStatus), 20_000, `delivery ${finalStatus}`);
  return jobId;
}

describe("GET /api/v1/jobs/:jobId/deliveries", () => {
  it("lists the job's delivery with every attempt in order; the id is the webhook-id", async () => {
    const jobId = await deliveredJob(harness, flaky.url, "succeeded");
    const response = await harness.api.get(`/api/v1/jobs/${jobId}/deliveries`);
    expect(response.status).toBe(200);
    expect(response.body.data).toHaveLength(1);
    const [delivery] = response.body.data;
    expect(delivery).toMatchObject({
      jobId,
      eventType: "job.completed",
      url: flaky.url,
      status: "succeeded",
      attemptCount: 2,
      maxAttempts: 3,
      retryDelaysMs: [0, 50, 50],
      lastResponseStatus: 200,
      nextAttemptAt: null,
    });
    expect(delivery.payload).toMatchObject({ event: "job.completed", jobId });
    expect(delivery.attempts.map((a: { attemptNumber: number; outcome: string; responseStatus: number }) => [a.attemptNumber, a.outcome, a.responseStatus])).toEqual([
      [1, "retry", 500],
      [2, "succeeded", 200],
    ]);
    expect(delivery.attempts[0]).toMatchObject({ errorKind: "http_status", responseBodyExcerpt: "try later" });
    expect(delivery.attempts[0]).not.toHaveProperty("workerId");
    const sentIds = flaky.requests.filter((r) => JSON.parse(r.body).jobId === jobId).map((r) => r.headers["webhook-id"]);
    expect(sentIds).toEqual([delivery.deliveryId, delivery.deliveryId]);
  });

  it("is empty for a job without a webhook, and 404 for another tenant's job or a malformed id", async () => {
    const created = await harness.api.post("/api/v1/generate", { prompt: "no webhook" });
    expect((await harness.api.get(`/api/v1/jobs/${created.body.jobId}/deliveries`)).body).toEqual({ data: [] });
    const foreign = await other.api.get(`/api/v1/jobs/${created.body.jobId}/deliveries`);
    expect([foreign.status, foreign.body.error.code]).toEqual([404, "JOB_NOT_FOUND"]);
    expect((await harness.api.get("/api/v1/jobs/nope/deliveries")).status).toBe(404);
    expect((await harness.api.withKey("wrong").get(`/api/v1/jobs/${created.body.jobId}/deliveries`)).status).toBe(401);
  });
});

describe("GET /api/v1/deliveries", () => {
  it("pages through the tenant's deliveries newest first, filtered by status and since", async () => {
    const started = new Date().toISOString();
    const failedJob = await deliveredJob(harness, down.url, "failed");
    const okJobs = [await deliveredJob(harness, flaky.url, "succeeded"), await deliveredJob(harness, flaky.url, "succeeded")];
    const foreignJob = await other.api.post("/api/v1/generate", { prompt: "other tenant", webhookUrl: flaky.url });
    await other.api.finishJob(foreignJob.body.jobId, 1, "completed");

    const failed = await harness.api.get(`/api/v1/deliveries?status=failed&since=${encodeURIComponent(started)}`);
    expect(failed.status).toBe(200);
    expect(failed.body.data.map((d: { jobId: string }) => d.jobId)).toEqual([failedJob]);
    expect(failed.body.data[0]).toMatchObject({ status: "failed", attemptCount: 3, lastResponseStatus: 503 });
    expect(failed.body.data[0].payload.jobId).toBe(failedJob);
    expect(failed.body.nextCursor).toBeNull();

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/api/v1/deliveries?limit=1&since=${encodeURIComponent(started)}${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await harness.api.get(query);
      expect(page.status).toBe(200);
      seen.push(...page.body.data.map((d: { jobId: string }) => d.jobId));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...okJobs].reverse().concat(failedJob));
    expect(seen).not.toContain(foreignJob.body.jobId);

    const all = await harness.api.get("/api/v1/deliveries?limit=100");
    expect(all.body.data.map((d: { jobId: string }) => d.jobId)).not.toContain(foreignJob.body.jobId);
    expect((await other.api.get("/api/v1/deliveries")).body.data.map((d: { jobId: string }) => d.jobId)).toEqual([
      foreignJob.body.jobId,
    ]);
  });

  it("refuses bad filters with a JSON error", async () => {
    const cases: Array<[string, string]> = [
      ["status=lost", "VALIDATION_FAILED"],
      ["since=yesterday", "VALIDATION_FAILED"],
      ["limit=0", "VALIDATION_FAILED"],
      ["cursor=garbage", "INVALID_CURSOR"],
      ["colour=red", "VALIDATION_FAILED"],
    ];
    for (const [query, code] of cases) {
      const response = await harness.api.get(`/api/v1/deliveries?${query}`);
      expect([query, response.status, response.body.error?.code]).toEqual([query, 400, code]);
    }
  });
});
