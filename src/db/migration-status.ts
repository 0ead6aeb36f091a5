import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Database } from "./client.js";
import { MIGRATIONS_FOLDER } from "./migrate.js";

export interface MigrationStatus {
  /** The newest migration this build ships (its journal tag), or null when it ships none. */
  expected: string | null;
  /** Whether the database has applied it. */
  current: boolean;
}

interface Journal {
  entries: Array<{ tag: string; when: number }>;
}

let shipped: { tag: string; when: number } | null | undefined;

function newestShipped(): { tag: string; when: number } | null {
  if (shipped !== undefined) return shipped;
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as Journal;
  shipped = journal.entries.reduce<{ tag: string; when: number } | null>(
    (newest, entry) => (newest && newest.when >= entry.when ? newest : entry),
    null,
  );
  return shipped;
}

/**
 * Compares drizzle's record of applied migrations with the journal shipped beside this build.
 * drizzle applies every journal entry newer than the last row it recorded (by `created_at` = the
 * entry's `when`), so the database is current when that row is at least the newest entry.
 */
export async function migrationStatus(database: Database): Promise<MigrationStatus> {
  const newest = newestShipped();
  if (!newest) return { expected: null, current: true };
  const [table] = await database.query<{ present: boolean }>(
    "select to_regclass('webhook_outbox.__drizzle_migrations') is not null as present",
  );
  if (!table?.present) return { expected: newest.tag, current: false };
  const [applied] = await database.query<{ newest: string | null }>(
    "select max(created_at)::text as newest from webhook_outbox.__drizzle_migrations",
  );
  return { expected: newest.tag, current: applied?.newest != null && Number(applied.newest) >= newest.when };
}
