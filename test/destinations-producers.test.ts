import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destinationIdSql, destinationSql } from "../src/db/schema.js";
import { createOutbox, type Outbox } from "../src/library/index.js";
import { setOperationalWebhook } from "../src/outbox/operational-webhooks.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { startHarness, type Harness } from "./support/harness.js";

/*
 * Every producer of a delivery (the job API, the library, the SQL API) writes its destination in
 * the same statement, and deliveries to one (tenant, URL) share one destination.
 */

let testDb: TestDatabase;
let pool: pg.Pool;
let outbox: Outbox;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  pool = new pg.Pool({ connectionString: testDb.url, max: 2 });
  outbox = createOutbox({ pool, allowInsecureUrls: true });
  await outbox.migrate();
  // No worker: the deliveries stay as enqueued.
  harness = await startHarness(testDb, {}, { worker: false });
});

afterAll(async () => {
  await harness?.stop();
  await outbox?.close();
  await pool?.end();
  await testDb?.drop();
});

async function destinations(tenantId: string) {
  // "matching": the deliveries of the destination whose tenant, URL and host:port are its own, as
  // destinationSql and destinationIdSql derive them; "derived": its id is derived from its tenant and URL.
  return testDb.database.query<{ id: string; url: string; state: string; deliveries: number; matching: number; derived: boolean }>(
    `select g.id, g.url, g.state,
            (select count(*)::int from webhook_outbox.webhook_deliveries d where d.destination_id = g.id) as deliveries,
            (select count(*)::int from webhook_outbox.webhook_deliveries d
             where d.destination_id = g.id and d.tenant_id = g.tenant_id and d.url = g.url
               and d.destination = ${destinationSql("d.url")}) as matching,
            g.id = ${destinationIdSql("g.tenant_id", "g.url")} as derived
     from webhook_outbox.destinations g where g.tenant_id = $1 order by g.url`,
    [tenantId],
  );
}

describe("every producer of a delivery", () => {
  it("writes its destination, one per (tenant, URL)", async () => {
    const tenant = await outbox.createTenant("producers");
    const url = "http://127.0.0.1:9/shared";
    await outbox.enqueue(pool, { tenantId: tenant.tenantId, url, eventType: "order.paid", payload: { n: 1 } });
    await pool.query(`select webhook_outbox.enqueue($1, $2, 'order.paid', '{"n": 2}'::jsonb)`, [tenant.tenantId, url]);
    await pool.query(`select webhook_outbox.enqueue($1, $2, 'order.paid', '{"n": 3}'::jsonb)`, [
      tenant.tenantId,
      "http://127.0.0.1:9/sql-only",
    ]);
    expect(await destinations(tenant.tenantId)).toEqual([
      { id: expect.any(String), url, state: "healthy", deliveries: 2, matching: 2, derived: true },
      { id: expect.any(String), url: "http://127.0.0.1:9/sql-only", state: "healthy", deliveries: 1, matching: 1, derived: true },
    ]);

    // The job API, when a job becomes terminal.
    const apiTenant = harness.tenant;
    const created = await harness.api.post("/api/v1/generate", { prompt: "producer", webhookUrl: url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    expect(await destinations(apiTenant.tenantId)).toEqual([
      { id: expect.any(String), url, state: "healthy", deliveries: 1, matching: 1, derived: true },
    ]);
    // Another tenant's same URL is another destination.
    const [mine] = await destinations(tenant.tenantId);
    const [theirs] = await destinations(apiTenant.tenantId);
    expect(mine?.id).not.toBe(theirs?.id);
  });

  it("writes the destination of an operational webhook's URL when it is set", async () => {
    const tenant = await outbox.createTenant("operational-producer");
    const url = "http://127.0.0.1:9/operations";
    await setOperationalWebhook(testDb.database, tenant.tenantId, url, { retryDelaysMs: [0], timeoutMs: 1_000, connectTimeoutMs: 1_000 });
    expect(await destinations(tenant.tenantId)).toEqual([
      { id: expect.any(String), url, state: "healthy", deliveries: 0, matching: 0, derived: true },
    ]);
  });

  it("writes destination, destination_id and destinations.id itself: none is a generated column", async () => {
    // Postgres 15 parses a table's generation expressions again for every statement that inserts
    // into or updates it; the claim and the record statements update webhook_deliveries all the time.
    const { rows } = await pool.query<{ column: string; generated: string; not_null: boolean }>(
      `select c.relname || '.' || a.attname as column, a.attgenerated as generated, a.attnotnull as not_null
       from pg_attribute a join pg_class c on c.oid = a.attrelid
       join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'webhook_outbox'
       where (c.relname, a.attname) in (('webhook_deliveries', 'destination'), ('webhook_deliveries', 'destination_id'),
                                        ('destinations', 'id'))
       order by 1`,
    );
    expect(rows).toEqual([
      { column: "destinations.id", generated: "", not_null: true },
      { column: "webhook_deliveries.destination", generated: "", not_null: true },
      { column: "webhook_deliveries.destination_id", generated: "", not_null: true },
    ]);
  });

  it("derives them for a writer that leaves them out (a process of an earlier release, mid-rollout)", async () => {
    const tenant = await outbox.createTenant("older-writer");
    const url = "http://127.0.0.1:9/older";
    // The enqueue of the release before these columns were written by their producers.
    await pool.query(
      `with destination as (
         insert into webhook_outbox.destinations (tenant_id, url) values ($1, $2) on conflict do nothing
       )
       insert into webhook_outbox.webhook_deliveries
         (tenant_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at)
       values ($1, 'order.paid', $2, '{}', 1, '{0}', 1000, 1000, now())`,
      [tenant.tenantId, url],
    );
    expect(await destinations(tenant.tenantId)).toEqual([
      { id: expect.any(String), url, state: "healthy", deliveries: 1, matching: 1, derived: true },
    ]);
  });

  it("a destination id is a name-based UUID of tenant and URL, the same however it is computed", async () => {
    const [row] = await testDb.database.query<{ id: string }>(
      "select id from webhook_outbox.destinations where tenant_id = $1 limit 1",
      [harness.tenant.tenantId],
    );
    expect(row?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
