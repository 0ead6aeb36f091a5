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

/** The outbox rows' values as ten parallel arrays, in the order `outboxInsert` reads its parameters. */
export function outboxColumns(deliveries: NewDelivery[]): unknown[][] {
  const column = <T>(pick: (delivery: NewDelivery) => T) => deliveries.map(pick);
  return [
    column((d) => d.tenantId),
    column((d) => d.jobId),
    column((d) => d.eventType),
    column((d) => d.url),
    column((d) => JSON.stringify(d.payload)),
    column((d) => d.policy.retryDelaysMs.length),
    // An array per row: Postgres has no array of arrays of differing lengths, so each travels as its literal.
    column((d) => `{${d.policy.retryDelaysMs.join(",")}}`),
    column((d) => d.policy.timeoutMs),
    column((d) => d.policy.connectTimeoutMs),
    column((d) => d.policy.retryDelaysMs[0] ?? 0),
  ];
}

/**
 * The outbox INSERT of one row per element of parameters $first … $first+9 (as `outboxColumns`
 * builds them), written only for rows where `condition` holds (over `o.job_id` and the other
 * columns), so a larger statement can enqueue as one of its steps. A second enqueue of the same
 * (job, event) is a no-op: the unique constraint keeps one delivery.
 */
export function outboxInsert(first: number, condition = "true"): string {
  const $ = (offset: number) => `$${first + offset}`;
  return `insert into webhook_outbox.webhook_deliveries
    (tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms,
     next_attempt_at)
  select o.tenant_id, o.job_id, o.event_type, o.url, o.payload::jsonb, o.max_attempts, o.retry_delays_ms::int[],
         o.timeout_ms, o.connect_timeout_ms, now() + o.first_delay_ms * interval '1 millisecond'
  from unnest(${$(0)}::uuid[], ${$(1)}::uuid[], ${$(2)}::text[], ${$(3)}::text[], ${$(4)}::text[], ${$(5)}::int[],
              ${$(6)}::text[], ${$(7)}::int[], ${$(8)}::int[], ${$(9)}::int[])
    as o(tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms,
         first_delay_ms)
  where ${condition}
  on conflict (job_id, event_type) do nothing
  returning id, job_id`;
}

const ENQUEUE_SQL = outboxInsert(1);

/**
 * Writes the outbox row inside the caller's transaction; returns its id, or undefined when the
 * (job, event) already had one. After the commit, wake the workers with `OutboxNotifier`.
 */
export async function enqueueDelivery(query: Query, delivery: NewDelivery): Promise<string | undefined> {
  const [row] = await query<{ id: string }>(ENQUEUE_SQL, outboxColumns([delivery]), "outbox_enqueue");
  return row?.id;
}
