import { inject } from "vitest";
import { createScratchDatabase, type ScratchDatabase } from "../../bench/lib/database.js";

/** A migrated database of one test file's own; `database` is a handle for assertions and seeding. */
export type TestDatabase = ScratchDatabase;

/** A fresh, migrated database on the run's server (see global-setup.ts: DATABASE_URL, a container, or the embedded server), dropped by `drop()`. */
export function createTestDatabase(): Promise<TestDatabase> {
  return createScratchDatabase(inject("adminDatabaseUrl"), "file", { prefix: "wo_test", poolSize: 4 });
}
