import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import pg from "pg";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type Unlisten = () => Promise<void>;

/** Raw SQL: the text, its parameters, and a statement name to prepare it under. */
export type Query = <Row>(text: string, params?: unknown[], name?: string) => Promise<Row[]>;

/**
 * One handle over a Postgres server (a pg pool): the configured one, or the embedded one
 * (src/db/embedded.ts). `db` is drizzle for ordinary queries; `query` runs the hand-written
 * hot-path SQL as named prepared statements.
 */
export interface Database {
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
  /**
   * Runs `work` on a connection of its own, closed afterwards instead of going back to the pool:
   * for work that changes its session (search_path, session-level advisory locks).
   */
  withSession<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  /** Subscribes to a NOTIFY channel; reconnects on its own after a lost connection. */
  listen(channel: string, onNotify: () => void): Promise<Unlisten>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Required; optional in the type only so that callers may pass an environment variable through. */
  databaseUrl?: string | undefined;
  poolSize?: number;
  onError?: (error: Error) => void;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (!options.databaseUrl) throw new Error("openDatabase needs a databaseUrl (the embedded server's comes from startEmbeddedPostgres)");
  return openPostgres(options.databaseUrl, options);
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
  return databaseOnPool(pool, { listenConfig: { connectionString: url }, onError: options.onError, close: () => pool.end() });
}

export interface PoolDatabaseOptions {
  /** How the LISTEN connection (one of its own, outside the pool) connects. */
  listenConfig: pg.ClientConfig;
  onError?: ((error: Error) => void) | undefined;
  /** What close() does; by default nothing: the pool is its owner's to end. */
  close?: () => Promise<void>;
}

/** Something raw SQL runs on: a pg Pool, a pooled connection, or a Client. */
export interface QueryTarget {
  query(config: pg.QueryConfig): Promise<pg.QueryResult>;
}

/** `target` as a Query: each statement named `name` is prepared once per connection under that name. */
export function queryOn(target: QueryTarget): Query {
  return async <Row>(text: string, params: unknown[] = [], name?: string) =>
    (await target.query(name ? { name, text, values: params } : { text, values: params })).rows as Row[];
}

/** A Database over a pool made elsewhere (an application's, with its own search_path and error handling). */
export function databaseOnPool(pool: pg.Pool, options: PoolDatabaseOptions): Database {
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    db,
    query: queryOn(pool),
    transaction: <T>(work: (query: Query) => Promise<T>) => inTransaction<pg.PoolClient, T>(pool, (client) => work(queryOn(client))),
    transactionDb: <T>(work: (tx: Db) => Promise<T>) =>
      inTransaction<pg.PoolClient, T>(pool, (client) => work(drizzlePg(client, { schema }) as unknown as Db)),
    withSession: async <T>(work: (client: pg.PoolClient) => Promise<T>) => {
      const client = await pool.connect();
      try {
        return await work(client);
      } finally {
        client.release(true);
      }
    },
    listen: (channel, onNotify) => listenPostgres(options.listenConfig, channel, onNotify, options.onError),
    close: options.close ?? (async () => undefined),
  };
}

/** What `inTransaction` needs of a pooled connection: node-postgres's, or anything shaped like it. */
export interface PooledClient {
  query(text: string): Promise<unknown>;
  release(error?: Error | boolean): void;
}

/**
 * One transaction on one pooled connection. Every path gives the connection back: BEGIN, the work,
 * COMMIT and ROLLBACK are all inside the try, and a connection whose ROLLBACK fails (cut, or in an
 * unknown state) is released with the error so the pool destroys it and opens a fresh one.
 */
export async function inTransaction<C extends PooledClient, T>(pool: { connect(): Promise<C> }, work: (client: C) => Promise<T>): Promise<T> {
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
  config: pg.ClientConfig,
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
    const next = new pg.Client({ ...config, connectionTimeoutMillis: 5_000, keepAlive: true });
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
