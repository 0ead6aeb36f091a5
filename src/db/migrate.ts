import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import type pg from "pg";
import type { Database } from "./client.js";
import { OUTBOX_SCHEMA } from "./schema.js";

/** `migrations/` at the package root, from both `src/db` and `dist/db`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../migrations", import.meta.url));

/**
 * drizzle's record of applied migrations, in the product's schema: an application that runs
 * drizzle migrations of its own keeps them in `drizzle.__drizzle_migrations`, apart from these.
 */
export const MIGRATIONS_TABLE = `${OUTBOX_SCHEMA}.__drizzle_migrations`;

/** Any constant shared by every process migrating one database; "wo_migr" in ASCII. */
const MIGRATION_LOCK = 0x776f5f6d69677200n;

/**
 * Applies the migrations not applied yet, on a connection of its own:
 * - under a session advisory lock, so processes starting at once on a fresh database (two CLI
 *   commands on the embedded server, two replicas) take turns (drizzle's migrator takes none);
 * - with search_path = webhook_outbox, so the early migrations, whose names are unqualified, create
 *   nothing outside the product's schema, whatever the search_path of the pool's connections.
 * The connection is closed afterwards, its session settings with it.
 */
export async function runMigrations(database: Database): Promise<void> {
  await database.withSession(async (client) => {
    await client.query("select pg_advisory_lock($1::bigint)", [MIGRATION_LOCK.toString()]);
    await client.query(`create schema if not exists ${OUTBOX_SCHEMA}`);
    await adoptLegacyJournal(client);
    await client.query(`set search_path to ${OUTBOX_SCHEMA}`);
    await migrate(drizzle(client), {
      migrationsFolder: MIGRATIONS_FOLDER,
      migrationsSchema: OUTBOX_SCHEMA,
      migrationsTable: "__drizzle_migrations",
    });
  });
}

/**
 * A database migrated before the product had a schema of its own keeps its record of applied
 * migrations in drizzle's default place, beside tables in public: that record moves with them.
 */
async function adoptLegacyJournal(client: pg.PoolClient): Promise<void> {
  await client.query(`
    do $$
    begin
      if to_regclass('${MIGRATIONS_TABLE}') is null
         and to_regclass('drizzle.__drizzle_migrations') is not null
         and to_regclass('public.webhook_deliveries') is not null
         and to_regclass('public.webhook_delivery_attempts') is not null
         and to_regclass('public.job_projects') is not null then
        alter table drizzle.__drizzle_migrations set schema ${OUTBOX_SCHEMA};
      end if;
    end $$`);
}
