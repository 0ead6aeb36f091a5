import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedDueDeliveries } from "../bench/lib/seed.js";
import { deliveriesPage } from "../src/outbox/delivery-queries.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

// A page of deliveries, newest first, is read in the order of its index: never a sort of every
// matching row (the ORDER BY must match the .desc() indexes' NULLS LAST).

let testDb: TestDatabase;
let tenantId: string;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenantId = (await createTenant(testDb.database, "plans")).tenantId;
  await seedDueDeliveries(testDb.database, tenantId, "http://127.0.0.1:9/hook", 5_000);
});

afterAll(async () => {
  await testDb?.drop();
});

describe("the deliveries page", () => {
  it("walks a newest-first index in order, with no sort", async () => {
    const { sql, params } = deliveriesPage(testDb.database, { tenantId, limit: 20 }).toSQL();
    const plan = await testDb.database.query<Record<string, string>>(`explain ${sql}`, params);
    const text = plan.map((row) => row["QUERY PLAN"]).join("\n");
    // One tenant here: the planner may walk the all-tenants index as well; either is read in order.
    expect(text).toMatch(/Index Scan using webhook_deliveries_(tenant_)?created_idx/);
    expect(text).not.toMatch(/\bSort\b/);
  });
});
