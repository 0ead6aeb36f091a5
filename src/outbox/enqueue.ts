import { sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { webhookDeliveries } from "../db/schema.js";
import type { DeliveryPolicy } from "./policy.js";

export const OUTBOX_CHANNEL = "webhook_outbox";

export interface NewDelivery {
  tenantId: string;
  jobId: string;
  eventType: string;
  url: string;
  payload: unknown;
  policy: DeliveryPolicy;
}

/**
 * Writes the outbox row inside the caller's transaction and wakes the workers when it commits.
 * A second enqueue of the same (job, event) is a no-op: the unique constraint keeps one delivery.
 * NOTIFY with an identical payload is folded into one per transaction by Postgres.
 */
export async function enqueueDelivery(tx: Tx, delivery: NewDelivery): Promise<string | undefined> {
  const firstDelayMs = delivery.policy.retryDelaysMs[0] ?? 0;
  const [row] = await tx
    .insert(webhookDeliveries)
    .values({
      tenantId: delivery.tenantId,
      jobId: delivery.jobId,
      eventType: delivery.eventType,
      url: delivery.url,
      payload: delivery.payload,
      maxAttempts: delivery.policy.retryDelaysMs.length,
      retryDelaysMs: delivery.policy.retryDelaysMs,
      timeoutMs: delivery.policy.timeoutMs,
      connectTimeoutMs: delivery.policy.connectTimeoutMs,
      nextAttemptAt: sql`now() + ${firstDelayMs} * interval '1 millisecond'`,
    })
    .onConflictDoNothing({ target: [webhookDeliveries.jobId, webhookDeliveries.eventType] })
    .returning({ id: webhookDeliveries.id });
  if (row) await tx.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`);
  return row?.id;
}
