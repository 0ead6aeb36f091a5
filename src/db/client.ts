import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import pg from "pg";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A drizzle transaction handle; what the job service writes through. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export type Unlisten = () => Promise<void>;

/** The rows of a raw `execute` result; both drivers answer `{ rows }`. */
export function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}

/**
 * One handle over either a Postgres server (pg pool) or an embedded PGlite database.
 * `db` is drizzle for ordinary queries; `query` runs the hand-written hot-path SQL
 * (named prepared statements on a server) so the same SQL text runs on both.
 */
export interface Database {
  readonly kind: "postgres" | "pglite";
  readonly db: Db;
  query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]>;
  /** Subscribes to a NOTIFY channel; reconnects on its own after a lost connection. */
  listen(channel: string, onNotify: () => void): Promise<Unlisten>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  pgliteDir?: string;
  poolSize?: number;
  onError?: (error: Error) => void;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options.pgliteDir ?? "./.data/pglite");
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    // A cut connection must fail fast rather than hang the claim loop or a request.
    connectionTimeoutMillis: 5_000,
    query_timeout: 60_000,
    keepAlive: true,
  });
  // An idle client that loses its connection emits here; without a listener the process would crash.
  pool.on("error", (error) => options.onError?.(error));
  // A checked-out client (inside a transaction) has no pool listener: a cut connection would crash
  // the process. Its queries still fail and the pool drops it on release.
  pool.on("connect", (client) => client.on("error", (error) => options.onError?.(error)));
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    kind: "postgres",
    db,
    async query<Row>(text: string, params: unknown[] = [], name?: string) {
      const result = await pool.query(name ? { name, text, values: params } : { text, values: params });
      return result.rows as Row[];
    },
    listen: (channel, onNotify) => listenPostgres(url, channel, onNotify, options.onError),
    close: () => pool.end(),
  };
}

async function listenPostgres(
  url: string,
  channel: string,
  onNotify: () => void,
  onError?: (error: Error) => void,
): Promise<Unlisten> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  const connect = async (): Promise<void> => {
    if (stopped) return;
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, keepAlive: true });
    next.on("notification", () => onNotify());
    next.on("error", (error) => {
      onError?.(error);
      scheduleReconnect();
    });
    next.on("end", () => scheduleReconnect());
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      client = next;
      backoffMs = 100;
      // Anything enqueued while we were not listening is found by this wake-up.
      onNotify();
    } catch (error) {
      onError?.(error as Error);
      next.removeAllListeners("end");
      await next.end().catch(() => undefined);
      scheduleReconnect();
    }
  };

  function scheduleReconnect(): void {
    if (stopped || retryTimer) return;
    const stale = client;
    client = undefined;
    if (stale) {
      stale.removeAllListeners();
      // A dead client may still emit an error; an unhandled one would crash the process.
      stale.on("error", () => undefined);
      void stale.end().catch(() => undefined);
    }
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 5_000);
  }

  await connect();
  return async () => {
    stopped = true;
    if (retryTimer) clearTimeout(retryTimer);
    const current = client;
    client = undefined;
    if (current) {
      current.removeAllListeners();
      current.on("error", () => undefined);
      await current.end().catch(() => undefined);
    }
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: "pglite",
    db,
    async query<Row>(text: string, params: unknown[] = []) {
      const result = await client.query<Row>(text, params);
      return result.rows;
    },
    async listen(channel, onNotify) {
      const unsubscribe = await client.listen(channel, () => onNotify());
      return async () => unsubscribe();
    },
    close: () => client.close(),
  };
}
