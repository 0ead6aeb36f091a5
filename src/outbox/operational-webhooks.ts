import type { Database } from "../db/client.js";
import { destinationIdSql } from "../db/schema.js";
import type { DeliveryPolicy } from "./policy.js";

/**
 * What a tenant hears about its own deliveries, at the URL it set: signed with its secret and
 * delivered by the outbox like every webhook. Never about themselves: a delivery of one of these
 * events produces none, and the operational URL's own destination produces none.
 */
export const OPERATIONAL_EVENT_TYPES = ["delivery.exhausted", "destination.disabled", "destination.recovered"] as const;
export type OperationalEventType = (typeof OPERATIONAL_EVENT_TYPES)[number];

/** The SQL list of the operational event types, for `event_type <> all (...)`. */
export const OPERATIONAL_EVENT_TYPES_SQL = `'{${OPERATIONAL_EVENT_TYPES.join(",")}}'::text[]`;

/**
 * The `data` of a destination.disabled or destination.recovered notice, from a row `m` with the
 * destination's id, url, state, previous_state, disabled_reason, disabled_at, consecutive_failures,
 * first_failure_at and last_failure_at.
 */
export const DESTINATION_EVENT_DATA = `jsonb_build_object(
  'destinationId', m.id, 'url', m.url, 'state', m.state, 'previousState', m.previous_state,
  'disabledReason', m.disabled_reason, 'disabledAt', m.disabled_at, 'consecutiveFailures', m.consecutive_failures,
  'firstFailureAt', m.first_failure_at, 'lastFailureAt', m.last_failure_at)`;

export interface OperationalWebhook {
  tenantId: string;
  url: string;
  /** The policy its deliveries freeze, as configured when the URL was set. */
  policy: DeliveryPolicy;
  createdAt: Date;
  updatedAt: Date;
}

interface OperationalWebhookRecord {
  tenant_id: string;
  url: string;
  retry_delays_ms: number[];
  timeout_ms: number;
  connect_timeout_ms: number;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = "tenant_id, url, retry_delays_ms, timeout_ms, connect_timeout_ms, created_at, updated_at";

function toWebhook(row: OperationalWebhookRecord): OperationalWebhook {
  return {
    tenantId: row.tenant_id,
    url: row.url,
    policy: { retryDelaysMs: row.retry_delays_ms, timeoutMs: row.timeout_ms, connectTimeoutMs: row.connect_timeout_ms },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

// The URL's destination row is written beside it, so the record statement's operational deliveries
// reference a destination that exists.
const SET_SQL = `
with destination as (
  insert into webhook_outbox.destinations (id, tenant_id, url)
  values (${destinationIdSql("$1::uuid", "$2::text")}, $1, $2) on conflict do nothing
)
insert into webhook_outbox.operational_webhooks (tenant_id, url, retry_delays_ms, timeout_ms, connect_timeout_ms)
values ($1, $2, $3::int[], $4, $5)
on conflict (tenant_id) do update
set url = excluded.url, retry_delays_ms = excluded.retry_delays_ms, timeout_ms = excluded.timeout_ms,
    connect_timeout_ms = excluded.connect_timeout_ms, updated_at = now()
returning ${COLUMNS}`;

/** Sets (or replaces) where the tenant's operational webhooks go; the URL has been vetted by the caller. */
export async function setOperationalWebhook(
  database: Pick<Database, "query">,
  tenantId: string,
  url: string,
  policy: DeliveryPolicy,
): Promise<OperationalWebhook> {
  const [row] = await database.query<OperationalWebhookRecord>(
    SET_SQL,
    [tenantId, url, policy.retryDelaysMs, policy.timeoutMs, policy.connectTimeoutMs],
    "operational_webhook_set",
  );
  if (!row) throw new Error(`the operational webhook of tenant ${tenantId} was not written`);
  return toWebhook(row);
}

export async function getOperationalWebhook(
  database: Pick<Database, "query">,
  tenantId: string,
): Promise<OperationalWebhook | undefined> {
  const [row] = await database.query<OperationalWebhookRecord>(
    `select ${COLUMNS} from webhook_outbox.operational_webhooks where tenant_id = $1`,
    [tenantId],
  );
  return row && toWebhook(row);
}

/** Stops the tenant's operational webhooks; deliveries already enqueued still go. True when one was set. */
export async function deleteOperationalWebhook(database: Pick<Database, "query">, tenantId: string): Promise<boolean> {
  const rows = await database.query<{ tenant_id: string }>(
    "delete from webhook_outbox.operational_webhooks where tenant_id = $1 returning tenant_id",
    [tenantId],
  );
  return rows.length > 0;
}

/**
 * The operational events a statement raises, as the source of an outbox insert
 * (`deliveriesInsertFrom`, with `destinationsExist`: setting the URL wrote its destination row): `notices` is a query giving tenant_id, event_type, about_url (the
 * destination URL a destination event is about, else null), data (jsonb) and idempotency_key. Each
 * goes to its tenant's operational URL under the policy frozen there, as a Standard Webhooks body
 * {type, timestamp, data}; a tenant without one hears nothing, and an event about the operational
 * URL itself is dropped.
 */
export function operationalSource(notices: string): string {
  return `select n.tenant_id, null::uuid as job_id, n.event_type, w.url,
         jsonb_build_object('type', n.event_type, 'timestamp', now(), 'data', n.data) as payload,
         n.idempotency_key, w.retry_delays_ms, w.timeout_ms, w.connect_timeout_ms
  from (${notices}) n
  join webhook_outbox.operational_webhooks w on w.tenant_id = n.tenant_id
  where n.about_url is distinct from w.url`;
}
