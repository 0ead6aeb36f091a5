import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli } from "./support/processes.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { hang, Receiver } from "./support/receiver.js";

// What a dead or stopped worker costs: only the attempts that were really under way, and those
// spend nothing of their delivery's budget.

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function completedJobs(url: string, count: number): Promise<string[]> {
  const jobIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const created = await harness.api.post("/api/v1/generate", { prompt: "crash", webhookUrl: url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    jobIds.push(created.body.jobId);
  }
  return jobIds;
}

interface State {
  job_id: string;
  status: string;
  attempt_count: number;
  max_attempts: number;
  attempts: number;
}

async function states(jobIds: string[]): Promise<State[]> {
  return testDb.database.query<State>(
    `select d.job_id, d.status, d.attempt_count, d.max_attempts,
            (select count(*)::int from webhook_outbox.webhook_delivery_attempts a where a.delivery_id = d.id) as attempts
     from webhook_outbox.webhook_deliveries d where d.job_id = any($1::uuid[]) order by d.created_at`,
    [jobIds],
  );
}

describe("a worker killed with SIGKILL", () => {
  it("held only the attempts it had sent; those are retried without spending their budget", async () => {
    const receiver = await Receiver.start(hang);
    try {
      const jobIds = await completedJobs(receiver.url, 6);
      const env = {
        DATABASE_URL: testDb.url,
        WEBHOOK_ALLOW_INSECURE_URLS: "true",
        WORKER_CONCURRENCY: "2",
        WORKER_POLL_INTERVAL_MS: "100",
        LEASE_MARGIN_MS: "0",
        WEBHOOK_TIMEOUT_MS: "60000",
        LOG_LEVEL: "warn",
      };
      const doomed = spawnCli(["worker"], env);
      await receiver.waitForRequests(2);
      doomed.child.kill("SIGKILL");
      await doomed.exited;
      // Nothing was claimed beyond the two slots: four deliveries wait untouched.
      const before = await states(jobIds);
      expect(before.filter((s) => s.status === "delivering").map((s) => s.attempt_count)).toEqual([1, 1]);
      expect(before.filter((s) => s.status === "pending").map((s) => [s.attempt_count, s.attempts])).toEqual(
        Array(4).fill([0, 0]),
      );
      const interruptedJobs = before.filter((s) => s.status === "delivering").map((s) => s.job_id);
      // The leases run out now rather than after the 60 s request timeout they cover.
      await testDb.database.query(
        "update webhook_outbox.webhook_deliveries set locked_until = now(), next_attempt_at = now() where status = 'delivering'",
      );

      receiver.respondWith((_request, response) => response.writeHead(200).end("ok"));
      const survivor = spawnCli(["worker"], { ...env, WORKER_CONCURRENCY: "8" });
      try {
        for (const jobId of jobIds) await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
      } finally {
        survivor.child.kill("SIGTERM");
        await survivor.exited;
      }
      const after = await states(jobIds);
      for (const state of after) {
        const interrupted = interruptedJobs.includes(state.job_id);
        // The default schedule's 3 attempts, grown by the one the dead worker cut off.
        expect(state).toMatchObject({
          status: "succeeded",
          attempt_count: interrupted ? 2 : 1,
          max_attempts: interrupted ? 4 : 3,
          attempts: interrupted ? 2 : 1,
        });
      }
      expect(receiver.requests).toHaveLength(8);
    } finally {
      await receiver.close();
    }
  });
});

describe("a worker stopped while its attempt hangs", () => {
  it("cuts the attempt short as interrupted; on its only attempt the delivery goes again instead of failing", async () => {
    const receiver = await Receiver.start(hang);
    const worker = await startHarness(
      testDb,
      { SHUTDOWN_GRACE_MS: 0, WEBHOOK_RETRY_DELAYS: [0], WEBHOOK_TIMEOUT_MS: 60_000 },
      { tenant: harness.tenant },
    );
    try {
      // Created through this service, so its delivery freezes the one-attempt schedule.
      const created = await worker.api.post("/api/v1/generate", { prompt: "stop", webhookUrl: receiver.url });
      await worker.api.finishJob(created.body.jobId, 1, "completed");
      const jobId = created.body.jobId as string;
      await receiver.waitForRequests(1);
      await worker.stop();
      const [state] = await states([jobId]);
      expect(state).toMatchObject({ status: "pending", attempt_count: 1, max_attempts: 2, attempts: 1 });
      const delivery = await finishedDelivery(testDb.database, jobId, "pending");
      const [attempt] = await attemptsOf(testDb.database, delivery?.id ?? "");
      expect(attempt).toMatchObject({ outcome: "interrupted", error_kind: "other" });
    } finally {
      await receiver.close();
    }
  });
});
