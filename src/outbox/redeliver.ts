import { and, eq, inArray, sql } from "drizzle-orm";
import type { Database } from "../db/client.js";
import { webhookDeliveries } from "../db/schema.js";
import type { DeliveryRow } from "./delivery-queries.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";
import { DeliveryInFlightError, DeliveryNotFoundError } from "./errors.js";

const STATUS_SQL = `select status from webhook_outbox.webhook_deliveries where id = $1 and ($2::uuid is null or tenant_id = $2)`;

/**
 * Queues a finished (succeeded or failed) delivery again with a fresh attempt budget and returns
 * the row as this left it (a worker may claim it the moment it commits).
 * `tenantId` scopes it to one tenant (the HTTP API); undefined is the operator's CLI.
 * Throws DeliveryNotFoundError, or DeliveryInFlightError while it is pending or delivering.
 *
 * The same row gets as many further attempts as its frozen schedule holds (and as many
 * interruptions as a new delivery may have). Attempt numbers keep
 * counting up (nextAfterFailure indexes the schedule from max_attempts - schedule length), so the
 * earlier attempts stay as they were and new ones append. The status guard makes this atomic
 * against a worker: a delivery in flight is never touched. The NOTIFY goes out only when the update
 * happened, at the commit (redelivery is rare, so holding the notify lock through it costs nothing).
 */
export async function redeliver(database: Database, deliveryId: string, tenantId?: string): Promise<DeliveryRow> {
  const d = webhookDeliveries;
  const conditions = [eq(d.id, deliveryId), inArray(d.status, ["succeeded", "failed"])];
  if (tenantId !== undefined) conditions.push(eq(d.tenantId, tenantId));
  const row = await database.transactionDb(async (tx) => {
    const [updated] = await tx
      .update(d)
      .set({
        status: "pending",
        maxAttempts: sql`${d.attemptCount} + cardinality(${d.retryDelaysMs})`,
        // A fresh budget, and a fresh bound on interruptions with it.
        interruptions: 0,
        nextAttemptAt: sql`now()`,
        finishedAt: null,
        lockedBy: null,
        lockedUntil: null,
      })
      .where(and(...conditions))
      .returning();
    if (updated) await tx.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`);
    return updated;
  });
  if (row) return row;
  const [current] = await database.query<{ status: string }>(STATUS_SQL, [deliveryId, tenantId ?? null]);
  if (!current) throw new DeliveryNotFoundError(deliveryId);
  throw new DeliveryInFlightError(deliveryId, current.status);
}
