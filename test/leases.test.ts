import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimDue, type ClaimedDelivery } from "../src/outbox/sql/claim.js";
import { redeliver } from "../src/outbox/redeliver.js";
import { recordAttempts as recordWith, type AttemptRecord } from "../src/outbox/sql/record.js";
import { WORKER_DEFAULTS } from "../src/outbox/worker/options.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli } from "./support/processes.js";
import { attemptsOf, deliveriesOf, finishedDelivery } from "./support/queries.js";
import { hang, ok, Receiver } from "./support/receiver.js";

const RULES = {
  failureThreshold: WORKER_DEFAULTS.destinationFailureThreshold,
  cooldownMs: WORKER_DEFAULTS.destinationCooldownMs,
  disableAfterMs: WORKER_DEFAULTS.destinationDisableAfterMs,
};

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
    destinationResult: "success",
  };
}

/** One claim as a worker makes it: `cap` live leases per destination, `maxInterruptions` as the worker's default. */
async function claim(workerId: string, limit: number, leaseMarginMs: number, cap = 1_000): Promise<ClaimedDelivery[]> {
  const result = await claimDue(testDb.database.query, {
    workerId,
    limit,
    leaseMarginMs,
    destinationConcurrency: cap,
    maxInterruptions: 5,
  });
  return result.deliveries;
}

/** A claim of up to 10 with 2 slots per slow destination and 5 per fast one (`fastDestinations`, answering within 30 s). */
const claimWithFastRoom = (workerId: string, fastDestinations: string[]) =>
  claimDue(testDb.database.query, {
    workerId,
    limit: 10,
    leaseMarginMs: 60_000,
    destinationConcurrency: 2,
    maxInterruptions: 5,
    slowAfterMs: 30_000,
    fastDestinationConcurrency: 5,
    fastDestinations,
  });

/** A leased delivery whose attempt (timeout + margin = 70 s of lease) started a minute ago: its lease ends in 10 s. */
async function inFlightForAMinute(deliveryId: string): Promise<void> {
  await testDb.database.query(
    `update webhook_outbox.webhook_deliveries
     set locked_until = now() + interval '10 seconds', next_attempt_at = now() + interval '10 seconds'
     where id = $1`,
    [deliveryId],
  );
}

const recordAttempts = async (workerId: string, records: AttemptRecord[]) =>
  (await recordWith(testDb.database.query, workerId, records, RULES)).owned;

async function expireLeases(): Promise<void> {
  await testDb.database.query(
    "update webhook_outbox.webhook_deliveries set locked_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second' where status = 'delivering'",
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
    await testDb.database.query("update webhook_outbox.job_projects set video_url = 'https://cdn.example.com/rewritten.mp4' where job_id = $1", [jobId]);
    const claimed = await claim("worker-frozen", 100, 60_000);
    const mine = claimed.find((delivery) => delivery.id === enqueued?.id);
    expect(JSON.parse(mine?.body ?? "{}")).toEqual(enqueued?.payload);
    expect(mine?.body).not.toContain("rewritten");
    // Leave the queue empty for the tests that follow.
    await recordAttempts("worker-frozen", claimed.map((delivery) => succeeded(delivery.id, delivery.attempt_count)));
  });

  it("a worker whose lease expired cannot overwrite the new owner's result", async () => {
    const jobId = await completedJob();
    const [first] = await claim("worker-a", 10, 0);
    expect(first?.attempt_count).toBe(1);
    await expireLeases();

    const [second] = await claim("worker-b", 10, 60_000);
    expect(second?.id).toBe(first?.id);
    expect(second?.attempt_count).toBe(2);
    const deliveryId = second?.id ?? "";

    // The late finaliser: worker A reports attempt 1 after losing its lease.
    expect(await recordAttempts("worker-a", [succeeded(deliveryId, 1)])).toEqual([]);
    const [stillOwned] = await deliveriesOf(testDb.database, jobId);
    expect(stillOwned).toMatchObject({ status: "delivering", attempt_count: 2 });

    // The owner's result lands.
    expect(await recordAttempts("worker-b", [succeeded(deliveryId, 2)])).toEqual([deliveryId]);
    const attempts = await attemptsOf(testDb.database, deliveryId);
    expect(attempts.map((a) => [a.attempt_number, a.outcome, a.worker_id])).toEqual([
      [1, "interrupted", "worker-a"],
      [2, "succeeded", "worker-b"],
    ]);
  });

  it("an interrupted attempt spends nothing of the budget: the attempt after it still goes, and can succeed", async () => {
    const jobId = await completedJob();
    // The schedule allows 3 attempts; two of them fail, the third is cut off by a dead worker.
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [claimed] = await claim(`failing-${attempt}`, 10, 60_000);
      const record = { ...succeeded(claimed?.id ?? "", attempt), outcome: "retry" as const, deliveryStatus: "pending" as const, retryDelayMs: 0 };
      await recordAttempts(`failing-${attempt}`, [record]);
    }
    const [last] = await claim("doomed", 10, 0);
    expect(last).toMatchObject({ attempt_count: 3, max_attempts: 3 });
    await expireLeases();
    const [again] = await claim("survivor", 10, 60_000);
    expect(again).toMatchObject({ id: last?.id, attempt_count: 4, max_attempts: 4, interruptions: 1 });
    await recordAttempts("survivor", [succeeded(again?.id ?? "", 4)]);
    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery).toMatchObject({ status: "succeeded", attempt_count: 4 });
    const attempts = await attemptsOf(testDb.database, delivery?.id ?? "");
    expect(attempts.map((a) => a.outcome)).toEqual(["retry", "retry", "interrupted", "succeeded"]);
  });

  it("a delivery interrupted again and again fails at the fifth interruption, saying why", async () => {
    const jobId = await completedJob();
    for (let interruption = 1; interruption <= 5; interruption++) {
      const claimed = await claim(`crashing-${interruption}`, 10, 0);
      expect(claimed.map((d) => d.attempt_count)).toEqual([interruption]);
      await expireLeases();
    }
    expect(await claim("last", 10, 0)).toEqual([]);
    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery).toMatchObject({ status: "failed", attempt_count: 5, interruptions: 5 });
    expect(delivery?.last_error).toMatch(/^interrupted 5 times: each worker that took it stopped before recording an outcome/);
    const attempts = await attemptsOf(testDb.database, delivery?.id ?? "");
    expect(attempts.map((a) => a.outcome)).toEqual(Array(5).fill("interrupted"));
  });

  it("a redelivery gives a delivery failed by interruptions a fresh bound on them", async () => {
    const jobId = await completedJob();
    for (let interruption = 1; interruption <= 5; interruption++) {
      await claim(`crashing-${interruption}`, 10, 0);
      await expireLeases();
    }
    expect(await claim("last", 10, 0)).toEqual([]);
    const [failed] = await deliveriesOf(testDb.database, jobId);
    expect(failed).toMatchObject({ status: "failed", interruptions: 5 });
    await redeliver(testDb.database, failed?.id ?? "");
    // One more interruption after the redelivery is retried, not the end of it.
    await claim("after-redelivery", 10, 0);
    await expireLeases();
    const [again] = await claim("survivor", 10, 60_000);
    expect(again).toMatchObject({ id: failed?.id, interruptions: 1 });
    await recordAttempts("survivor", [succeeded(again?.id ?? "", again?.attempt_count ?? 0)]);
    const [delivered] = await deliveriesOf(testDb.database, jobId);
    expect(delivered).toMatchObject({ status: "succeeded" });
  });

  it("a claim takes at most each destination's free room, counting every worker's live leases", async () => {
    const other = await Receiver.start();
    try {
      const busy = [];
      for (let i = 0; i < 4; i++) busy.push(...(await deliveriesOf(testDb.database, await completedJob())));
      const open = await deliveriesOf(testDb.database, await completedJob(other.url));
      // Worker A holds two of the busy destination's rows: one more fits under a cap of 3.
      const first = await claim("worker-a", 2, 60_000, 3);
      expect(first.map((d) => d.id)).toEqual(busy.slice(0, 2).map((d) => d.id));
      const second = await claim("worker-b", 10, 60_000, 3);
      expect(second.map((d) => d.id).sort()).toEqual([busy[2]?.id, open[0]?.id].sort());
      // At its cap, the destination's last row waits, its attempt unspent.
      expect(await claim("worker-c", 10, 60_000, 3)).toEqual([]);
      const [waiting] = await testDb.database.query<{ status: string; attempt_count: number }>(
        "select status, attempt_count from webhook_outbox.webhook_deliveries where id = $1",
        [busy[3]?.id],
      );
      expect(waiting).toEqual({ status: "pending", attempt_count: 0 });
      // One attempt ends: its room goes to the waiting row.
      await recordAttempts("worker-a", [succeeded(busy[0]?.id ?? "", 1)]);
      expect((await claim("worker-c", 10, 60_000, 3)).map((d) => d.id)).toEqual([busy[3]?.id]);
      await recordAttempts("worker-a", [succeeded(busy[1]?.id ?? "", 1)]);
      await recordAttempts("worker-b", [succeeded(busy[2]?.id ?? "", 1), succeeded(open[0]?.id ?? "", 1)]);
      await recordAttempts("worker-c", [succeeded(busy[3]?.id ?? "", 1)]);
    } finally {
      await other.close();
    }
  });

  it("lets a fast destination take more room than a slow one: fast is answering lately, slow an attempt in flight past slowAfterMs", async () => {
    const own = await Receiver.start();
    try {
      const host = new URL(own.url).host;
      for (let i = 0; i < 10; i++) await completedJob(own.url);
      const claimWith = async (workerId: string, fastDestinations: string[]) => {
        const result = await claimWithFastRoom(workerId, fastDestinations);
        return { ...result, deliveries: result.deliveries.filter((d) => d.destination === host) };
      };
      // Not known to answer: the slow room, though no attempt is old.
      const unproven = await claimWith("unproven", []);
      expect(unproven.deliveries).toHaveLength(2);
      expect(unproven.capped).toContain(host);
      await recordAttempts("unproven", unproven.deliveries.map((d) => succeeded(d.id, 1)));
      // Known to answer, attempts just started: the destination is fast, and takes its fast room.
      const fast = await claimWith("fast", [host]);
      expect(fast.deliveries).toHaveLength(5);
      // One of them has now been in flight for a minute (its lease, of timeout + margin = 70 s, ends
      // in 10 s): the destination is slow, held to 2.
      await inFlightForAMinute(fast.deliveries[0]?.id ?? "");
      const slow = await claimWith("slow", [host]);
      expect(slow.deliveries).toEqual([]);
      expect(slow.capped).toContain(host);
      await recordAttempts("fast", fast.deliveries.map((d) => succeeded(d.id, 1)));
      const rest = (await claim("rest", 10, 60_000)).filter((d) => d.destination === host);
      expect(rest).toHaveLength(3);
      await recordAttempts("rest", rest.map((d) => succeeded(d.id, 1)));
    } finally {
      await own.close();
    }
  });

  it("gives every fast destination together one share past the slow cap, so busy destinations that hang at once cannot hold it twice", async () => {
    const first = await Receiver.start();
    const second = await Receiver.start();
    try {
      const [hostA, hostB] = [new URL(first.url).host, new URL(second.url).host];
      for (let i = 0; i < 6; i++) await completedJob(first.url);
      // Slow cap 2, fast cap 5: the share past the slow cap is 3 slots, for both destinations.
      const claimFor = async (workerId: string, host: string, fastDestinations: string[]) => {
        const result = await claimWithFastRoom(workerId, fastDestinations);
        const mine = result.deliveries.filter((d) => d.destination === host);
        // Whatever the claim took of the other destination goes back at once, so each step below
        // sees only the leases it means to hold.
        const others = result.deliveries.filter((d) => d.destination !== host);
        if (others.length > 0) await recordAttempts(workerId, others.map((d) => succeeded(d.id, 1)));
        return { mine, capped: result.capped };
      };
      // A is fast and takes the whole share: 5.
      const a = await claimFor("share-a", hostA, [hostA, hostB]);
      expect(a.mine).toHaveLength(5);
      for (let i = 0; i < 6; i++) await completedJob(second.url);
      // B is fast too, but the share is A's: B gets the slow cap, and is reported at its cap.
      const b = await claimFor("share-b", hostB, [hostA, hostB]);
      expect(b.mine).toHaveLength(2);
      expect(b.capped).toContain(hostB);
      // A turns slow (an attempt in flight for a minute), its 5 attempts still hanging: they still
      // hold the share, so B stays at the slow cap while they last.
      await inFlightForAMinute(a.mine[0]?.id ?? "");
      expect((await claimFor("share-b2", hostB, [hostB])).mine).toEqual([]);
      // A's attempts end: the share is free, and B (holding 2) takes up to the fast cap of 5.
      await recordAttempts("share-a", a.mine.map((d) => succeeded(d.id, 1)));
      const more = await claimFor("share-b3", hostB, [hostB]);
      expect(more.mine).toHaveLength(3);
      await recordAttempts("share-b", b.mine.map((d) => succeeded(d.id, 1)));
      await recordAttempts("share-b3", more.mine.map((d) => succeeded(d.id, 1)));
      const rest = await claimFor("share-rest", hostB, []);
      expect(rest.mine).toHaveLength(1);
      await recordAttempts("share-rest", rest.mine.map((d) => succeeded(d.id, 1)));
    } finally {
      await first.close();
      await second.close();
    }
  });

  it("reports the destinations it left at their cap, so a worker knows whose ending attempt makes room", async () => {
    for (let i = 0; i < 3; i++) await completedJob();
    const result = await claimDue(testDb.database.query, {
      workerId: "capped",
      limit: 10,
      leaseMarginMs: 60_000,
      destinationConcurrency: 2,
      maxInterruptions: 5,
    });
    expect(result.deliveries).toHaveLength(2);
    expect(result.capped).toEqual([new URL(receiver.url).host]);
    await recordAttempts("capped", result.deliveries.map((d) => succeeded(d.id, 1)));
    const rest = await claim("capped", 10, 60_000, 2);
    expect(rest).toHaveLength(1);
    await recordAttempts("capped", rest.map((d) => succeeded(d.id, 1)));
  });

  // Last in this file: it retires the tenant's signing secrets.
  it("claims hand each delivery its tenant's active secrets, and none once they have all expired", async () => {
    const first = await completedJob();
    const second = await completedJob();
    const claimed = await claim("secrets", 10, 60_000);
    expect(claimed.map((d) => d.id).sort()).toEqual(
      [...(await deliveriesOf(testDb.database, first)), ...(await deliveriesOf(testDb.database, second))].map((d) => d.id).sort(),
    );
    const active = await testDb.database.query<{ secret: string }>(
      "select secret from webhook_outbox.signing_secrets where tenant_id = $1 order by created_at desc",
      [claimed[0]?.tenant_id],
    );
    expect(active.length).toBeGreaterThan(0);
    for (const delivery of claimed) expect(delivery.secrets).toEqual(active.map((row) => row.secret));

    await testDb.database.query("update webhook_outbox.signing_secrets set expires_at = now() - interval '1 second' where tenant_id = $1", [
      claimed[0]?.tenant_id,
    ]);
    const third = await completedJob();
    const [unsigned] = await claim("secrets", 10, 60_000);
    expect(unsigned).toMatchObject({ id: (await deliveriesOf(testDb.database, third))[0]?.id, secrets: null });
  });
});
