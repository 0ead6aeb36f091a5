import type { ServerResponse } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness | undefined;
let receiver: Receiver;
/** Requests the gate holds unanswered until `openGate()`. */
let held: ServerResponse[] = [];
let gateOpen = false;

beforeAll(async () => {
  testDb = await createTestDatabase();
  receiver = await Receiver.start((_request, response) => {
    if (gateOpen) response.writeHead(200).end("ok");
    else held.push(response);
  });
});

afterEach(async () => {
  openGate();
  await harness?.stop();
  harness = undefined;
  gateOpen = false;
  held = [];
});

afterAll(async () => {
  await receiver?.close();
  await testDb?.drop();
});

function openGate(): void {
  gateOpen = true;
  for (const response of held.splice(0)) response.writeHead(200).end("ok");
}

/** Three jobs made terminal one after another; returns their job ids. */
async function threeDeliveries(api: Harness["api"]): Promise<string[]> {
  const jobIds: string[] = [];
  for (let i = 0; i < 3; i++) {
    const created = await api.post("/api/v1/generate", { prompt: "prefetch", webhookUrl: receiver.url });
    await api.finishJob(created.body.jobId, 1, "completed");
    jobIds.push(created.body.jobId);
  }
  return jobIds;
}

async function states(jobIds: string[]): Promise<Array<{ status: string; attempt_count: number }>> {
  return testDb.database.query<{ status: string; attempt_count: number }>(
    "select status, attempt_count from webhook_deliveries where job_id = any($1::uuid[]) order by created_at",
    [jobIds],
  );
}

async function claimCount(): Promise<number> {
  const { values } = await harness!.service.metrics.claimBatchSize.get();
  return values.find((v) => v.metricName === "webhook_outbox_claim_batch_size_count")?.value ?? 0;
}

/** Every job's delivery succeeded with exactly one attempt, and the receiver saw each once. */
async function expectEachDeliveredOnce(jobIds: string[]): Promise<void> {
  for (const jobId of jobIds) {
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    expect(delivery.attempt_count).toBe(1);
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => [a.attempt_number, a.outcome])).toEqual([[1, "succeeded"]]);
  }
  const ids = receiver.requests.map((request) => request.headers["webhook-id"]);
  expect(new Set(ids).size).toBe(ids.length);
}

describe("prefetch", () => {
  it("claims deliveries ahead of a busy slot and starts them when it frees", async () => {
    harness = await startHarness(testDb, { WORKER_CONCURRENCY: 1, WORKER_PREFETCH: 2, LEASE_MARGIN_MS: 60_000 });
    const before = receiver.requests.length;
    const jobIds = await threeDeliveries(harness.api);
    await receiver.waitForRequests(before + 1);

    // One attempt in flight, two claimed and waiting in memory.
    await eventually(async () => {
      const rows = await states(jobIds);
      return rows.every((row) => row.status === "delivering" && row.attempt_count === 1) ? rows : undefined;
    }, 20_000, "all three claimed");
    expect(receiver.requests.length - before).toBe(1);

    openGate();
    await expectEachDeliveredOnce(jobIds);
  });

  it("gives back deliveries that wait longer than half the lease margin, unspent, and stops claiming ahead", async () => {
    harness = await startHarness(testDb, { WORKER_CONCURRENCY: 1, WORKER_PREFETCH: 2, LEASE_MARGIN_MS: 400 });
    const before = receiver.requests.length;
    const jobIds = await threeDeliveries(harness.api);
    await receiver.waitForRequests(before + 1);

    const given = await eventually(async () => {
      const rows = await states(jobIds);
      const waiting = rows.filter((row) => row.status === "pending" && row.attempt_count === 0);
      return waiting.length === 2 ? rows : undefined;
    }, 20_000, "two deliveries given back");
    // While the one slot stays busy, nothing is claimed ahead again (no claim, give back, claim churn).
    const claims = await claimCount();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await claimCount()).toBe(claims);
    expect(await states(jobIds)).toEqual(given);
    expect(receiver.requests.length - before).toBe(1);

    openGate();
    await expectEachDeliveredOnce(jobIds);
  });

  it("gives back the deliveries waiting in memory when the worker stops", async () => {
    harness = await startHarness(testDb, {
      WORKER_CONCURRENCY: 1,
      WORKER_PREFETCH: 2,
      LEASE_MARGIN_MS: 60_000,
      SHUTDOWN_GRACE_MS: 0,
    });
    const before = receiver.requests.length;
    const jobIds = await threeDeliveries(harness.api);
    await receiver.waitForRequests(before + 1);
    await eventually(async () => {
      const rows = await states(jobIds);
      return rows.every((row) => row.status === "delivering") ? rows : undefined;
    }, 20_000, "all three claimed");

    await harness.stop();
    harness = undefined;
    // The attempt in flight was cut off (recorded, due again); the two never started are unspent.
    const rows = await states(jobIds);
    expect(rows.filter((row) => row.status === "pending" && row.attempt_count === 0)).toHaveLength(2);
    expect(rows.filter((row) => row.status === "pending" && row.attempt_count === 1)).toHaveLength(1);
  });
});
