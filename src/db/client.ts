import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import pg from "pg";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type Unlisten = () => Promise<void>;

/** Raw SQL: the text, its parameters, and a statement name to prepare it under (ignored by PGlite). */
export type Query = <Row>(text: string, params?: unknown[], name?: string) => Promise<Row[]>;

/**
 * One handle over either a Postgres server (pg pool) or an embedded PGlite database.
 * `db` is drizzle for ordinary queries; `query` runs the hand-written hot-path SQL
 * (named prepared statements on a server) so the same SQL text runs on both.
 */
export interface Database {
  readonly kind: "postgres" | "pglite";
  readonly db: Db;
  /** Free-standing (it uses no `this`), so it may be handed on as a `Query`, as a transaction's is. */
  readonly query: Query;
  /** Runs `work` in one transaction over raw SQL: the hot write paths, without a query builder. */
  transaction<T>(work: (query: Query) => Promise<T>): Promise<T>;
  /**
   * Runs `work` in one transaction on a drizzle handle bound to one connection. Use this, never
   * `db.transaction()`: drizzle-orm 0.45 sends BEGIN outside its try/finally, so a BEGIN that fails
   * (a cut connection) never gives its connection back and the pool drains for good.
   */
  transactionDb<T>(work: (tx: Db) => Promise<T>): Promise<T>;
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
    query: async <Row>(text: string, params: unknown[] = [], name?: string) => {
      const result = await pool.query(name ? { name, text, values: params } : { text, values: params });
      return result.rows as Row[];
    },
    transaction: <T>(work: (query: Query) => Promise<T>) =>
      inTransaction(pool, (client) =>
        work(async <Row>(text: string, params: unknown[] = [], name?: string) =>
          (await client.query(name ? { name, text, values: params } : { text, values: params })).rows as Row[],
        ),
      ),
    transactionDb: <T>(work: (tx: Db) => Promise<T>) =>
      inTransaction(pool, (client) => work(drizzlePg(client, { schema }) as unknown as Db)),
    listen: (channel, onNotify) => listenPostgres(url, channel, onNotify, options.onError),
    close: () => pool.end(),
  };
}

/**
 * One transaction on one pooled connection. Every path gives the connection back: BEGIN, the work,
 * COMMIT and ROLLBACK are all inside the try, and a connection whose ROLLBACK fails (cut, or in an
 * unknown state) is released with the error so the pool destroys it and opens a fresh one.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let result: T;
  try {
    await client.query("begin");
    result = await work(client);
    await client.query("commit");
  } catch (error) {
    const rollbackError = await client.query("rollback").then(
      () => undefined,
      (failure: Error) => failure,
    );
    client.release(rollbackError ?? undefined);
    throw error;
  }
  client.release();
  return result;
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
  const releaseLock = lockDataDir(dataDir);
  let client: PGlite;
  try {
    client = await PGlite.create(dataDir);
  } catch (error) {
    releaseLock();
    throw error;
  }
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: "pglite",
    db,
    query: async <Row>(text: string, params: unknown[] = []) => {
      const result = await client.query<Row>(text, params);
      return result.rows;
    },
    transaction<T>(work: (query: Query) => Promise<T>): Promise<T> {
      return client.transaction((tx) =>
        work(async <Row>(text: string, params: unknown[] = []) => (await tx.query<Row>(text, params)).rows),
      );
    },
    transactionDb<T>(work: (tx: Db) => Promise<T>): Promise<T> {
      // eslint-disable-next-line no-restricted-syntax -- PGlite is one in-process connection: nothing to leak
      return db.transaction((tx) => work(tx as unknown as Db));
    },
    async listen(channel, onNotify) {
      const unsubscribe = await client.listen(channel, () => onNotify());
      return async () => unsubscribe();
    },
    async close() {
      await client.close();
      releaseLock();
    },
  };
}

export class DataDirInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `the embedded database in ${resolve(dataDir)} is open in process ${pid}: PGlite allows one process at a time. ` +
        "Stop that process first, or set DATABASE_URL to use a Postgres server.",
    );
    this.name = "DataDirInUseError";
  }
}

/**
 * PGlite does not guard its directory; two processes writing one data directory would corrupt it.
 * A pid file does: a live owner refuses the open, a dead one's file is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = join(dataDir, "webhook-outbox.pid");
  const key = resolve(dataDir);
  for (;;) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" });
      openedHere.add(key);
      return () => {
        openedHere.delete(key);
        rmSync(lockFile, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number(readFileSync(lockFile, "utf8").trim());
    // Our own pid in the file is a previous life's (a restarted container is pid 1 again) unless we hold it.
    const held = owner === process.pid ? openedHere.has(key) : Number.isInteger(owner) && owner > 0 && isAlive(owner);
    if (held) throw new DataDirInUseError(dataDir, owner);
    rmSync(lockFile, { force: true });
  }
}

/** Data directories this process has open. */
const openedHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether a NOTIFY reaches this handle's LISTEN within `timeoutMs`. */
export async function probeNotifications(database: Database, timeoutMs = 1_000): Promise<boolean> {
  const channel = "webhook_outbox_probe";
  let heard: () => void = () => undefined;
  const arrived = new Promise<boolean>((resolve) => {
    heard = () => resolve(true);
    setTimeout(() => resolve(false), timeoutMs).unref();
  });
  const unlisten = await database.listen(channel, () => heard());
  try {
    await database.query(`select pg_notify('${channel}', '')`);
    return await arrived;
  } finally {
    await unlisten();
  }
}
