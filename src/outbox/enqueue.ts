import type { Query } from "../db/client.js";
import { StatementParams } from "../db/statement-params.js";
import type { DeliveryPolicy } from "./policy.js";

/** The NOTIFY channel that wakes the workers when deliveries are enqueued. */
export const OUTBOX_CHANNEL = "webhook_outbox";

/** One webhook to send: what, where, for whom, and how it is retried. */
export interface NewDelivery {
  tenantId: string;
  url: string;
  eventType: string;
  /** A JSON value; frozen at enqueue, it is the body of every attempt. */
  payload: unknown;
  policy: DeliveryPolicy;
  /** What produced it, when the job API did: at most one delivery per (job, event type). */
  jobId?: string | undefined;
  /** At most one delivery per (tenant, key): enqueueing it again changes nothing. */
  idempotencyKey?: string | undefined;
}

/** The values of `deliveriesInsert`'s parameters, one array element per delivery, by parameter name. */
export function deliveryValues(deliveries: NewDelivery[]): Record<string, unknown[]> {
  const column = <T>(pick: (delivery: NewDelivery) => T) => deliveries.map(pick);
  return {
    delivery_tenant_id: column((d) => d.tenantId),
    delivery_job_id: column((d) => d.jobId ?? null),
    delivery_event_type: column((d) => d.eventType),
    delivery_url: column((d) => d.url),
    delivery_payload: column((d) => JSON.stringify(d.payload)),
    delivery_idempotency_key: column((d) => d.idempotencyKey ?? null),
    // An array per row: Postgres has no array of arrays of differing lengths, so each travels as its literal.
    delivery_retry_delays_ms: column((d) => `{${d.policy.retryDelaysMs.join(",")}}`),
    delivery_timeout_ms: column((d) => d.policy.timeoutMs),
    delivery_connect_timeout_ms: column((d) => d.policy.connectTimeoutMs),
  };
}

/**
 * The INSERT of one delivery per element of `deliveryValues`'s arrays, its parameters named in
 * `params`, so that a larger statement can enqueue as one of its steps (the job API writes a job's
 * status and its webhook in one statement). Only rows where `condition` holds are written (over
 * `o.job_id` and the other columns). A delivery that would be a second one of its (job, event type)
 * or (tenant, idempotency key) is not written; `returning id, job_id` names those that were.
 */
export function deliveriesInsert(params: StatementParams, condition = "true"): string {
  const $ = (name: string) => params.ref(`delivery_${name}`);
  return `insert into webhook_outbox.webhook_deliveries
    (tenant_id, job_id, event_type, url, payload, idempotency_key, max_attempts, retry_delays_ms, timeout_ms,
     connect_timeout_ms, next_attempt_at)
  select o.tenant_id, o.job_id, o.event_type, o.url, o.payload::jsonb, o.idempotency_key,
         cardinality(o.retry_delays_ms::int[]), o.retry_delays_ms::int[], o.timeout_ms, o.connect_timeout_ms,
         now() + (o.retry_delays_ms::int[])[1] * interval '1 millisecond'
  from unnest(${$("tenant_id")}::uuid[], ${$("job_id")}::uuid[], ${$("event_type")}::text[], ${$("url")}::text[],
              ${$("payload")}::text[], ${$("idempotency_key")}::text[], ${$("retry_delays_ms")}::text[],
              ${$("timeout_ms")}::int[], ${$("connect_timeout_ms")}::int[])
    as o(tenant_id, job_id, event_type, url, payload, idempotency_key, retry_delays_ms, timeout_ms, connect_timeout_ms)
  where ${condition}
  on conflict do nothing
  returning id, job_id`;
}

const ENQUEUE_PARAMS = new StatementParams();
const ENQUEUE_SQL = deliveriesInsert(ENQUEUE_PARAMS);

/**
 * Writes one delivery inside the caller's transaction; returns its id, or undefined when its (job,
 * event) or (tenant, idempotency key) already had one. After the commit, wake the workers with
 * `OutboxNotifier`.
 */
export async function enqueueDelivery(query: Query, delivery: NewDelivery): Promise<string | undefined> {
  const [row] = await query<{ id: string }>(ENQUEUE_SQL, ENQUEUE_PARAMS.values(deliveryValues([delivery])), "outbox_enqueue");
  return row?.id;
}
