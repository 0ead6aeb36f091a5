import { randomBytes } from "node:crypto";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/client.js";
import { runMigrations } from "../../src/db/migrate.js";

export interface ScratchDatabase {
  url: string;
  name: string;
  /** Migrated with the service's schema unless created bare. */
  database: Database;
  drop(): Promise<void>;
}

function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function adminQuery(adminUrl: string, text: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(text);
  } finally {
    await admin.end();
  }
}

/** Scratch databases not dropped yet, so an aborted run can still drop them. */
const open = new Set<ScratchDatabase>();

export async function dropOpenScratchDatabases(): Promise<void> {
  await Promise.all([...open].map((scratch) => scratch.drop().catch(() => undefined)));
}

/** A fresh database of one scenario's own, dropped (with force) by `drop()`. */
export async function createScratchDatabase(
  adminUrl: string,
  label: string,
  options: { migrate?: boolean; poolSize?: number; prefix?: string } = {},
): Promise<ScratchDatabase> {
  const name = `${options.prefix ?? "wo_bench"}_${label}_${randomBytes(4).toString("hex")}`;
  await adminQuery(adminUrl, `create database ${name}`);
  const url = withDatabaseName(adminUrl, name);
  const database = await openDatabase({ databaseUrl: url, poolSize: options.poolSize ?? 10 });
  if (options.migrate ?? true) await runMigrations(database);
  let dropped = false;
  const scratch: ScratchDatabase = {
    url,
    name,
    database,
    async drop() {
      if (dropped) return;
      dropped = true;
      open.delete(scratch);
      await database.close().catch(() => undefined);
      await adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
    },
  };
  open.add(scratch);
  return scratch;
}

/** Runs `work` against a scratch database and always drops it afterwards. */
export async function withScratchDatabase<T>(
  adminUrl: string,
  label: string,
  work: (scratch: ScratchDatabase) => Promise<T>,
  options: { migrate?: boolean; poolSize?: number } = {},
): Promise<T> {
  const scratch = await createScratchDatabase(adminUrl, label, options);
  try {
    return await work(scratch);
  } finally {
    await scratch.drop();
  }
}
