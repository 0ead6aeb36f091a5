import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli } from "./support/processes.js";
import { attemptsOf, deliveriesOf, finishedDelivery } from "./support/queries.js";
import { hang, Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_TIMEOUT_MS: 30_000 }, { worker: false });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

function workerEnv(graceMs: number): Record<string, string> {
  return {
    DATABASE_URL: testDb.url,
    WEBHOOK_ALLOW_INSECURE_URLS: "true",
    WORKER_POLL_INTERVAL_MS: "100",
    SHUTDOWN_GRACE_MS: String(graceMs),
    LOG_LEVEL: "info",
  };
}

async function completedJob(): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "drain", webhookUrl: receiver.url });
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

describe("SIGTERM", () => {
  it("lets the attempt in flight finish, records it, and exits 0", async () => {
    receiver.requests.length = 0;
    let answer: (() => void) | undefined;
    receiver.respondWith((_request, response) => {
      answer = () => response.writeHead(200).end("done");
    });
    const worker = spawnCli(["worker"], workerEnv(20_000));
    await worker.waitForLog(/worker started/);
    const jobId = await completedJob();
    await receiver.waitForRequests(1);

    worker.child.kill("SIGTERM");
    await worker.waitForLog(/shutting down/);
    // The receiver answers only after the worker was told to stop: the attempt must still be recorded.
    answer?.();
    expect(await worker.exited).toBe(0);

    const delivery = await finishedDelivery(testDb.database, jobId, "succeeded");
    expect(delivery).toBeDefined();
    const attempts = await attemptsOf(testDb.database, delivery?.id ?? "");
    expect(attempts.map((a) => [a.outcome, a.response_status])).toEqual([["succeeded", 200]]);
  });

  it("past the grace period, aborts the attempt, records it as interrupted and leaves the delivery due", async () => {
    receiver.requests.length = 0;
    receiver.respondWith(hang);
    const worker = spawnCli(["worker"], workerEnv(200));
    await worker.waitForLog(/worker started/);
    const jobId = await completedJob();
    await receiver.waitForRequests(1);

    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);

    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery).toMatchObject({ status: "pending", attempt_count: 1 });
    expect(delivery?.next_attempt_at?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const attempts = await attemptsOf(testDb.database, delivery?.id ?? "");
    expect(attempts.map((a) => a.outcome)).toEqual(["interrupted"]);
    expect(attempts[0]?.error_message).toContain("shut down");
  });

  it("gives the API a clean stop too", async () => {
    const api = spawnCli(["api"], { ...workerEnv(1000), PORT: "0", INTERNAL_API_TOKEN: "x".repeat(32) });
    await api.waitForLog(/API listening/);
    api.child.kill("SIGTERM");
    expect(await api.exited).toBe(0);
    await eventually(async () => (api.output.some((line) => line.includes('"stopped"')) ? true : undefined));
  });
});
