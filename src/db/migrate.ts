import { fileURLToPath } from "node:url";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import type { Database } from "./client.js";

/** `migrations/` at the package root, from both `src/db` and `dist/db`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Any constant shared by every process migrating one database; "wo_migr" in ASCII. */
const MIGRATION_LOCK = 0x776f5f6d69677200n;

/**
 * Applies the migrations not applied yet. drizzle's migrator takes no lock, so processes starting
 * at once on a fresh database (two CLI commands on the embedded server, two replicas) would apply
 * the same migration twice: an advisory lock, held by a transaction on another pooled connection
 * while the migrator runs, makes them take turns. The pool needs two connections.
 */
export async function runMigrations(database: Database): Promise<void> {
  await database.transaction(async (query) => {
    await query("select pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK.toString()]);
    await migrate(database.db as unknown as NodePgDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
  });
}
