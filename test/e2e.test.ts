import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb);
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

describe("a job's completion webhook, end to end", () => {
  it("creates a job, completes it, and delivers a payload signed both ways", async () => {
    const created = await harness.api.post("/api/v1/generate", {
      prompt: "a cat playing with a ball",
      projectCount: 2,
      webhookUrl: receiver.url,
    });
    expect(created.status).toBe(202);
    expect(created.body.status).toBe("queued");
    expect(created.body.projects).toHaveLength(2);
    const jobId: string = created.body.jobId;

    await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, { status: "processing" });
    expect((await harness.api.get(`/api/v1/jobs/${jobId}`)).body.status).toBe("processing");
    expect(receiver.requests).toHaveLength(0);

    await harness.api.finishJob(jobId, 2, "completed");
    const [request] = await receiver.waitForRequests(1);
    if (!request) throw new Error("no request");

    // Standard Webhooks verification, by the reference package.
    const verified = new Webhook(harness.tenant.signingSecret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    }) as Record<string, unknown>;
    expect(verified.jobId).toBe(jobId);

    // The plain HMAC-SHA256 header over the exact body bytes, keyed with the decoded secret.
    const key = Buffer.from(harness.tenant.signingSecret.slice("whsec_".length), "base64");
    const expected = createHmac("sha256", key).update(request.body).digest("hex");
    expect(request.headers["x-webhook-signature"]).toBe(`sha256=${expected}`);
    expect(request.headers["x-webhook-attempt"]).toBe("1");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.method).toBe("POST");

    const payload = JSON.parse(request.body);
    expect(payload).toMatchObject({
      event: "job.completed",
      jobId,
      status: "completed",
      totalProjects: 2,
      completedProjects: 2,
      failedProjects: 0,
    });
    expect(payload.projects[1]).toMatchObject({ index: 1, status: "completed", error: null });
    expect(payload.projects[1].videoUrl).toContain(jobId);
    expect(new Date(payload.completedAt).getTime()).toBeGreaterThanOrEqual(new Date(payload.createdAt).getTime());

    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    expect(delivery.id).toBe(request.headers["webhook-id"]);
    expect(delivery.attempt_count).toBe(1);
    expect(delivery.last_response_status).toBe(200);
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({
      attempt_number: 1,
      outcome: "succeeded",
      response_status: 200,
      response_body_excerpt: '{"ok":true}',
      error_kind: null,
      worker_id: harness.service.worker?.workerId,
    });
    expect(attempts[0]?.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it("reports a job without a webhook URL by polling only, with no delivery row", async () => {
    const created = await harness.api.post("/api/v1/generate", { prompt: "no webhook" });
    expect(created.status).toBe(202);
    await harness.api.finishJob(created.body.jobId, 1, "failed");
    const job = await harness.api.get(`/api/v1/jobs/${created.body.jobId}`);
    expect(job.body.status).toBe("failed");
    expect(job.body.projects[0].error).toEqual({ code: "UNSAFE_CONTENT", message: "blocked by the safety filter" });
    const rows = await testDb.database.query("select 1 from webhook_outbox.webhook_deliveries where job_id = $1", [created.body.jobId]);
    expect(rows).toHaveLength(0);
  });

  it("serves the health endpoints", async () => {
    expect((await fetch(`${harness.service.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${harness.service.url}/readyz`)).status).toBe(200);
  });
});
