import { sql, type SQL } from "drizzle-orm";
import { inTransaction, type Query } from "../db/client.js";

/*
 * Where an enqueue runs: the caller's transaction, in any of the shapes an application holds one.
 * Told apart by shape, not by class, so an application's own copies of pg and drizzle-orm work.
 */

interface QueryResultLike {
  rows: unknown[];
}

/** A pg Client or PoolClient (or anything with pg's `query(text, values)`): its open transaction, if it has one. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<QueryResultLike>;
}

/** A pg Pool: the enqueue runs in a transaction of its own on one of its connections. */
export interface PgPoolLike {
  connect(): Promise<PgClientLike & { release(error?: Error | boolean): void }>;
  query(text: string, values?: unknown[]): Promise<QueryResultLike>;
  totalCount: number;
  idleCount: number;
}

/** A drizzle transaction (or database) over node-postgres, or another driver drizzle's `execute` runs on. */
export interface DrizzleLike {
  execute(query: SQL): Promise<unknown>;
}

/** What `enqueue` accepts as the caller's transaction. */
export type Transaction = PgClientLike | PgPoolLike | DrizzleLike;

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === "function";

function isPool(tx: object): tx is PgPoolLike {
  const candidate = tx as Partial<PgPoolLike>;
  return isFunction(candidate.connect) && isFunction(candidate.query) && typeof candidate.totalCount === "number";
}

/**
 * The node-postgres client or pool under a drizzle transaction or database (drizzle-orm 0.45:
 * `tx.session.client`), when there is one: a transaction's is the connection it runs on, a
 * database's the pool itself.
 */
function drizzleDriver(tx: object): PgClientLike | PgPoolLike | undefined {
  const client = (tx as { session?: { client?: unknown } }).session?.client;
  if (client === null || typeof client !== "object") return undefined;
  return isFunction((client as Partial<PgClientLike>).query) ? (client as PgClientLike | PgPoolLike) : undefined;
}

const clientQuery =
  (client: PgClientLike): Query =>
  async <Row>(text: string, params: unknown[] = []) =>
    (await client.query(text, params)).rows as Row[];

/** `text` with `$n` placeholders as drizzle SQL, each placeholder bound to its value. */
function drizzleSql(text: string, params: unknown[]): SQL {
  const chunks: SQL[] = [];
  let last = 0;
  for (const match of text.matchAll(/\$(\d+)/g)) {
    chunks.push(sql.raw(text.slice(last, match.index)));
    chunks.push(sql`${params[Number(match[1]) - 1]}`);
    last = (match.index ?? 0) + match[0].length;
  }
  chunks.push(sql.raw(text.slice(last)));
  return sql.join(chunks);
}

/**
 * Runs `work` with a Query in the caller's transaction: a drizzle transaction's own connection, a pg
 * client as it is (in the transaction the caller opened, if any), or, for a pool, a transaction of
 * its own that commits when `work` succeeds, rolls back when it throws, and always gives the
 * connection back.
 */
export async function inCallersTransaction<T>(tx: Transaction, work: (query: Query) => Promise<T>): Promise<T> {
  if (tx === null || typeof tx !== "object") throw new TypeError("enqueue needs a transaction: a pg client, pool or drizzle transaction");
  // A pool: a transaction of its own, its connection always given back.
  if (isPool(tx)) return inTransaction(tx, (client) => work(clientQuery(client)));
  const candidate = tx as Partial<DrizzleLike & PgClientLike>;
  if (isFunction(candidate.execute)) {
    const driver = drizzleDriver(tx);
    if (driver) return inCallersTransaction(driver, work);
    const drizzle = tx as DrizzleLike;
    return work(async <Row>(text: string, params: unknown[] = []) => {
      const result = await drizzle.execute(drizzleSql(text, params));
      // node-postgres answers { rows }; postgres.js and others an array of rows.
      return (Array.isArray(result) ? result : (result as QueryResultLike).rows) as Row[];
    });
  }
  if (isFunction(candidate.query)) return work(clientQuery(tx as PgClientLike));
  throw new TypeError("enqueue needs a transaction: a pg client, pool or drizzle transaction");
}
