import type { Query } from "../db/client.js";
import { destinationIdSql, destinationSql } from "../db/schema.js";
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
 * The outbox insert as two steps of a larger statement (WITH items), one delivery per row of
 * `source`: a query giving tenant_id, job_id, event_type, url, payload (JSON), idempotency_key,
 * retry_delays_ms (int[] or its literal), timeout_ms and connect_timeout_ms. `<name>_destinations`
 * writes each delivery's destination row if it has none yet (ON CONFLICT DO NOTHING: no lock and
 * no write when it exists; the delivery references it by the id derived from tenant and URL);
 * `<name>` writes the deliveries. With `destinationsExist` (the source's URLs are known to have
 * their destination rows, as operational webhooks' do) the first step is left out. A delivery
 * that would be a second one of its (job, event type)
 * or (tenant, idempotency key) is not written; `returning id, job_id` names those that were.
 */
export function deliveriesInsertFrom(name: string, source: string, options: { destinationsExist?: boolean } = {}): string {
  const destinations = options.destinationsExist
    ? ""
    : `${name}_destinations as (
  insert into webhook_outbox.destinations (id, tenant_id, url)
  select ${destinationIdSql("d.tenant_id", "d.url")}, d.tenant_id, d.url
  from (select distinct s.tenant_id, s.url from (${source}) s) d
  on conflict do nothing
), `;
  return `${destinations}${name} as (
  insert into webhook_outbox.webhook_deliveries
    (tenant_id, job_id, event_type, url, payload, idempotency_key, max_attempts, retry_delays_ms, timeout_ms,
     connect_timeout_ms, next_attempt_at, destination, destination_id)
  select s.tenant_id, s.job_id, s.event_type, s.url, s.payload::jsonb, s.idempotency_key,
         cardinality(s.retry_delays_ms::int[]), s.retry_delays_ms::int[], s.timeout_ms, s.connect_timeout_ms,
         now() + (s.retry_delays_ms::int[])[1] * interval '1 millisecond',
         ${destinationSql("s.url")}, ${destinationIdSql("s.tenant_id", "s.url")}
  from (${source}) s
  on conflict do nothing
  returning id, job_id
)`;
}

/**
 * `deliveriesInsertFrom` over the elements of `deliveryValues`'s arrays, their parameters named in
 * `params`, so that a larger statement can enqueue as one of its steps (the job API writes a job's
 * status and its webhook in one statement). Only rows where `condition` holds are written (over
 * `o.job_id` and the other columns).
 */
export function deliveriesInsert(params: StatementParams, condition = "true", name = "inserted"): string {
  const $ = (column: string) => params.ref(`delivery_${column}`);
  return deliveriesInsertFrom(
    name,
    `select o.* from unnest(${$("tenant_id")}::uuid[], ${$("job_id")}::uuid[], ${$("event_type")}::text[],
                            ${$("url")}::text[], ${$("payload")}::text[], ${$("idempotency_key")}::text[],
                            ${$("retry_delays_ms")}::text[], ${$("timeout_ms")}::int[], ${$("connect_timeout_ms")}::int[])
      as o(tenant_id, job_id, event_type, url, payload, idempotency_key, retry_delays_ms, timeout_ms, connect_timeout_ms)
    where ${condition}`,
  );
}

const ENQUEUE_PARAMS = new StatementParams();
const ENQUEUE_SQL = `with ${deliveriesInsert(ENQUEUE_PARAMS)} select id from inserted`;

/**
 * Writes one delivery inside the caller's transaction; returns its id, or undefined when its (job,
 * event) or (tenant, idempotency key) already had one. After the commit, wake the workers with
 * `OutboxNotifier`.
 */
export async function enqueueDelivery(query: Query, delivery: NewDelivery): Promise<string | undefined> {
  const [row] = await query<{ id: string }>(ENQUEUE_SQL, ENQUEUE_PARAMS.values(deliveryValues([delivery])), "outbox_enqueue");
  return row?.id;
}

/*
 * One delivery in the caller's transaction, as the library and the SQL API enqueue: nothing is
 * written for an unknown tenant (the statement reads the tenant row, FOR KEY SHARE so it cannot be
 * deleted before the commit, and inserts from it); a second delivery of the same (tenant,
 * idempotency key) is not written, and the NOTIFY that wakes the workers is sent only for a new
 * row. The delivery's destination row is written beside it when it has none (see deliveriesInsertFrom).
 * Inside the caller's transaction, Postgres delivers that NOTIFY at the commit, and drops it
 * with a rollback. (The job API sends its NOTIFY after its commits instead: see notifier.ts.)
 */
const ENQUEUE_ONE_SQL = `
with tenant as (
  select id from webhook_outbox.tenants where id = $1::uuid for key share
), destination as (
  insert into webhook_outbox.destinations (id, tenant_id, url)
  select ${destinationIdSql("t.id", "$3::text")}, t.id, $3 from tenant t
  on conflict do nothing
), inserted as (
  insert into webhook_outbox.webhook_deliveries
    (tenant_id, event_type, url, payload, idempotency_key, max_attempts, retry_delays_ms, timeout_ms,
     connect_timeout_ms, next_attempt_at, destination, destination_id)
  select t.id, $2, $3, $4::jsonb, $5, cardinality($6::int[]), $6::int[], $7, $8,
         now() + ($6::int[])[1] * interval '1 millisecond', ${destinationSql("$3::text")}, ${destinationIdSql("t.id", "$3::text")}
  from tenant t
  on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
  returning id
), woken as (
  select pg_notify('${OUTBOX_CHANNEL}', '') from inserted
)
select (select id from tenant) as tenant_id, (select id from inserted) as delivery_id,
       (select count(*) from woken)::int as woken`;

const KEYED_SQL = `select id from webhook_outbox.webhook_deliveries where tenant_id = $1::uuid and idempotency_key = $2`;

export interface Enqueued {
  /** The delivery's id: the `webhook-id` of every attempt. */
  deliveryId: string;
  /** False when the idempotency key named a delivery enqueued before: nothing was written. */
  created: boolean;
}

/**
 * Enqueues one admitted delivery (see admission.ts) with its payload already as JSON text; returns
 * its id, or the id of the delivery its idempotency key already names. Undefined: no such tenant.
 */
export async function enqueueOne(
  query: Query,
  delivery: Omit<NewDelivery, "payload" | "jobId"> & { payloadJson: string },
): Promise<Enqueued | undefined> {
  const params = [
    delivery.tenantId,
    delivery.eventType,
    delivery.url,
    delivery.payloadJson,
    delivery.idempotencyKey ?? null,
    `{${delivery.policy.retryDelaysMs.join(",")}}`,
    delivery.policy.timeoutMs,
    delivery.policy.connectTimeoutMs,
  ];
  // A conflicting row is found by the next statement, which (under READ COMMITTED) sees the commit
  // the insert waited for. It can only be missing if it was deleted since (retention): then insert.
  for (let round = 0; round < 3; round++) {
    const [row] = await query<{ tenant_id: string | null; delivery_id: string | null }>(ENQUEUE_ONE_SQL, params);
    if (!row?.tenant_id) return undefined;
    if (row.delivery_id) return { deliveryId: row.delivery_id, created: true };
    const [existing] = await query<{ id: string }>(KEYED_SQL, [delivery.tenantId, delivery.idempotencyKey]);
    if (existing) return { deliveryId: existing.id, created: false };
  }
  throw new Error(`the delivery of idempotency key ${JSON.stringify(delivery.idempotencyKey)} kept vanishing between statements`);
}
