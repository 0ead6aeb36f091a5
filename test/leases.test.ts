import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimDue, recordAttempts, urlAuthority, type AttemptRecord } from "../src/outbox/claim-sql.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli } from "./support/processes.js";
import { attemptsOf, deliveriesOf, finishedDelivery } from "./support/queries.js";
import { hang, ok, Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // API only: each test runs its own workers.
  harness = await startHarness(testDb, {}, { worker: false });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

async function completedJob(webhookUrl = receiver.url): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "lease", webhookUrl });
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

function succeeded(deliveryId: string, attemptNumber: number): AttemptRecord {
  const now = new Date();
  return {
    deliveryId,
    attemptNumber,
    outcome: "succeeded",
    deliveryStatus: "succeeded",
    retryDelayMs: null,
    responseStatus: 200,
    responseBodyExcerpt: "late",
    errorKind: null,
    errorMessage: null,
    startedAt: now,
    finishedAt: now,
    durationMs: 1,
  };
}

async function expireLeases(): Promise<void> {
  await testDb.database.query(
    "update webhook_deliveries set locked_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second' where status = 'delivering'",
  );
}

describe("leases", () => {
  it("a worker killed mid-delivery: another finishes the delivery after the lease", async () => {
    receiver.requests.length = 0;
    receiver.respondWith(hang, ok);
    const env = {
      DATABASE_URL: testDb.url,
      WEBHOOK_ALLOW_INSECURE_URLS: "true",
      WORKER_POLL_INTERVAL_MS: "100",
      LEASE_MARGIN_MS: "300",
      LOG_LEVEL: "info",
    };
    const doomed = spawnCli(["worker"], env);
    const workerLine = await doomed.waitForLog(/worker started/);
    const doomedId = JSON.parse(workerLine).workerId as string;
    const jobId = await completedJob();
    await receiver.waitForRequests(1);
    doomed.child.kill("SIGKILL");
    await doomed.exited;

    const [inFlight] = await deliveriesOf(testDb.database, jobId);
    expect(inFlight).toMatchObject({ status: "delivering", attempt_count: 1 });
    // Let the lease run out now instead of waiting out the 10 s request timeout it covers.
    await expireLeases();

    const survivor = spawnCli(["worker"], env);
    try {
      const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
      const attempts = await attemptsOf(testDb.database, delivery.id);
      expect(attempts.map((a) => [a.attempt_number, a.outcome])).toEqual([
        [1, "interrupted"],
        [2, "succeeded"],
      ]);
      expect(attempts[0]?.worker_id).toBe(doomedId);
      expect(attempts[1]?.worker_id).not.toBe(doomedId);
      expect(receiver.requests).toHaveLength(2);
      expect(receiver.requests.map((r) => r.headers["x-webhook-attempt"])).toEqual(["1", "2"]);
    } finally {
      survivor.child.kill("SIGTERM");
      await survivor.exited;
    }
  });

  it("claims the payload frozen at enqueue, not the job as it is at send time", async () => {
    const jobId = await completedJob();
    const [enqueued] = await deliveriesOf(testDb.database, jobId);
    await testDb.database.query("update job_projects set video_url = 'https://cdn.example.com/rewritten.mp4' where job_id = $1", [jobId]);
    const claimed = await claimDue(testDb.database, "worker-frozen", 100, 60_000);
    const mine = claimed.find((delivery) => delivery.id === enqueued?.id);
    expect(JSON.parse(mine?.body ?? "{}")).toEqual(enqueued?.payload);
    expect(mine?.body).not.toContain("rewritten");
    // Leave the queue empty for the tests that follow.
    await recordAttempts(testDb.database, "worker-frozen", claimed.map((delivery) => succeeded(delivery.id, delivery.attempt_count)));
  });

  it("a worker whose lease expired cannot overwrite the new owner's result", async () => {
    const jobId = await completedJob();
    const [first] = await claimDue(testDb.database, "worker-a", 10, 0);
    expect(first?.attempt_count).toBe(1);
    await expireLeases();

    const [second] = await claimDue(testDb.database, "worker-b", 10, 60_000);
    expect(second?.id).toBe(first?.id);
    expect(second?.attempt_count).toBe(2);
    const deliveryId = second?.id ?? "";

    // The late finaliser: worker A reports attempt 1 after losing its lease.
    expect(await recordAttempts(testDb.database, "worker-a", [succeeded(deliveryId, 1)])).toEqual([]);
    const [stillOwned] = await deliveriesOf(testDb.database, jobId);
    expect(stillOwned).toMatchObject({ status: "delivering", attempt_count: 2 });

    // The owner's result lands.
    expect(await recordAttempts(testDb.database, "worker-b", [succeeded(deliveryId, 2)])).toEqual([deliveryId]);
    const attempts = await attemptsOf(testDb.database, deliveryId);
    expect(attempts.map((a) => [a.attempt_number, a.outcome, a.worker_id])).toEqual([
      [1, "interrupted", "worker-a"],
      [2, "succeeded", "worker-b"],
    ]);
  });

  it("a delivery whose last attempt was interrupted is failed, not retried forever", async () => {
    const jobId = await completedJob();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const claimed = await claimDue(testDb.database, `crashing-${attempt}`, 10, 0);
      expect(claimed.map((d) => d.attempt_count)).toEqual([attempt]);
      await expireLeases();
    }
    expect(await claimDue(testDb.database, "last", 10, 0)).toEqual([]);
    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery).toMatchObject({ status: "failed", attempt_count: 3 });
    const attempts = await attemptsOf(testDb.database, delivery?.id ?? "");
    expect(attempts.map((a) => a.outcome)).toEqual(["interrupted", "interrupted", "interrupted"]);
  });
  it("a claim leaves the rows of destinations named as at their cap, and takes them when none is", async () => {
    const other = await Receiver.start();
    try {
      const capped = await deliveriesOf(testDb.database, await completedJob());
      const open = await deliveriesOf(testDb.database, await completedJob(other.url));
      const first = await claimDue(testDb.database, "capped", 10, 60_000, [urlAuthority(receiver.url)]);
      expect(first.map((d) => d.id)).toEqual(open.map((d) => d.id));
      const rest = await claimDue(testDb.database, "capped", 10, 60_000, []);
      expect(rest.map((d) => d.id)).toEqual(capped.map((d) => d.id));
    } finally {
      await other.close();
    }
  });

  // Last in this file: it retires the tenant's signing secrets.
  it("claims hand each delivery its tenant's active secrets, and none once they have all expired", async () => {
    const first = await completedJob();
    const second = await completedJob();
    const claimed = await claimDue(testDb.database, "secrets", 10, 60_000);
    expect(claimed.map((d) => d.id).sort()).toEqual(
      [...(await deliveriesOf(testDb.database, first)), ...(await deliveriesOf(testDb.database, second))].map((d) => d.id).sort(),
    );
    const active = await testDb.database.query<{ secret: string }>(
      "select secret from signing_secrets where tenant_id = $1 order by created_at desc",
      [claimed[0]?.tenant_id],
    );
    expect(active.length).toBeGreaterThan(0);
    for (const delivery of claimed) expect(delivery.secrets).toEqual(active.map((row) => row.secret));

    await testDb.database.query("update signing_secrets set expires_at = now() - interval '1 second' where tenant_id = $1", [
      claimed[0]?.tenant_id,
    ]);
    const third = await completedJob();
    const [unsigned] = await claimDue(testDb.database, "secrets", 10, 60_000);
    expect(unsigned).toMatchObject({ id: (await deliveriesOf(testDb.database, third))[0]?.id, secrets: null });
  });
});
