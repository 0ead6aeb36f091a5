import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { hang, ok, Receiver, type Responder } from "./support/receiver.js";

// A destination is held to DESTINATION_CONCURRENCY (2) until it has answered; one that answers
// quickly may then hold half the worker (4 of 8). The slow threshold is long (60 s), so no
// attempt here ever counts as slow by its age: only answering earns the fast room.
let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {
    WORKER_CONCURRENCY: 8,
    DESTINATION_CONCURRENCY: 2,
    DESTINATION_SLOW_AFTER_MS: 60_000,
    WORKER_BATCH_SIZE: 8,
    WEBHOOK_TIMEOUT_MS: 60_000,
    SHUTDOWN_GRACE_MS: 0,
  });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function completedJob(url: string): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "slow start", webhookUrl: url });
  await harness.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

/** Holds every request until `count` are open at once, then answers them all, and later ones at once; counts the most open. */
function gate(count: number): { responder: Responder; maxOpen: () => number } {
  let open: ServerResponse[] = [];
  let most = 0;
  let released = false;
  const responder: Responder = (request, response) => {
    if (released) return ok(request, response);
    open.push(response);
    most = Math.max(most, open.length);
    if (open.length >= count) {
      released = true;
      for (const held of open) ok(request, held);
      open = [];
    }
  };
  return { responder, maxOpen: () => most };
}

describe("a destination's room", () => {
  it("stays at the slow cap for a destination that never answered, even before any attempt counts as slow", async () => {
    const slow = await Receiver.start(hang);
    const fast = await Receiver.start();
    try {
      for (let i = 0; i < 20; i++) await completedJob(slow.url);
      await slow.waitForRequests(2);
      // Deliveries to another destination flow past it; by then every claim has seen the hanging one.
      const jobs: string[] = [];
      for (let i = 0; i < 6; i++) jobs.push(await completedJob(fast.url));
      for (const jobId of jobs) await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
      expect(slow.requests).toHaveLength(2);
      const [waiting] = await testDb.database.query<{ pending: number; spent: number }>(
        `select count(*)::int as pending, coalesce(sum(d.attempt_count), 0)::int as spent
         from webhook_outbox.webhook_deliveries d join webhook_outbox.jobs j on j.id = d.job_id
         where j.webhook_url = $1 and d.status = 'pending' and d.attempt_count = 0`,
        [slow.url],
      );
      expect(waiting).toEqual({ pending: 18, spent: 0 });
    } finally {
      await slow.close();
      await fast.close();
    }
  });

  it("grows to the fast room once the destination has answered quickly", async () => {
    const opened = gate(4);
    const receiver = await Receiver.start(ok, opened.responder);
    try {
      // The first delivery is answered at once: the evidence that the destination answers.
      const first = await completedJob(receiver.url);
      await eventually(() => finishedDelivery(testDb.database, first, "succeeded"));
      // The next ones are held until four are open at once: more than the slow cap of 2.
      const jobs: string[] = [];
      for (let i = 0; i < 6; i++) jobs.push(await completedJob(receiver.url));
      for (const jobId of jobs) await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
      expect(opened.maxOpen()).toBe(4);
    } finally {
      await receiver.close();
    }
  });
});
