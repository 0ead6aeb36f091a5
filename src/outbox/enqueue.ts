import type { Query } from "../db/client.js";
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

// One round trip: the insert, and the NOTIFY only when a row was actually written.
const ENQUEUE_SQL = `
with inserted as (
  insert into webhook_deliveries
    (tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms,
     next_attempt_at)
  values ($1, $2, $3, $4, $5::jsonb, $6, $7::int[], $8, $9, now() + $10 * interval '1 millisecond')
  on conflict (job_id, event_type) do nothing
  returning id
)
select id, pg_notify('${OUTBOX_CHANNEL}', '') from inserted`;

/**
 * Writes the outbox row inside the caller's transaction and wakes the workers when it commits.
 * A second enqueue of the same (job, event) is a no-op: the unique constraint keeps one delivery.
 * NOTIFY with an identical payload is folded into one per transaction by Postgres.
 */
export async function enqueueDelivery(query: Query, delivery: NewDelivery): Promise<string | undefined> {
  const { policy } = delivery;
  const [row] = await query<{ id: string }>(
    ENQUEUE_SQL,
    [
      delivery.tenantId,
      delivery.jobId,
      delivery.eventType,
      delivery.url,
      JSON.stringify(delivery.payload),
      policy.retryDelaysMs.length,
      policy.retryDelaysMs,
      policy.timeoutMs,
      policy.connectTimeoutMs,
      policy.retryDelaysMs[0] ?? 0,
    ],
    "outbox_enqueue",
  );
  return row?.id;
}
