import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOutbox, type Outbox } from "../src/library/index.js";
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
  return testDb.database.query<{ id: string; url: string; state: string; deliveries: number; matching: number }>(
    `select g.id, g.url, g.state,
            (select count(*)::int from webhook_outbox.webhook_deliveries d where d.destination_id = g.id) as deliveries,
            (select count(*)::int from webhook_outbox.webhook_deliveries d
             where d.destination_id = g.id and d.tenant_id = g.tenant_id and d.url = g.url) as matching
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
      { id: expect.any(String), url, state: "healthy", deliveries: 2, matching: 2 },
      { id: expect.any(String), url: "http://127.0.0.1:9/sql-only", state: "healthy", deliveries: 1, matching: 1 },
    ]);

    // The job API, when a job becomes terminal.
    const apiTenant = harness.tenant;
    const created = await harness.api.post("/api/v1/generate", { prompt: "producer", webhookUrl: url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    expect(await destinations(apiTenant.tenantId)).toEqual([
      { id: expect.any(String), url, state: "healthy", deliveries: 1, matching: 1 },
    ]);
    // Another tenant's same URL is another destination.
    const [mine] = await destinations(tenant.tenantId);
    const [theirs] = await destinations(apiTenant.tenantId);
    expect(mine?.id).not.toBe(theirs?.id);
  });

  it("a destination id is a name-based UUID of tenant and URL, the same however it is computed", async () => {
    const [row] = await testDb.database.query<{ id: string }>(
      "select id from webhook_outbox.destinations where tenant_id = $1 limit 1",
      [harness.tenant.tenantId],
    );
    expect(row?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
