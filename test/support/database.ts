import pg from "pg";
import { inject } from "vitest";
import { createScratchDatabase, type ScratchDatabase } from "../../bench/lib/database.js";
import { seedDueDeliveries } from "../../bench/lib/seed.js";
import { createTenant } from "../../src/tenants/tenant-service.js";

/** A migrated database of one test file's own; `database` is a handle for assertions and seeding. */
export type TestDatabase = ScratchDatabase;

/** A fresh, migrated database on the run's server (see global-setup.ts: DATABASE_URL, a container, or the embedded server), dropped by `drop()`. */
export function createTestDatabase(): Promise<TestDatabase> {
  return createScratchDatabase(inject("adminDatabaseUrl"), "file", { prefix: "wo_test", poolSize: 4 });
}

/**
 * A test database holding `count` due deliveries of one tenant to `url` (taken in turn when
 * several), and a connection of its own (`client`) for statements whose plans and prepared state
 * are checked one connection at a time. `drop()` closes the client and drops the database.
 */
export interface SeededDatabase {
  testDb: TestDatabase;
  tenantId: string;
  client: pg.Client;
  drop(): Promise<void>;
}

export async function createSeededDatabase(tenantName: string, url: string | string[], count: number): Promise<SeededDatabase> {
  const testDb = await createTestDatabase();
  const { tenantId } = await createTenant(testDb.database, tenantName);
  await seedDueDeliveries(testDb.database, tenantId, url, count);
  const client = new pg.Client({ connectionString: testDb.url });
  await client.connect();
  return {
    testDb,
    tenantId,
    client,
    async drop() {
      await client.end();
      await testDb.drop();
    },
  };
}
