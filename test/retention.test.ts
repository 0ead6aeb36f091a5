import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWith, loadConfig } from "../src/config.js";
import type { Database } from "../src/db/client.js";
import { pruneFinishedDeliveries, pruneHistory } from "../src/outbox/retention.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness } from "./support/harness.js";

const DAY_MS = 86_400_000;

let testDb: TestDatabase;
let database: Database;
let tenantId: string;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = testDb.database;
  tenantId = (await createTenant(database, "retained")).tenantId;
});

afterAll(async () => {
  await testDb?.drop();
});

/** A delivery (with `attempts` attempt rows) created and, when finished, finished `daysAgo` days ago. */
async function seedDelivery(status: "pending" | "delivering" | "succeeded" | "failed", daysAgo: number, attempts = 2): Promise<string> {
  const [job] = await database.query<{ id: string }>(
    `insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, webhook_url, completed_at, deadline_at, created_at)
     values ($1, 'nouvel', 'old', 'completed', 'https://example.com/hook', now(), now(), now() - $2 * interval '1 day')
     returning id`,
    [tenantId, daysAgo],
  );
  const open = status === "pending" || status === "delivering";
  const [delivery] = await database.query<{ id: string }>(
    `with destination as (
       insert into webhook_outbox.destinations (tenant_id, url) values ($1, 'https://example.com/hook') on conflict do nothing
     )
     insert into webhook_outbox.webhook_deliveries (tenant_id, job_id, event_type, url, payload, status, attempt_count, max_attempts,
       retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at, locked_by, locked_until, created_at, finished_at)
     values ($1, $2, 'job.completed', 'https://example.com/hook', '{}', $3::text, $4, 5, '{0,10,10,10,10}', 10000, 10000,
       case when $5 then now() + interval '1 hour' end,
       case when $3::text = 'delivering' then 'worker' end, case when $3::text = 'delivering' then now() + interval '1 hour' end,
       now() - $6 * interval '1 day', case when not $5 then now() - $6 * interval '1 day' end)
     returning id`,
    [tenantId, job?.id, status, attempts, open, daysAgo],
  );
  for (let number = 1; number <= attempts; number++) {
    await database.query(
      `insert into webhook_outbox.webhook_delivery_attempts (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, outcome)
       values ($1, $2, 'worker', now() - $3 * interval '1 day', now() - $3 * interval '1 day', 5, 'retry')`,
      [delivery?.id, number, daysAgo],
    );
  }
  return delivery?.id ?? "";
}

async function remaining(ids: string[]): Promise<{ deliveries: string[]; attempts: Record<string, number> }> {
  const deliveries = await database.query<{ id: string }>("select id from webhook_outbox.webhook_deliveries where id = any($1::uuid[])", [ids]);
  const attempts = await database.query<{ delivery_id: string; n: number }>(
    "select delivery_id, count(*)::int as n from webhook_outbox.webhook_delivery_attempts where delivery_id = any($1::uuid[]) group by delivery_id",
    [ids],
  );
  return {
    deliveries: deliveries.map((row) => row.id).sort(),
    attempts: Object.fromEntries(attempts.map((row) => [row.delivery_id, row.n])),
  };
}

describe("delivery retention", () => {
  it("defaults to 30 days and reads DELIVERY_RETENTION as a duration", () => {
    expect(configWith({}).DELIVERY_RETENTION).toBe(30 * DAY_MS);
    expect(loadConfig({ DELIVERY_RETENTION: "7d" }).DELIVERY_RETENTION).toBe(7 * DAY_MS);
    expect(() => loadConfig({ DELIVERY_RETENTION: "a month" })).toThrow(/DELIVERY_RETENTION/);
  });

  it("prunes finished deliveries past the retention with their attempts, in batches, and never open ones", async () => {
    const oldSucceeded = await seedDelivery("succeeded", 40);
    const oldFailed = await seedDelivery("failed", 31);
    const olderSucceeded = await seedDelivery("succeeded", 60, 3);
    const recent = await seedDelivery("failed", 29);
    const oldPending = await seedDelivery("pending", 45);
    const oldDelivering = await seedDelivery("delivering", 45);
    const all = [oldSucceeded, oldFailed, olderSucceeded, recent, oldPending, oldDelivering];

    const pruned = await pruneFinishedDeliveries(database, { retentionMs: 30 * DAY_MS, batchSize: 2 });
    expect(pruned).toBe(3);

    const kept = [recent, oldPending, oldDelivering];
    const after = await remaining(all);
    expect(after.deliveries).toEqual([...kept].sort());
    expect(after.attempts).toEqual(Object.fromEntries(kept.map((id) => [id, 2])));
    const jobs = await database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs where tenant_id = $1", [tenantId]);
    expect(jobs[0]?.n).toBe(all.length); // jobs are not the deliveries' to delete

    expect(await pruneFinishedDeliveries(database, { retentionMs: 30 * DAY_MS })).toBe(0);
  });

  it("stops after maxBatches, leaving the rest for the next run", async () => {
    const ids = [await seedDelivery("succeeded", 50), await seedDelivery("succeeded", 51), await seedDelivery("succeeded", 52)];
    expect(await pruneFinishedDeliveries(database, { retentionMs: 30 * DAY_MS, batchSize: 1, maxBatches: 2 })).toBe(2);
    // Oldest first: the 52- and 51-day-old ones went.
    expect((await remaining(ids)).deliveries).toEqual([ids[0]]);
    expect(await pruneFinishedDeliveries(database, { retentionMs: 30 * DAY_MS, batchSize: 1 })).toBe(1);
  });

  it("prunes destination history and finished replays past the retention, and keeps the rest", async () => {
    await seedDelivery("failed", 1);
    const [destination] = await database.query<{ id: string }>(
      "select id from webhook_outbox.destinations where tenant_id = $1",
      [tenantId],
    );
    await database.query(
      `insert into webhook_outbox.destination_events (destination_id, tenant_id, from_state, to_state, reason, consecutive_failures, at)
       values ($1, $2, 'healthy', 'open', 'failures', 10, now() - interval '40 days'),
              ($1, $2, 'open', 'healthy', 'success', 0, now() - interval '1 day')`,
      [destination?.id, tenantId],
    );
    await database.query(
      `insert into webhook_outbox.replays (tenant_id, status, since, until, matched, cursor_created_at, cursor_id, state, finished_at)
       values ($1, 'failed', now() - interval '50 days', now() - interval '45 days', 0, now() - interval '50 days',
               '00000000-0000-0000-0000-000000000000', 'done', now() - interval '45 days'),
              ($1, 'failed', now() - interval '50 days', now() - interval '45 days', 0, now() - interval '50 days',
               '00000000-0000-0000-0000-000000000000', 'running', null)`,
      [tenantId],
    );
    expect(await pruneHistory(database, { retentionMs: 30 * DAY_MS })).toBe(2);
    const events = await database.query<{ reason: string }>("select reason from webhook_outbox.destination_events");
    expect(events.map((e) => e.reason)).toEqual(["success"]);
    const replays = await database.query<{ state: string }>("select state from webhook_outbox.replays");
    expect(replays.map((r) => r.state)).toEqual(["running"]);
  });

  it("runs in the worker process", async () => {
    const old = await seedDelivery("failed", 10);
    const open = await seedDelivery("pending", 10);
    const harness = await startHarness(testDb, { DELIVERY_RETENTION: 7 * DAY_MS }, { api: false });
    try {
      await eventually(async () => ((await remaining([old])).deliveries.length === 0 ? true : undefined));
      expect((await remaining([open])).deliveries).toEqual([open]);
    } finally {
      await harness.stop();
    }
  });
});
