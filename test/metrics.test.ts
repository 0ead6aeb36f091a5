import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0, 20] });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function scrape(): Promise<{ text: string; contentType: string | null }> {
  const response = await fetch(`${harness.service.url}/metrics`);
  expect(response.status).toBe(200);
  return { text: await response.text(), contentType: response.headers.get("content-type") };
}

/** The value of one sample line, e.g. `webhook_outbox_attempts_total{outcome="retry"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("counts attempts and deliveries by outcome and times them, after a retried and a failed delivery", async () => {
    const flaky = await Receiver.start(status(503), status(200));
    const refusing = await Receiver.start(status(410));
    const first = await harness.api.post("/api/v1/generate", { prompt: "retried", webhookUrl: flaky.url });
    const second = await harness.api.post("/api/v1/generate", { prompt: "refused", webhookUrl: refusing.url });
    await harness.api.finishJob(first.body.jobId, 1, "completed");
    await harness.api.finishJob(second.body.jobId, 1, "completed");
    await eventually(() => finishedDelivery(testDb.database, first.body.jobId, "succeeded"));
    await eventually(() => finishedDelivery(testDb.database, second.body.jobId, "failed"));

    // The hook fires once the attempts are recorded, just after the row settles.
    const { text, contentType } = await eventually(async () => {
      const scraped = await scrape();
      return sample(scraped.text, 'webhook_outbox_deliveries_total{outcome="failed"}') === 1 &&
        sample(scraped.text, 'webhook_outbox_deliveries_total{outcome="succeeded"}') === 1
        ? scraped
        : undefined;
    });
    expect(contentType).toContain("text/plain");
    expect(sample(text, 'webhook_outbox_attempts_total{outcome="retry"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_attempts_total{outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_attempts_total{outcome="failed"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_attempt_duration_seconds_count{outcome="retry"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_attempt_duration_seconds_count{outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_attempt_duration_seconds_bucket{le="+Inf",outcome="failed"}')).toBe(1);
    // Three attempts were claimed, in however many batches; idle polls add claims of size 0.
    expect(sample(text, "webhook_outbox_claim_batch_size_sum")).toBe(3);
    expect(sample(text, "webhook_outbox_claim_batch_size_count")).toBeGreaterThanOrEqual(2);
    expect(text).toContain("# TYPE process_cpu_user_seconds_total counter");
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
    await flaky.close();
    await refusing.close();
  });

  it("counts destinations by state and the transitions this worker recorded (the 410 above disabled one)", async () => {
    const { text } = await scrape();
    expect(sample(text, 'webhook_outbox_destinations{state="disabled"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_destinations{state="healthy"}')).toBe(1);
    expect(sample(text, 'webhook_outbox_destinations{state="open"}')).toBe(0);
    expect(sample(text, 'webhook_outbox_destination_transitions_total{from="healthy",to="disabled"}')).toBe(1);
  });

  it("reads the progress of running replays at scrape time", async () => {
    expect(sample((await scrape()).text, 'webhook_outbox_replay_deliveries{kind="matched"}')).toBe(0);
    // A replay that the workers will not step for an hour: its progress as it stands.
    await testDb.database.query(
      `insert into webhook_outbox.replays (tenant_id, status, since, until, matched, requeued, cursor_created_at, cursor_id, next_step_at)
       values ($1, 'failed', now() - interval '1 day', now(), 40, 15, now() - interval '1 day',
               '00000000-0000-0000-0000-000000000000', now() + interval '1 hour')`,
      [harness.tenant.tenantId],
    );
    const { text } = await scrape();
    expect(sample(text, 'webhook_outbox_replay_deliveries{kind="matched"}')).toBe(40);
    expect(sample(text, 'webhook_outbox_replay_deliveries{kind="requeued"}')).toBe(15);
  });

  it("reads queue depth by status and the oldest due age from the database at scrape time", async () => {
    const before = (await scrape()).text;
    expect(sample(before, 'webhook_outbox_queue_depth{status="pending"}')).toBe(0);
    expect(sample(before, 'webhook_outbox_queue_depth{status="delivering"}')).toBe(0);
    expect(sample(before, "webhook_outbox_oldest_due_age_seconds")).toBe(0);

    // Two deliveries made due a minute ago, written directly: the worker is not part of this check.
    await harness.service.worker?.stop();
    const jobs = await Promise.all(
      [1, 2].map(() => harness.api.post("/api/v1/generate", { prompt: "queued", webhookUrl: "http://127.0.0.1:9/never" })),
    );
    for (const job of jobs) await harness.api.finishJob(job.body.jobId, 1, "completed");
    await testDb.database.query("update webhook_outbox.webhook_deliveries set next_attempt_at = now() - interval '60 seconds' where status = 'pending'");

    const after = (await scrape()).text;
    expect(sample(after, 'webhook_outbox_queue_depth{status="pending"}')).toBe(2);
    expect(sample(after, 'webhook_outbox_queue_depth{status="delivering"}')).toBe(0);
    expect(sample(after, "webhook_outbox_oldest_due_age_seconds")).toBeGreaterThanOrEqual(60);
  });
});
