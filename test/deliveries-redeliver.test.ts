import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, deliveriesOf, finishedDelivery, type DeliveryRow } from "./support/queries.js";
import { ok, Receiver, status } from "./support/receiver.js";

const run = promisify(execFile);

let testDb: TestDatabase;
let harness: Harness;
let other: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0, 50] });
  other = await startHarness(testDb, {}, { worker: false });
});

afterAll(async () => {
  await harness?.stop();
  await other?.stop();
  await testDb?.drop();
});

async function jobDeliveredTo(receiver: Receiver, finalStatus: "succeeded" | "failed"): Promise<DeliveryRow> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "again", webhookUrl: receiver.url });
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return eventually(() => finishedDelivery(testDb.database, created.body.jobId, finalStatus));
}

async function settledAgain(delivery: DeliveryRow, finalStatus: string, attemptCount: number): Promise<DeliveryRow> {
  return eventually(async () => {
    const [row] = await deliveriesOf(testDb.database, delivery.job_id);
    return row?.status === finalStatus && row.attempt_count === attemptCount ? row : undefined;
  });
}

const outcomes = async (deliveryId: string) =>
  (await attemptsOf(testDb.database, deliveryId)).map((a) => [a.attempt_number, a.outcome, a.response_status]);

describe("POST /api/v1/deliveries/:id/redeliver", () => {
  it("gives a failed delivery a fresh budget on the same row: same webhook-id, attempts append", async () => {
    const receiver = await Receiver.start(status(503));
    try {
      const delivery = await jobDeliveredTo(receiver, "failed");
      expect(await outcomes(delivery.id)).toEqual([
        [1, "retry", 503],
        [2, "failed", 503],
      ]);

      // Still down: the fresh budget is the frozen schedule's length again, retries included.
      const first = await harness.api.post(`/api/v1/deliveries/${delivery.id}/redeliver`);
      expect(first.status).toBe(202);
      expect(first.body).toMatchObject({ deliveryId: delivery.id, status: "pending", attemptCount: 2, maxAttempts: 4, finishedAt: null });
      await settledAgain(delivery, "failed", 4);
      expect(await outcomes(delivery.id)).toEqual([
        [1, "retry", 503],
        [2, "failed", 503],
        [3, "retry", 503],
        [4, "failed", 503],
      ]);

      // Back up: one more attempt and it succeeds; then a succeeded delivery can be sent again too.
      receiver.respondWith(ok);
      expect((await harness.api.post(`/api/v1/deliveries/${delivery.id}/redeliver`)).status).toBe(202);
      await settledAgain(delivery, "succeeded", 5);
      expect((await harness.api.post(`/api/v1/deliveries/${delivery.id}/redeliver`)).status).toBe(202);
      const final = await settledAgain(delivery, "succeeded", 6);
      expect(final.max_attempts).toBe(7); // attempt_count 5 + a schedule of 2
      expect((await outcomes(delivery.id)).slice(4)).toEqual([
        [5, "succeeded", 200],
        [6, "succeeded", 200],
      ]);

      expect(receiver.requests).toHaveLength(6);
      expect(new Set(receiver.requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([delivery.id]));
      expect(receiver.requests.map((r) => r.headers["x-webhook-attempt"])).toEqual(["1", "2", "3", "4", "5", "6"]);
      expect(new Set(receiver.requests.map((r) => r.body)).size).toBe(1);

      const history = await harness.api.get(`/api/v1/jobs/${delivery.job_id}/deliveries`);
      expect(history.body.data).toHaveLength(1);
      expect(history.body.data[0].attempts).toHaveLength(6);
    } finally {
      await receiver.close();
    }
  });

  it("answers 409 while the delivery is pending, and changes nothing", async () => {
    // 429 with a long Retry-After leaves the delivery pending, its next attempt an hour away.
    const receiver = await Receiver.start(status(429, { "retry-after": "3600" }));
    try {
      const created = await harness.api.post("/api/v1/generate", { prompt: "waiting", webhookUrl: receiver.url });
      await harness.api.finishJob(created.body.jobId, 1, "completed");
      const pending = await eventually(async () => {
        const [row] = await deliveriesOf(testDb.database, created.body.jobId);
        return row?.status === "pending" && row.attempt_count === 1 ? row : undefined;
      });
      const response = await harness.api.post(`/api/v1/deliveries/${pending.id}/redeliver`);
      expect([response.status, response.body.error.code]).toEqual([409, "DELIVERY_IN_FLIGHT"]);
      const [after] = await deliveriesOf(testDb.database, created.body.jobId);
      expect(after).toMatchObject({ status: "pending", max_attempts: 2, next_attempt_at: pending.next_attempt_at });
    } finally {
      await receiver.close();
    }
  });

  it("answers 409 while an attempt is in flight", async () => {
    let release: (() => void) | undefined;
    const receiver = await Receiver.start((_request, response) => {
      release = () => response.writeHead(200).end();
    });
    try {
      const created = await harness.api.post("/api/v1/generate", { prompt: "in flight", webhookUrl: receiver.url });
      await harness.api.finishJob(created.body.jobId, 1, "completed");
      await receiver.waitForRequests(1);
      const [delivering] = await deliveriesOf(testDb.database, created.body.jobId);
      expect(delivering?.status).toBe("delivering");
      const response = await harness.api.post(`/api/v1/deliveries/${delivering?.id}/redeliver`);
      expect([response.status, response.body.error.code]).toEqual([409, "DELIVERY_IN_FLIGHT"]);
      release?.();
      await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "succeeded"));
    } finally {
      await receiver.close();
    }
  });

  it("is tenant-scoped: another tenant's delivery is 404 and untouched", async () => {
    const receiver = await Receiver.start(status(503));
    try {
      const delivery = await jobDeliveredTo(receiver, "failed");
      const foreign = await other.api.post(`/api/v1/deliveries/${delivery.id}/redeliver`);
      expect([foreign.status, foreign.body.error.code]).toEqual([404, "DELIVERY_NOT_FOUND"]);
      expect((await deliveriesOf(testDb.database, delivery.job_id))[0]).toMatchObject({ status: "failed", max_attempts: 2 });
      expect((await harness.api.post("/api/v1/deliveries/not-a-uuid/redeliver")).status).toBe(404);
      expect((await harness.api.post("/api/v1/deliveries/00000000-0000-4000-8000-000000000000/redeliver")).status).toBe(404);
      expect((await harness.api.withKey("wrong").post(`/api/v1/deliveries/${delivery.id}/redeliver`)).status).toBe(401);
    } finally {
      await receiver.close();
    }
  });
});

describe("the CLI: redeliver <deliveryId>", () => {
  const cli = (...args: string[]) =>
    run(process.execPath, ["--import", "tsx", "src/cli.ts", "redeliver", ...args], {
      env: { ...process.env, DATABASE_URL: testDb.url, LOG_LEVEL: "silent" },
    }).then(
      (result) => ({ code: 0, ...result }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

  it("queues a delivery again, which the running worker sends with the same webhook-id", async () => {
    const receiver = await Receiver.start(status(503), status(503), ok);
    try {
      const delivery = await jobDeliveredTo(receiver, "failed");
      const result = await cli(delivery.id);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`delivery ${delivery.id} queued again: attempts 3..4`);
      await settledAgain(delivery, "succeeded", 3);
      expect(receiver.requests[2]?.headers["webhook-id"]).toBe(delivery.id);

      const again = await cli(delivery.id);
      expect(again.code).toBe(0);
      await settledAgain(delivery, "succeeded", 4);
      expect(receiver.requests[3]?.headers["x-webhook-attempt"]).toBe("4");
    } finally {
      await receiver.close();
    }
  });

  it("says why it cannot, with a non-zero exit", async () => {
    const missing = await cli("00000000-0000-4000-8000-000000000000");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("DELIVERY_NOT_FOUND");
    const usage = await cli("not-a-uuid");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("usage: webhook-outbox redeliver");
  });
});
