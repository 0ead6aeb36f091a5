import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { replayStep, STEP_SQL_FOR_PLANS } from "../src/outbox/replay.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { runCli } from "./support/cli.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type ApiClient, type Harness } from "./support/harness.js";
import { ok, Receiver, status } from "./support/receiver.js";

/*
 * Bulk replay. This file's service paces nothing (REPLAY_RATE 0): each test takes the batches
 * itself with replayStep, so "while the replay runs" is a well-defined point, not a race.
 */

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0], REPLAY_RATE: 0 });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

beforeEach(() => {
  receiver.requests.length = 0;
  receiver.respondWith(ok);
});

const step = (batchSize: number) => replayStep(testDb.database, { batchSize, intervalMs: 0 });

async function dbNow(): Promise<string> {
  const [row] = await testDb.database.query<{ now: Date }>("select clock_timestamp() as now");
  return (row?.now ?? new Date()).toISOString();
}

/** Jobs whose single-attempt delivery has failed, in creation order: their delivery ids. */
async function failedDeliveries(api: ApiClient, url: string, count: number): Promise<string[]> {
  receiver.respondWith(status(500));
  const jobIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const created = await api.post("/api/v1/generate", { prompt: `replay ${i}`, webhookUrl: url });
    jobIds.push(created.body.jobId);
    await api.finishJob(created.body.jobId, 1, "completed");
  }
  const rows = await eventually(async () => {
    const found = await testDb.database.query<{ id: string; status: string }>(
      `select id, status from webhook_outbox.webhook_deliveries where job_id = any($1::uuid[]) order by created_at, id`,
      [jobIds],
    );
    return found.length === count && found.every((row) => row.status === "failed") ? found : undefined;
  });
  receiver.respondWith(ok);
  return rows.map((row) => row.id);
}

async function deliveryStates(ids: string[]): Promise<Array<{ id: string; status: string; attempts: number }>> {
  return testDb.database.query(
    `select d.id, d.status, (select count(*)::int from webhook_outbox.webhook_delivery_attempts a where a.delivery_id = d.id) as attempts
     from webhook_outbox.webhook_deliveries d where d.id = any($1::uuid[]) order by d.created_at, d.id`,
    [ids],
  );
}

async function settled(ids: string[], expected: string): Promise<void> {
  await eventually(async () => ((await deliveryStates(ids)).every((d) => d.status === expected) ? true : undefined), 20_000, `${ids.length} deliveries ${expected}`);
}

describe("POST /api/v1/deliveries/replay", () => {
  it("redelivers every failed delivery since a time exactly once, oldest first, while other deliveries keep flowing", async () => {
    const tenant = await createTenant(testDb.database, "replayer");
    const api = harness.api.withKey(tenant.apiKey);
    const url = `${receiver.url}?replay=all`;
    const before = await failedDeliveries(api, url, 2);
    const since = await dbNow();
    const failed = await failedDeliveries(api, url, 10);

    const started = await api.post("/api/v1/deliveries/replay", { status: "failed", since });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ matched: 10, state: "running" });
    const replayId = started.body.replayId as string;
    expect((await api.get(`/api/v1/replays/${replayId}`)).body).toMatchObject({ state: "running", matched: 10, requeued: 0 });

    // The first batch: the four oldest.
    receiver.requests.length = 0;
    expect(await step(4)).toEqual({ replayId, requeued: 4, state: "running" });
    await settled(failed.slice(0, 4), "succeeded");
    expect((await deliveryStates(failed.slice(4))).map((d) => d.status)).toEqual(Array(6).fill("failed"));

    // A live delivery goes while the replay is half done.
    const live = await api.post("/api/v1/generate", { prompt: "live", webhookUrl: `${receiver.url}?live=1` });
    await api.finishJob(live.body.jobId, 1, "completed");
    await eventually(async () => {
      const [row] = await testDb.database.query<{ status: string }>(
        "select status from webhook_outbox.webhook_deliveries where job_id = $1",
        [live.body.jobId],
      );
      return row?.status === "succeeded" ? true : undefined;
    });
    expect((await api.get(`/api/v1/replays/${replayId}`)).body).toMatchObject({ state: "running", requeued: 4 });

    expect(await step(4)).toEqual({ replayId, requeued: 4, state: "running" });
    // The last batch finds fewer than it may take: the replay is done.
    expect(await step(4)).toEqual({ replayId, requeued: 2, state: "done" });
    expect(await step(4)).toBeUndefined();
    await settled(failed, "succeeded");

    // Each once: one failed attempt and the one that succeeded; those before `since` untouched.
    expect((await deliveryStates(failed)).map((d) => d.attempts)).toEqual(Array(10).fill(2));
    expect(await deliveryStates(before)).toEqual(before.map((id) => ({ id, status: "failed", attempts: 1 })));
    const sent = receiver.requests.filter((r) => r.path.includes("replay=all")).map((r) => String(r.headers["webhook-id"]));
    expect(sent.sort()).toEqual([...failed].sort());
    // Same webhook-id, attempts appended: the second attempt of each.
    expect(new Set(receiver.requests.filter((r) => r.path.includes("replay=all")).map((r) => r.headers["x-webhook-attempt"]))).toEqual(
      new Set(["2"]),
    );
    const done = (await api.get(`/api/v1/replays/${replayId}`)).body;
    expect(done).toMatchObject({ state: "done", matched: 10, requeued: 10, status: "failed", since, url: null });
    expect(done.finishedAt).not.toBeNull();
  });

  it("passes over a delivery redelivered by other means before its batch came, and keeps to its URL and window", async () => {
    const tenant = await createTenant(testDb.database, "narrow");
    const api = harness.api.withKey(tenant.apiKey);
    const url = `${receiver.url}?replay=narrow`;
    const since = await dbNow();
    const mine = await failedDeliveries(api, url, 3);
    const elsewhere = await failedDeliveries(api, `${receiver.url}?replay=elsewhere`, 2);
    const until = await dbNow();
    const later = await failedDeliveries(api, url, 1);

    const started = await api.post("/api/v1/deliveries/replay", { status: "failed", since, until, url });
    expect(started.body.matched).toBe(3);
    // Redelivered by hand first: the replay does not send it again.
    expect((await api.post(`/api/v1/deliveries/${mine[1]}/redeliver`)).status).toBe(202);
    await settled([mine[1] ?? ""], "succeeded");
    expect(await step(10)).toMatchObject({ replayId: started.body.replayId, requeued: 2, state: "done" });
    await settled(mine, "succeeded");
    expect((await deliveryStates(mine)).map((d) => d.attempts)).toEqual([2, 2, 2]);
    expect((await deliveryStates([...elsewhere, ...later])).map((d) => d.status)).toEqual(["failed", "failed", "failed"]);
    expect((await api.get(`/api/v1/replays/${started.body.replayId}`)).body).toMatchObject({ matched: 3, requeued: 2, state: "done" });
  });

  it("refuses a bad request with a 400 and writes nothing; another tenant's replay is a 404", async () => {
    const tenant = await createTenant(testDb.database, "picky");
    const api = harness.api.withKey(tenant.apiKey);
    const since = "2026-01-01T00:00:00Z";
    for (const body of [
      {},
      { status: "failed" },
      { status: "pending", since },
      { status: "failed", since: "yesterday" },
      { status: "failed", since, until: since },
      { status: "failed", since, until: "2025-01-01T00:00:00Z" },
      { status: "failed", since, extra: true },
    ]) {
      const refused = await api.post("/api/v1/deliveries/replay", body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.error.code).toBe("VALIDATION_FAILED");
    }
    const [count] = await testDb.database.query<{ n: number }>(
      "select count(*)::int as n from webhook_outbox.replays where tenant_id = $1",
      [tenant.tenantId],
    );
    expect(count?.n).toBe(0);

    const mine = await api.post("/api/v1/deliveries/replay", { status: "succeeded", since });
    expect(mine.status).toBe(202);
    const stranger = harness.api.withKey((await createTenant(testDb.database, "stranger")).apiKey);
    const hidden = await stranger.get(`/api/v1/replays/${mine.body.replayId}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.error.code).toBe("REPLAY_NOT_FOUND");
    expect((await api.get("/api/v1/replays/not-a-uuid")).status).toBe(404);
    // Leave nothing running for the tests after this one.
    while (await step(1_000));
  });
});

describe("the operator's CLI", () => {
  it("replays across tenants, one replay per tenant with matches, and shows one", async () => {
    const since = await dbNow();
    const first = await createTenant(testDb.database, "cli-one");
    const second = await createTenant(testDb.database, "cli-two");
    await createTenant(testDb.database, "cli-none");
    await failedDeliveries(harness.api.withKey(first.apiKey), `${receiver.url}?cli=1`, 2);
    await failedDeliveries(harness.api.withKey(second.apiKey), `${receiver.url}?cli=2`, 1);
    const env = { DATABASE_URL: testDb.url };
    const created = await runCli(["replay", "--status", "failed", "--since", since], env);
    expect(created.code).toBe(0);
    const lines = created.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines.find((line) => line.includes(first.tenantId))).toMatch(/matched 2$/);
    expect(lines.find((line) => line.includes(second.tenantId))).toMatch(/matched 1$/);
    const replayId = /^replay (\S+)/.exec(lines[0] ?? "")?.[1] ?? "";
    const shown = await runCli(["replay", "show", replayId], env);
    expect(JSON.parse(shown.stdout)).toMatchObject({ replayId, state: "running", status: "failed" });
    const scoped = await runCli(["replay", "--status", "failed", "--since", since, "--tenant", "cli-none"], env);
    expect(scoped.stdout).toMatch(/^replay \S+ {2}tenant \S+ {2}matched 0$/m);
    expect((await runCli(["replay", "--status", "failed"], env)).code).toBe(2);
    expect((await runCli(["replay", "--status", "failed", "--since", "soon"], env)).code).toBe(2);
    while (await step(1_000));
  });
});

describe("the step's plan", () => {
  it("walks the tenant's failed deliveries through their partial index, never a full scan", async () => {
    // A table of a few pages is read whole by any plan: give it the rows of a real one (finished,
    // so no worker takes them), analyzed, so the planner's choice does not hang on autovacuum.
    await testDb.database.query(
      `insert into webhook_outbox.webhook_deliveries
         (tenant_id, event_type, url, payload, status, attempt_count, max_attempts, retry_delays_ms, timeout_ms,
          connect_timeout_ms, finished_at)
       select d.tenant_id, d.event_type, d.url, d.payload, 'succeeded', 1, d.max_attempts, d.retry_delays_ms, d.timeout_ms,
              d.connect_timeout_ms, now()
       from (select * from webhook_outbox.webhook_deliveries limit 1) d, generate_series(1, 5000)`,
    );
    await testDb.database.query("analyze webhook_outbox.webhook_deliveries");
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      await client.query("set plan_cache_mode = force_generic_plan");
      await client.query(`prepare step_plan(uuid, timestamptz, timestamptz, text, timestamptz, uuid, int, int, uuid) as ${STEP_SQL_FOR_PLANS}`);
      const result = await client.query<Record<string, string>>(
        `explain execute step_plan('${harness.tenant.tenantId}', now() - interval '1 day', now(), null, now() - interval '1 day',
                                   '00000000-0000-0000-0000-000000000000', 100, 1000, gen_random_uuid())`,
      );
      const plan = result.rows.map((row) => row["QUERY PLAN"]).join("\n");
      expect(plan).not.toMatch(/Seq Scan on webhook_deliveries/);
      expect(plan).toContain("webhook_deliveries_tenant_failed_idx");
    } finally {
      await client.end();
    }
  });
});

describe("the workers' pace", () => {
  it("redelivers a replay's matches by itself, REPLAY_RATE per second", async () => {
    const ownDb = await createTestDatabase();
    const paced = await startHarness(ownDb, { WEBHOOK_RETRY_DELAYS: [0], REPLAY_RATE: 3 });
    try {
      receiver.respondWith(status(500));
      const ids: string[] = [];
      const since = new Date(Date.now() - 60_000).toISOString();
      for (let i = 0; i < 5; i++) {
        const created = await paced.api.post("/api/v1/generate", { prompt: "paced", webhookUrl: `${receiver.url}?paced=1` });
        await paced.api.finishJob(created.body.jobId, 1, "completed");
        ids.push(created.body.jobId);
      }
      const failedCount = async (wanted: string) => {
        const [row] = await ownDb.database.query<{ n: number }>(
          "select count(*)::int as n from webhook_outbox.webhook_deliveries where job_id = any($1::uuid[]) and status = $2",
          [ids, wanted],
        );
        return row?.n;
      };
      await eventually(async () => ((await failedCount("failed")) === 5 ? true : undefined));
      receiver.respondWith(ok);
      const started = await paced.api.post("/api/v1/deliveries/replay", { status: "failed", since });
      expect(started.body.matched).toBe(5);
      await eventually(async () => ((await failedCount("succeeded")) === 5 ? true : undefined), 20_000);
      const replay = await eventually(async () => {
        const shown = await paced.api.get(`/api/v1/replays/${started.body.replayId}`);
        return shown.body.state === "done" ? shown.body : undefined;
      });
      expect(replay).toMatchObject({ matched: 5, requeued: 5 });
      // Three a batch, a second apart: the last two went a second after the first three.
      const [spread] = await ownDb.database.query<{ ms: number }>(
        `select (extract(epoch from max(a.started_at) - min(a.started_at)) * 1000)::float8 as ms
         from webhook_outbox.webhook_delivery_attempts a join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
         where d.job_id = any($1::uuid[]) and a.attempt_number = 2`,
        [ids],
      );
      expect(spread?.ms).toBeGreaterThanOrEqual(900);
    } finally {
      await paced.stop();
      await ownDb.drop();
    }
  });
});
