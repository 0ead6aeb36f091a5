import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COOKBOOK } from "../src/audit/cookbook.js";
import type { Database } from "../src/db/client.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

interface SeedAttempt {
  minutesAgo: number;
  durationMs: number;
  status: number | null;
  outcome: "succeeded" | "retry" | "failed";
}

interface SeedDelivery {
  url: string;
  status: "pending" | "delivering" | "succeeded" | "failed";
  createdMinutesAgo: number;
  finishedMinutesAgo?: number;
  /** In attempt order; inserted in reverse so that ordering comes from the query, not the heap. */
  attempts: SeedAttempt[];
}

let testDb: TestDatabase;
let database: Database;
let tenantId: string;
const ids: Record<string, { jobId: string; deliveryId: string }> = {};

async function seed(name: string, delivery: SeedDelivery): Promise<void> {
  const [job] = await database.query<{ id: string }>(
    `insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, webhook_url, completed_at, deadline_at)
     values ($1, 'nouvel', $2, 'completed', $3, now(), now()) returning id`,
    [tenantId, name, delivery.url],
  );
  const open = delivery.status === "pending" || delivery.status === "delivering";
  const [row] = await database.query<{ id: string }>(
    `with destination as (insert into webhook_outbox.destinations (tenant_id, url) values ($1, $3) on conflict do nothing)
     insert into webhook_outbox.webhook_deliveries (tenant_id, job_id, event_type, url, payload, status, attempt_count, max_attempts,
       retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at, locked_by, locked_until, created_at, finished_at)
     values ($1, $2, 'job.completed', $3, '{}', $4::text, $5, 3, '{0,10000,60000}', 10000, 10000,
       case when $6 then now() + interval '1 minute' end,
       case when $4::text = 'delivering' then 'worker-1' end,
       case when $4::text = 'delivering' then now() + interval '1 minute' end,
       now() - $7 * interval '1 minute', now() - $8 * interval '1 minute')
     returning id`,
    [tenantId, job?.id, delivery.url, delivery.status, delivery.attempts.length, open, delivery.createdMinutesAgo, open ? null : (delivery.finishedMinutesAgo ?? 0)],
  );
  const numbered = delivery.attempts.map((attempt, index) => ({ ...attempt, number: index + 1 })).reverse();
  for (const attempt of numbered) {
    await database.query(
      `insert into webhook_outbox.webhook_delivery_attempts (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms,
         response_status, error_kind, error_message, outcome)
       values ($1, $2, 'worker-1', now() - $3 * interval '1 minute', now() - $3 * interval '1 minute', $4, $5::smallint,
         case when $6 <> 'succeeded' then 'http_status' end, case when $6 <> 'succeeded' then 'HTTP ' || $5::text end, $6)`,
      [row?.id, attempt.number, attempt.minutesAgo, attempt.durationMs, attempt.status, attempt.outcome],
    );
  }
  ids[name] = { jobId: job?.id ?? "", deliveryId: row?.id ?? "" };
}

const attempt = (minutesAgo: number, durationMs: number, status: number, outcome: SeedAttempt["outcome"]): SeedAttempt => ({
  minutesAgo,
  durationMs,
  status,
  outcome,
});

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = testDb.database;
  tenantId = (await createTenant(database, "audited")).tenantId;
  await seed("recovered", {
    url: "https://a.example.com/hook",
    status: "succeeded",
    createdMinutesAgo: 40,
    finishedMinutesAgo: 39,
    attempts: [attempt(40, 100, 503, "retry"), attempt(39, 200, 200, "succeeded")],
  });
  await seed("failedRecently", {
    url: "https://a.example.com/other?v=2",
    status: "failed",
    createdMinutesAgo: 20,
    finishedMinutesAgo: 10,
    attempts: [attempt(20, 300, 500, "retry"), attempt(10, 400, 502, "failed")],
  });
  await seed("ipv6", {
    url: "http://[::1]:8080/x",
    status: "succeeded",
    createdMinutesAgo: 5,
    finishedMinutesAgo: 5,
    attempts: [attempt(5, 50, 200, "succeeded")],
  });
  await seed("failedLongAgo", {
    url: "http://[::1]:8080/x",
    status: "failed",
    createdMinutesAgo: 130,
    finishedMinutesAgo: 120,
    attempts: [attempt(130, 5000, 500, "failed")],
  });
  await seed("stuckPending", { url: "https://c.example.com/", status: "pending", createdMinutesAgo: 30, attempts: [] });
  await seed("stuckDelivering", {
    url: "https://c.example.com/",
    status: "delivering",
    createdMinutesAgo: 20,
    attempts: [attempt(20, 10_000, 503, "retry")],
  });
  await seed("freshPending", { url: "https://c.example.com/", status: "pending", createdMinutesAgo: 5, attempts: [] });
  // Two destinations not healthy, with the history that brought them there.
  await database.query(
    `update webhook_outbox.destinations
     set state = 'disabled', disabled_reason = 'gone', disabled_at = now() - interval '10 minutes', consecutive_failures = 1,
         first_failure_at = now() - interval '10 minutes', last_failure_at = now() - interval '10 minutes'
     where tenant_id = $1 and url = 'https://a.example.com/other?v=2'`,
    [tenantId],
  );
  await database.query(
    `update webhook_outbox.destinations
     set state = 'open', open_until = now() + interval '30 seconds', consecutive_failures = 10,
         first_failure_at = now() - interval '20 minutes', last_failure_at = now() - interval '1 minute'
     where tenant_id = $1 and url = 'https://c.example.com/'`,
    [tenantId],
  );
  await database.query(
    `update webhook_outbox.webhook_deliveries set next_attempt_at = 'infinity' where id = $1`,
    [ids.freshPending?.deliveryId],
  );
  await database.query(
    `insert into webhook_outbox.destination_events (destination_id, tenant_id, from_state, to_state, reason, consecutive_failures, at)
     select id, tenant_id, 'healthy', 'open', 'failures', 10, now() - interval '5 minutes'
     from webhook_outbox.destinations where tenant_id = $1 and url = 'https://c.example.com/'
     union all
     select id, tenant_id, 'healthy', 'disabled', 'gone', 1, now() - interval '10 minutes'
     from webhook_outbox.destinations where tenant_id = $1 and url = 'https://a.example.com/other?v=2'`,
    [tenantId],
  );
});

afterAll(async () => {
  await testDb?.drop();
});

const hourAgo = () => new Date(Date.now() - 60 * 60_000);
const inAMinute = () => new Date(Date.now() + 60_000);

describe("the SQL audit cookbook, on seeded data", () => {
  it("finds the deliveries that failed in the last hour, with their last error", async () => {
    const rows = await database.query<Record<string, unknown>>(COOKBOOK.failedLastHour.sql);
    expect(rows).toEqual([
      expect.objectContaining({
        delivery_id: ids.failedRecently?.deliveryId,
        job_id: ids.failedRecently?.jobId,
        url: "https://a.example.com/other?v=2",
        attempt_count: 2,
        last_attempt_status: 502,
        last_attempt_error_kind: "http_status",
        last_attempt_error: "HTTP 502",
      }),
    ]);
  });

  it("lists every attempt of one job, in order", async () => {
    const rows = await database.query<{ attempt_number: number; outcome: string; response_status: number }>(
      COOKBOOK.attemptsOfJob.sql,
      [ids.recovered?.jobId],
    );
    expect(rows.map((r) => [r.attempt_number, r.outcome, r.response_status])).toEqual([
      [1, "retry", 503],
      [2, "succeeded", 200],
    ]);
  });

  it("computes p50/p95 latency and success rate per destination host over a window", async () => {
    const rows = await database.query<Record<string, unknown>>(COOKBOOK.latencyByHost.sql, [hourAgo(), inAMinute()]);
    const table = rows.map((r) => [r.host, Number(r.attempts), r.p50_ms, r.p95_ms, Number(r.success_rate)]);
    // a.example.com: 100, 200, 300, 400 ms; c.example.com: one 10 s attempt; [::1]: 50 ms (its 5 s attempt is outside the window).
    expect(table).toEqual([
      ["a.example.com", 4, 250, 385, 0.25],
      ["[::1]", 1, 50, 50, 1],
      ["c.example.com", 1, 10_000, 10_000, 0],
    ]);
  });

  it("finds deliveries pending or delivering longer than N minutes", async () => {
    const rows = await database.query<{ delivery_id: string; status: string }>(COOKBOOK.stuck.sql, [15]);
    expect(rows.map((r) => [r.delivery_id, r.status])).toEqual([
      [ids.stuckPending?.deliveryId, "pending"],
      [ids.stuckDelivering?.deliveryId, "delivering"],
    ]);
  });

  it("ranks the receivers returning the most 5xx over a window", async () => {
    const rows = await database.query<Record<string, unknown>>(COOKBOOK.top5xxReceivers.sql, [hourAgo(), 10]);
    expect(rows.map((r) => [r.url, Number(r.responses_5xx), Number(r.attempts)])).toEqual([
      ["https://a.example.com/other?v=2", 2, 2],
      ["https://a.example.com/hook", 1, 2],
      ["https://c.example.com/", 1, 1],
    ]);
    const top1 = await database.query(COOKBOOK.top5xxReceivers.sql, [hourAgo(), 1]);
    expect(top1).toHaveLength(1);
  });

  it("lists the destinations not healthy, with their parked deliveries, and one destination's history", async () => {
    const rows = await database.query<Record<string, unknown>>(COOKBOOK.unhealthyDestinations.sql);
    expect(rows.map((r) => [r.url, r.state, r.consecutive_failures, r.disabled_reason, Number(r.waiting)])).toEqual([
      ["https://a.example.com/other?v=2", "disabled", 1, "gone", 0],
      ["https://c.example.com/", "open", 10, null, 1],
    ]);
    const history = await database.query<Record<string, unknown>>(COOKBOOK.destinationHistory.sql, [rows[1]?.destination_id]);
    expect(history.map((r) => [r.from_state, r.to_state, r.reason, r.consecutive_failures])).toEqual([["healthy", "open", "failures", 10]]);
  });

  it("is served by the index meant for it, never a full scan of deliveries or attempts", async () => {
    // On this tiny table the planner would rightly prefer scans; with them priced out, the plan
    // shows which index carries each query's selective condition. (Plans on 1M+ rows: docs/sql-audit.md.)
    const expected: Record<keyof typeof COOKBOOK, { params: unknown[]; indexes: string[] }> = {
      failedLastHour: { params: [], indexes: ["webhook_deliveries_finished_idx", "webhook_delivery_attempts_number_uq"] },
      attemptsOfJob: {
        params: [ids.recovered?.jobId],
        indexes: ["webhook_deliveries_job_event_uq", "webhook_delivery_attempts_number_uq"],
      },
      latencyByHost: { params: [hourAgo(), inAMinute()], indexes: ["webhook_delivery_attempts_started_idx"] },
      stuck: { params: [15], indexes: ["webhook_deliveries_claim_idx"] },
      top5xxReceivers: { params: [hourAgo(), 10], indexes: ["webhook_delivery_attempts_started_idx"] },
      unhealthyDestinations: { params: [], indexes: ["destinations_unhealthy_idx", "webhook_deliveries_parked_idx"] },
      destinationHistory: { params: [ids.recovered?.deliveryId], indexes: ["destination_events_destination_idx"] },
    };
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      await client.query("set enable_seqscan = off");
      for (const [name, query] of Object.entries(COOKBOOK)) {
        const { params, indexes } = expected[name as keyof typeof COOKBOOK];
        const result = await client.query<Record<string, string>>(`explain ${query.sql}`, params);
        const plan = result.rows.map((row) => row["QUERY PLAN"]).join("\n");
        expect(plan, name).not.toMatch(/Seq Scan on webhook_deliver/);
        for (const index of indexes) expect(plan, name).toContain(index);
      }
    } finally {
      await client.end();
    }
  });

  it("is what docs/sql-audit.md shows, query for query", () => {
    const page = readFileSync(new URL("../docs/sql-audit.md", import.meta.url), "utf8");
    for (const query of Object.values(COOKBOOK)) expect(page).toContain(query.sql);
  });
});
