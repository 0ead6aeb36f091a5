import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enqueueDelivery } from "../src/outbox/enqueue.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";

/*
 * Jobs and deliveries get time-ordered ids (UUID version 7): the Unix time in milliseconds in the
 * first 48 bits, so rows made together sit together in the indexes keyed by their id.
 */

let testDb: TestDatabase;
let tenant: CreatedTenant;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenant = await createTenant(testDb.database, "ids");
});

afterAll(async () => {
  await testDb?.drop();
});

/** The milliseconds a version-7 id carries. */
const millisecondsOf = (id: string): number => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

function expectVersion7(id: string): void {
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
}

describe("time-ordered ids", () => {
  it("webhook_outbox.uuid_v7() carries the database's clock, version 7 and the RFC 9562 variant, and differs every call", async () => {
    const [row] = await testDb.database.query<{ before: string; ids: string[]; after: string }>(
      `select floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text as before,
              array(select webhook_outbox.uuid_v7()::text from generate_series(1, 200)) as ids,
              floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text as after`,
    );
    const ids = row?.ids ?? [];
    expect(new Set(ids).size).toBe(200);
    for (const id of ids) {
      expectVersion7(id);
      expect(millisecondsOf(id)).toBeGreaterThanOrEqual(Number(row?.before));
      expect(millisecondsOf(id)).toBeLessThanOrEqual(Number(row?.after));
    }
  });

  it("gives jobs made through the job service and deliveries enqueued in a transaction ids that carry their creation", async () => {
    const service = testJobService(testDb.database);
    const jobs = [];
    for (const prompt of ["first", "second", "third"]) {
      jobs.push(await service.create({ tenantId: tenant.tenantId, apiFlavor: "nouvel", prompt, projectCount: 1 }));
    }
    const deliveries: string[] = [];
    for (const key of ["a", "b", "c"]) {
      const id = await testDb.database.transaction((query) =>
        enqueueDelivery(query, {
          tenantId: tenant.tenantId,
          eventType: "order.paid",
          url: "https://example.com/hook",
          payload: { key },
          idempotencyKey: key,
          policy: { retryDelaysMs: [0], timeoutMs: 1_000, connectTimeoutMs: 1_000 },
        }),
      );
      deliveries.push(id ?? "none");
    }
    const rows = await testDb.database.query<{ id: string; created: string }>(
      `select id::text, floor(extract(epoch from created_at) * 1000)::bigint::text as created from webhook_outbox.jobs
       union all
       select id::text, floor(extract(epoch from created_at) * 1000)::bigint::text from webhook_outbox.webhook_deliveries`,
    );
    const created = new Map(rows.map((row) => [row.id, Number(row.created)]));
    for (const ids of [jobs.map((job) => job.id), deliveries]) {
      let previous = 0;
      for (const id of ids) {
        expectVersion7(id);
        // Made in its row's statement: at or after its transaction's start, in the order made.
        expect(millisecondsOf(id)).toBeGreaterThanOrEqual(created.get(id) ?? Infinity);
        expect(millisecondsOf(id)).toBeGreaterThanOrEqual(previous);
        previous = millisecondsOf(id);
      }
    }
  });
});
