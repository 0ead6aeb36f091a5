import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createScratchDatabase, type ScratchDatabase } from "../bench/lib/database.js";
import { MIGRATIONS_FOLDER, runMigrations } from "../src/db/migrate.js";
import { destinationIdSql, destinationSql } from "../src/db/schema.js";
import { eventually, startHarness } from "./support/harness.js";
import { attemptsOf } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

/*
 * The move of every table into the schema webhook_outbox: a database of the old layout (tables in
 * public, drizzle's journal in drizzle.__drizzle_migrations) keeps its rows and goes on working; a
 * fresh install into an application's database, whose public schema and search_path hold names of
 * its own, touches none of them, and the service runs on connections with that search_path.
 */

const PRODUCT_TABLES = [
  "tenants",
  "api_keys",
  "signing_secrets",
  "jobs",
  "job_projects",
  "webhook_deliveries",
  "webhook_delivery_attempts",
  "api_rate_limits",
];

const scratches: ScratchDatabase[] = [];
const receivers: Receiver[] = [];

afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.close()));
  await Promise.all(scratches.map((scratch) => scratch.drop()));
});

async function bareDatabase(label: string): Promise<ScratchDatabase> {
  const scratch = await createScratchDatabase(inject("adminDatabaseUrl"), label, { migrate: false, prefix: "wo_test", poolSize: 4 });
  scratches.push(scratch);
  return scratch;
}

/** The migrations that made the old layout (0000-0003), applied as they were: in public, journal in drizzle's schema. */
async function migrateToOldLayout(scratch: ScratchDatabase): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), "wo-old-layout-"));
  try {
    cpSync(join(MIGRATIONS_FOLDER, "meta"), join(folder, "meta"), { recursive: true });
    const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as {
      entries: Array<{ idx: number; tag: string }>;
    };
    journal.entries = journal.entries.filter((entry) => entry.idx <= 3);
    writeFileSync(join(folder, "meta", "_journal.json"), JSON.stringify(journal));
    for (const entry of journal.entries) cpSync(join(MIGRATIONS_FOLDER, `${entry.tag}.sql`), join(folder, `${entry.tag}.sql`));
    await scratch.database.withSession(async (client) => {
      await client.query("set search_path to public");
      await migrate(drizzle(client), { migrationsFolder: folder });
    });
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

async function tablesIn(scratch: ScratchDatabase, schema: string): Promise<string[]> {
  const rows = await scratch.database.query<{ name: string }>(
    "select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind in ('r', 'v') order by 1",
    [schema],
  );
  return rows.map((row) => row.name);
}

describe("a database of the old layout (tables in public)", () => {
  it("keeps every row through the move, and the service delivers what was pending", async () => {
    const scratch = await bareDatabase("oldlayout");
    await migrateToOldLayout(scratch);
    expect(await tablesIn(scratch, "public")).toEqual(expect.arrayContaining([...PRODUCT_TABLES, "delivery_audit"]));
    const receiver = await Receiver.start();
    receivers.push(receiver);

    // Rows as the old service wrote them, unqualified names resolved in public.
    const q = scratch.database.query;
    const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    const [tenant] = await q<{ id: string }>("insert into tenants (name) values ('legacy') returning id");
    const tenantId = tenant?.id as string;
    await q("insert into api_keys (tenant_id, key_hash, prefix) values ($1, repeat('a', 64), 'wo_legacy1')", [tenantId]);
    await q("insert into signing_secrets (tenant_id, secret) values ($1, $2)", [tenantId, secret]);
    const [job] = await q<{ id: string }>(
      `insert into jobs (tenant_id, api_flavor, prompt, status, webhook_url, completed_at, deadline_at)
       values ($1, 'nouvel', 'legacy job', 'completed', $2, now(), now()) returning id`,
      [tenantId, receiver.url],
    );
    const jobId = job?.id as string;
    await q("insert into job_projects (job_id, index, status) values ($1, 0, 'completed')", [jobId]);
    const [done] = await q<{ id: string }>(
      `insert into webhook_deliveries (tenant_id, job_id, event_type, url, payload, status, attempt_count, max_attempts,
         retry_delays_ms, timeout_ms, connect_timeout_ms, finished_at)
       values ($1, $2, 'job.legacy', $3, '{"n":1}', 'succeeded', 1, 3, '{0,10000,60000}', 10000, 10000, now()) returning id`,
      [tenantId, jobId, receiver.url],
    );
    await q(
      `insert into webhook_delivery_attempts (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, response_status, outcome)
       values ($1, 1, 'old-worker', now(), now(), 12, 200, 'succeeded')`,
      [done?.id],
    );
    const [pending] = await q<{ id: string }>(
      `insert into webhook_deliveries (tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms,
         connect_timeout_ms, next_attempt_at)
       values ($1, $2, 'job.completed', $3, '{"legacy":true}', 3, '{0,10000,60000}', 10000, 10000, now()) returning id`,
      [tenantId, jobId, receiver.url],
    );
    await q("insert into api_rate_limits (key, points, expire) values ('api:wo_legacy1', 3, 0)");

    await runMigrations(scratch.database);
    await runMigrations(scratch.database); // a second run changes nothing

    expect(await tablesIn(scratch, "public")).toEqual([]);
    expect(await tablesIn(scratch, "webhook_outbox")).toEqual(
      expect.arrayContaining([...PRODUCT_TABLES, "delivery_audit", "__drizzle_migrations"]),
    );
    const [journal] = await q<{ moved: boolean; n: number }>(
      "select to_regclass('drizzle.__drizzle_migrations') is null as moved, (select count(*)::int from webhook_outbox.__drizzle_migrations) as n",
    );
    const shipped = (JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as { entries: unknown[] }).entries;
    expect(journal).toEqual({ moved: true, n: shipped.length });
    const [counts] = await q<Record<string, number>>(
      `select (select count(*)::int from webhook_outbox.tenants where name = 'legacy') as tenants,
              (select count(*)::int from webhook_outbox.api_keys where prefix = 'wo_legacy1') as keys,
              (select count(*)::int from webhook_outbox.job_projects where job_id = $1) as projects,
              (select count(*)::int from webhook_outbox.webhook_deliveries where job_id = $1) as deliveries,
              (select count(*)::int from webhook_outbox.webhook_delivery_attempts where delivery_id = $2) as attempts,
              (select points from webhook_outbox.api_rate_limits where key = 'api:wo_legacy1') as points,
              (select count(*)::int from webhook_outbox.delivery_audit where job_id = $1) as audit`,
      [jobId, done?.id],
    );
    expect(counts).toEqual({ tenants: 1, keys: 1, projects: 1, deliveries: 2, attempts: 1, points: 3, audit: 2 });
    // The destination columns, no longer generated, keep what they were derived as, and every moved
    // delivery has its destination row.
    const destinations = await q<{ matches: boolean; has_row: boolean }>(
      `select d.destination = ${destinationSql("d.url")} and d.destination_id = ${destinationIdSql("d.tenant_id", "d.url")} as matches,
              exists (select from webhook_outbox.destinations g
                      where g.id = d.destination_id and g.id = ${destinationIdSql("g.tenant_id", "g.url")}) as has_row
       from webhook_outbox.webhook_deliveries d where d.job_id = $1`,
      [jobId],
    );
    expect(destinations).toEqual([
      { matches: true, has_row: true },
      { matches: true, has_row: true },
    ]);

    // The moved rows are live: the pending one is claimed, signed with the moved secret and recorded
    // after the moved attempt (its id sequence moved with its table).
    const harness = await startHarness(scratch, {}, { api: false, tenant: { tenantId, apiKey: "unused", signingSecret: secret } });
    try {
      const [request] = await receiver.waitForRequests(1);
      expect(request?.body).toBe('{"legacy": true}');
      expect(request?.headers["webhook-id"]).toBe(pending?.id);
      const attempts = await eventually(async () => {
        const rows = await attemptsOf(scratch.database, pending?.id as string);
        return rows.length > 0 ? rows : undefined;
      });
      expect(attempts.map((attempt) => [attempt.attempt_number, attempt.outcome])).toEqual([[1, "succeeded"]]);
    } finally {
      await harness.stop();
    }
  });
});

describe("a fresh install into an application's database", () => {
  it("creates nothing outside webhook_outbox, and the service runs under the application's search_path", async () => {
    const scratch = await bareDatabase("appdb");
    const q = scratch.database.query;
    // The application's own names: tables called jobs and tenants, in public and in a schema of its
    // own that leads its search_path, and drizzle migrations of its own.
    await q(`
      create schema app;
      create table public.jobs (id int primary key, note text);
      create table public.tenants (id int primary key);
      create table app.jobs (id int primary key);
      create table app.webhook_deliveries (id int primary key);
      create schema drizzle;
      create table drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint);
      insert into drizzle.__drizzle_migrations (hash, created_at) values ('the app''s own', 1);
      insert into public.jobs values (1, 'an order job');`);
    await q(`alter database ${scratch.name} set search_path = app, public`);
    await scratch.database.close();
    const { openDatabase } = await import("../src/db/client.js");
    const database = await openDatabase({ databaseUrl: scratch.url, poolSize: 4 });
    const appScratch: ScratchDatabase = { ...scratch, database };
    const [path] = await database.query<{ search_path: string }>("show search_path");
    expect(path?.search_path).toBe("app, public");

    await runMigrations(database);

    expect(await tablesIn(appScratch, "public")).toEqual(["jobs", "tenants"]);
    expect(await tablesIn(appScratch, "app")).toEqual(["jobs", "webhook_deliveries"]);
    expect(await database.query("select id, note from public.jobs")).toEqual([{ id: 1, note: "an order job" }]);
    expect(await database.query("select hash from drizzle.__drizzle_migrations")).toEqual([{ hash: "the app's own" }]);
    expect(await tablesIn(appScratch, "webhook_outbox")).toEqual(expect.arrayContaining([...PRODUCT_TABLES, "delivery_audit"]));
    const [functions] = await database.query<{ n: number }>(
      "select count(*)::int as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('public', 'app')",
    );
    expect(functions?.n).toBe(0);

    // Every statement of the job API, the worker and the rate limiter runs on connections whose
    // search_path is the application's (app, public): each names the schema.
    const receiver = await Receiver.start();
    receivers.push(receiver);
    const harness = await startHarness(appScratch, { API_RATE_LIMIT: 100 });
    try {
      const created = await harness.api.post("/api/v1/generate", { prompt: "under the app's search_path", webhookUrl: receiver.url });
      expect(created.status).toBe(202);
      await harness.api.finishJob(created.body.jobId, 1, "completed");
      const [request] = await receiver.waitForRequests(1);
      expect(JSON.parse(request?.body ?? "{}").jobId).toBe(created.body.jobId);
      const deliveries = await harness.api.get(`/api/v1/jobs/${created.body.jobId}/deliveries`);
      expect(deliveries.status).toBe(200);
      expect(deliveries.headers.get("ratelimit-remaining")).not.toBeNull();
      // Counted in the shared table, not by the in-process stand-in the limiter falls back on.
      const [limits] = await database.query<{ points: number }>("select max(points)::int as points from webhook_outbox.api_rate_limits");
      expect(limits?.points).toBeGreaterThanOrEqual(2);
    } finally {
      await harness.stop();
      await database.close();
    }
  });
});
