import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli, type ServiceProcess } from "./support/processes.js";
import { Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;
const workers: ServiceProcess[] = [];

const JOBS = 150;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
  // A little latency per request so that no single worker can drain the queue alone.
  receiver = await Receiver.start((_request, response) => {
    setTimeout(() => response.writeHead(200).end("ok"), 10);
  });
  for (let i = 0; i < 2; i++) {
    const worker = spawnCli(["worker"], {
      DATABASE_URL: testDb.url,
      WEBHOOK_ALLOW_INSECURE_URLS: "true",
      WORKER_CONCURRENCY: "4",
      WORKER_BATCH_SIZE: "4",
      WORKER_POLL_INTERVAL_MS: "100",
      LOG_LEVEL: "info",
    });
    workers.push(worker);
  }
  await Promise.all(workers.map((worker) => worker.waitForLog(/worker started/)));
});

afterAll(async () => {
  for (const worker of workers) worker.child.kill("SIGTERM");
  await Promise.all(workers.map((worker) => worker.exited));
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

describe("two worker processes on one database", () => {
  it("deliver every webhook exactly once between them", async () => {
    const jobIds: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const created = await harness.api.post("/api/v1/generate", { prompt: `job ${i}`, webhookUrl: receiver.url });
      jobIds.push(created.body.jobId);
    }
    await Promise.all(jobIds.map((jobId) => harness.api.finishJob(jobId, 1, "completed")));

    await eventually(async () => {
      const [row] = await testDb.database.query<{ n: number }>(
        "select count(*)::int as n from webhook_outbox.webhook_deliveries where status = 'succeeded'",
      );
      return row?.n === JOBS ? true : undefined;
    }, 60_000, "every delivery to succeed");

    expect(receiver.requests).toHaveLength(JOBS);
    const ids = receiver.requests.map((request) => String(request.headers["webhook-id"]));
    expect(new Set(ids).size).toBe(JOBS);
    const jobsSeen = new Set(receiver.requests.map((request) => JSON.parse(request.body).jobId));
    expect(jobsSeen).toEqual(new Set(jobIds));

    const attempts = await testDb.database.query<{ worker_id: string; n: number }>(
      "select worker_id, count(*)::int as n from webhook_outbox.webhook_delivery_attempts group by worker_id",
    );
    expect(attempts.reduce((sum, row) => sum + row.n, 0)).toBe(JOBS);
    expect(attempts.length).toBe(2);
  });

  it("exit 0 on SIGTERM", async () => {
    const worker = workers.pop();
    if (!worker) throw new Error("no worker");
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  });
});
