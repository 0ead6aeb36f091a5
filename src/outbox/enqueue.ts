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

/** Stands in for `outboxValues` in a statement that enqueues nothing this time: `outboxInsert` then writes no row. */
export const NO_OUTBOX_ROW: readonly unknown[] = Array.from({ length: 10 }, () => null);

/** The outbox row's values, in the order `outboxInsert` reads its ten parameters. */
export function outboxValues(delivery: NewDelivery): unknown[] {
  const { policy } = delivery;
  return [
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
  ];
}

/**
 * The outbox INSERT over parameters $first … $first+9 (as `outboxValues` orders them), written only
 * where `condition` holds and a payload was given (`NO_OUTBOX_ROW` writes nothing), so a larger
 * statement can enqueue as one of its steps. A second enqueue of the same (job, event) is a no-op:
 * the unique constraint keeps one delivery.
 */
export function outboxInsert(first: number, condition = "true"): string {
  const $ = (offset: number) => `$${first + offset}`;
  return `insert into webhook_deliveries
    (tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms,
     next_attempt_at)
  select ${$(0)}::uuid, ${$(1)}::uuid, ${$(2)}::text, ${$(3)}::text, ${$(4)}::jsonb, ${$(5)}::int, ${$(6)}::int[],
         ${$(7)}::int, ${$(8)}::int, now() + ${$(9)}::int * interval '1 millisecond'
  where ${condition} and ${$(4)}::jsonb is not null
  on conflict (job_id, event_type) do nothing
  returning id`;
}

const ENQUEUE_SQL = outboxInsert(1);

/**
 * Writes the outbox row inside the caller's transaction; returns its id, or undefined when the
 * (job, event) already had one. After the commit, wake the workers with `OutboxNotifier`.
 */
export async function enqueueDelivery(query: Query, delivery: NewDelivery): Promise<string | undefined> {
  const [row] = await query<{ id: string }>(ENQUEUE_SQL, outboxValues(delivery), "outbox_enqueue");
  return row?.id;
}
