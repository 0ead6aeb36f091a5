import type pg from "pg";
import { openDatabaseLike, type Database, type SessionSettings } from "../../db/client.js";

/**
 * The claim loop's statements (claim, record and release: src/outbox/sql/) run on connections of
 * their own, set to keep one generic plan per prepared statement. Postgres would otherwise plan the
 * claim afresh on every execution: its generic plan, which cannot see the batch size, is never
 * estimated cheaper than a custom one, and a custom plan of the claim costs the server about 1.5 ms
 * of CPU per batch. Each of these statements' generic plans reaches webhook_deliveries by index
 * whatever the table's size (test/claim-plans.test.ts). Other statements keep Postgres's choice: a
 * generic plan for a listing's `LIMIT $n` could be a poor one.
 */
export const CLAIM_LOOP_SESSION: SessionSettings = { plan_cache_mode: "force_generic_plan" };

/** Statements the claim loop has in flight at once, at most: a claim, a record and a release. */
export const CLAIM_LOOP_CONNECTIONS = 3;

/** What these connections are called in pg_stat_activity, unless the connection names itself (application_name). */
export const CLAIM_LOOP_APPLICATION_NAME = "webhook-outbox claim loop";

/** The claim loop's own pool of CLAIM_LOOP_CONNECTIONS, connecting as `connection` does. */
export function openClaimLoopDatabase(connection: pg.ClientConfig, onError?: (error: Error) => void): Database {
  return openDatabaseLike(
    { ...connection, fallback_application_name: CLAIM_LOOP_APPLICATION_NAME },
    { poolSize: CLAIM_LOOP_CONNECTIONS, sessionSettings: CLAIM_LOOP_SESSION, onError },
  );
}
