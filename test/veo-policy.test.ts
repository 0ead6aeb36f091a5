import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWith, loadConfig } from "../src/config.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness } from "./support/harness.js";
import { attemptsOf, deliveriesOf, finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

interface PolicyRow {
  max_attempts: number;
  retry_delays_ms: number[];
  timeout_ms: number;
  connect_timeout_ms: number;
}

let testDb: TestDatabase;

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  await testDb?.drop();
});

async function policyOf(jobId: string): Promise<PolicyRow | undefined> {
  const [row] = await testDb.database.query<PolicyRow>(
    "select max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms from webhook_outbox.webhook_deliveries where job_id = $1",
    [jobId],
  );
  return row;
}

describe("retry policy per surface", () => {
  it("defaults to the seeds' policies: jobs 0,10s,60s with 10 s; Veo3 0,30s×4 with 30 s request and 10 s connect", () => {
    const config = loadConfig({});
    expect(config.WEBHOOK_RETRY_DELAYS).toEqual([0, 10_000, 60_000]);
    expect(config.WEBHOOK_TIMEOUT_MS).toBe(10_000);
    expect(config.VEO_WEBHOOK_RETRY_DELAYS).toEqual([0, 30_000, 30_000, 30_000, 30_000]);
    expect(config.VEO_WEBHOOK_TIMEOUT_MS).toBe(30_000);
    expect(config.VEO_WEBHOOK_CONNECT_TIMEOUT_MS).toBe(10_000);
    expect(loadConfig({ VEO_WEBHOOK_RETRY_DELAYS: "0,1s" }).VEO_WEBHOOK_RETRY_DELAYS).toEqual([0, 1_000]);
  });

  it("freezes each surface's policy onto the delivery row at enqueue", async () => {
    const receiver = await Receiver.start();
    const defaults = configWith({});
    const harness = await startHarness(testDb, {}, { worker: false });
    try {
      const veo = await harness.api.post("/v1/veo/generate", { prompt: "veo", callback_url: receiver.url });
      const nouvel = await harness.api.post("/api/v1/generate", { prompt: "jobs", webhookUrl: receiver.url });
      await harness.api.internalPatch(`/internal/v1/jobs/${veo.body.generation_id}/projects/0`, {
        status: "failed",
        error: { code: "TIMEOUT" },
      });
      await harness.api.finishJob(nouvel.body.jobId, 1, "completed");
      expect(await policyOf(veo.body.generation_id)).toEqual({
        max_attempts: 5,
        retry_delays_ms: defaults.VEO_WEBHOOK_RETRY_DELAYS,
        timeout_ms: 30_000,
        connect_timeout_ms: 10_000,
      });
      expect(await policyOf(nouvel.body.jobId)).toEqual({
        max_attempts: 3,
        retry_delays_ms: defaults.WEBHOOK_RETRY_DELAYS,
        timeout_ms: 10_000,
        connect_timeout_ms: 10_000,
      });
    } finally {
      await harness.stop();
      await receiver.close();
    }
  });

  it("keeps sending under the frozen policy after the configuration changes", async () => {
    const receiver = await Receiver.start(status(503));
    // Enqueued under a two-attempt Veo3 policy by a process with no worker…
    const before = await startHarness(testDb, { VEO_WEBHOOK_RETRY_DELAYS: [0, 50] }, { worker: false });
    const created = await before.api.post("/v1/veo/generate", { prompt: "frozen", callback_url: receiver.url });
    const id: string = created.body.generation_id;
    await before.api.internalPatch(`/internal/v1/jobs/${id}/projects/0`, { status: "completed", videoUrl: "https://cdn.example.com/v.mp4" });
    await before.stop();

    // …and delivered by a worker configured for five attempts and another timeout.
    const after = await startHarness(
      testDb,
      { VEO_WEBHOOK_RETRY_DELAYS: [0, 50, 50, 50, 50], VEO_WEBHOOK_TIMEOUT_MS: 5_000 },
      { api: false },
    );
    try {
      const delivery = await eventually(() => finishedDelivery(testDb.database, id, "failed"));
      expect(delivery.attempt_count).toBe(2);
      expect(await policyOf(id)).toMatchObject({ max_attempts: 2, retry_delays_ms: [0, 50], timeout_ms: 30_000 });
      const attempts = await attemptsOf(testDb.database, delivery.id);
      expect(attempts.map((a) => [a.attempt_number, a.outcome])).toEqual([
        [1, "retry"],
        [2, "failed"],
      ]);
      expect(receiver.requests).toHaveLength(2);
      expect(await deliveriesOf(testDb.database, id)).toHaveLength(1);
    } finally {
      await after.stop();
      await receiver.close();
    }
  });
});
