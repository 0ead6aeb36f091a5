import type { Database } from "../db/client.js";
import { AppError, notFound } from "../errors.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";

export interface RedeliveredDelivery {
  id: string;
  status: "pending";
  attemptCount: number;
  maxAttempts: number;
}

/*
 * The same row gets a fresh budget: as many further attempts as its frozen schedule holds.
 * Attempt numbers keep counting up (nextAfterFailure indexes the schedule from
 * max_attempts - schedule length), so the earlier attempts stay as they were and new ones append.
 * The status guard makes this atomic against a worker: a delivery in flight is never touched.
 * The NOTIFY is sent only when the update happened, and is delivered when the statement commits
 * (in the statement: redelivery is rare, so holding the notify lock through its commit costs nothing).
 */
const REDELIVER_SQL = `
with redelivered as (
  update webhook_deliveries
  set status = 'pending',
      max_attempts = attempt_count + cardinality(retry_delays_ms),
      next_attempt_at = now(),
      finished_at = null,
      locked_by = null,
      locked_until = null
  where id = $1 and ($2::uuid is null or tenant_id = $2) and status in ('succeeded', 'failed')
  returning id, attempt_count, max_attempts
)
select r.id, r.attempt_count, r.max_attempts, pg_notify('${OUTBOX_CHANNEL}', '') is not null as notified
from redelivered r`;

const STATUS_SQL = `select status from webhook_deliveries where id = $1 and ($2::uuid is null or tenant_id = $2)`;

/**
 * Queues a finished (succeeded or failed) delivery again with a fresh attempt budget.
 * `tenantId` scopes it to one tenant (the HTTP API); undefined is the operator's CLI.
 * Throws 404 DELIVERY_NOT_FOUND, or 409 DELIVERY_IN_FLIGHT while it is pending or delivering.
 */
export async function redeliver(database: Database, deliveryId: string, tenantId?: string): Promise<RedeliveredDelivery> {
  const [row] = await database.query<{ id: string; attempt_count: number; max_attempts: number }>(REDELIVER_SQL, [
    deliveryId,
    tenantId ?? null,
  ]);
  if (row) return { id: row.id, status: "pending", attemptCount: row.attempt_count, maxAttempts: row.max_attempts };
  const [current] = await database.query<{ status: string }>(STATUS_SQL, [deliveryId, tenantId ?? null]);
  if (!current) throw notFound("delivery");
  throw new AppError(
    409,
    "DELIVERY_IN_FLIGHT",
    `delivery ${deliveryId} is ${current.status}; it can be redelivered once it has succeeded or failed`,
  );
}
