import { and, eq, lt, or } from "drizzle-orm";
import { newestFirst } from "../db/newest-first.js";
import type { Database } from "../db/client.js";
import { destinations, type DestinationState } from "../db/schema.js";
import { DestinationNotFoundError } from "./errors.js";
import { deliveriesInsertFrom, OUTBOX_CHANNEL } from "./enqueue.js";
import { DESTINATION_EVENT_DATA, operationalSource } from "./operational-webhooks.js";

export type DestinationRow = typeof destinations.$inferSelect;

export interface DestinationListQuery {
  /** One tenant's destinations; undefined: every tenant's (the operator's CLI). */
  tenantId?: string | undefined;
  state?: DestinationState | undefined;
  limit: number;
  /** Keyset position: the (created_at, id) of the previous page's last row. */
  after?: { createdAt: Date; id: string } | undefined;
}

/** A page of destinations, newest first, through destinations_tenant_created_idx. */
export async function listDestinations(
  database: Database,
  query: DestinationListQuery,
): Promise<{ destinations: DestinationRow[]; hasMore: boolean }> {
  const d = destinations;
  const conditions = [];
  if (query.tenantId !== undefined) conditions.push(eq(d.tenantId, query.tenantId));
  if (query.state) conditions.push(eq(d.state, query.state));
  if (query.after) {
    conditions.push(or(lt(d.createdAt, query.after.createdAt), and(eq(d.createdAt, query.after.createdAt), lt(d.id, query.after.id))));
  }
  const rows = await database.db
    .select()
    .from(d)
    .where(and(...conditions))
    .orderBy(newestFirst(d.createdAt), newestFirst(d.id))
    .limit(query.limit + 1);
  return { destinations: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
}

interface EnabledRecord {
  id: string;
  tenant_id: string;
  url: string;
  state: DestinationState;
  consecutive_failures: number;
  first_failure_at: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  open_until: Date | null;
  disabled_at: Date | null;
  disabled_reason: DestinationRow["disabledReason"];
  created_at: Date;
  updated_at: Date;
  previous_state: DestinationState;
  released: number;
}

/*
 * Enabling, in one statement: the destination is healthy with its counters reset, the change is a
 * destination_events row, its parked deliveries are due at once, a destination that was not healthy
 * sends destination.recovered to the tenant's operational webhook, and the workers are woken (the
 * NOTIFY goes out at the commit, only when something was released or enqueued).
 */
const ENABLE_SQL = `
with before as (
  select id, state from webhook_outbox.destinations
  where id = $1 and ($2::uuid is null or tenant_id = $2)
  for no key update
),
enabled as (
  update webhook_outbox.destinations g
  set state = 'healthy', consecutive_failures = 0, first_failure_at = null, open_until = null, disabled_at = null,
      disabled_reason = null, updated_at = now()
  from before b
  where g.id = b.id
  returning g.*, b.state as previous_state
),
history as (
  insert into webhook_outbox.destination_events (destination_id, tenant_id, from_state, to_state, reason, consecutive_failures)
  select id, tenant_id, previous_state, 'healthy', 'enabled', 0 from enabled where previous_state <> 'healthy'
),
released as (
  update webhook_outbox.webhook_deliveries w
  set next_attempt_at = now()
  where w.destination_id = any(array(select id from enabled)) and w.status = 'pending' and w.next_attempt_at = 'infinity'
  returning w.id
),
${deliveriesInsertFrom(
  "operational",
  operationalSource(`
    select m.tenant_id, 'destination.recovered' as event_type, m.url as about_url, ${DESTINATION_EVENT_DATA} as data,
           null::text as idempotency_key
    from enabled m
    where m.previous_state <> 'healthy'`),
  { destinationsExist: true },
)}
select e.id, e.tenant_id, e.url, e.state, e.consecutive_failures, e.first_failure_at, e.last_success_at,
       e.last_failure_at, e.open_until, e.disabled_at, e.disabled_reason, e.created_at, e.updated_at, e.previous_state,
       (select count(*) from released)::int as released
from enabled e
left join lateral (
  select pg_notify('${OUTBOX_CHANNEL}', '') where exists (select from released) or exists (select from operational)
) n on true`;

export interface EnabledDestination {
  destination: DestinationRow;
  previousState: DestinationState;
  /** Parked deliveries made due at once. */
  released: number;
}

/**
 * Re-enables a destination: healthy, counters reset, its waiting (parked) deliveries due at once.
 * `tenantId` scopes it to one tenant (the HTTP API); undefined is the operator's CLI.
 * Throws DestinationNotFoundError.
 */
export async function enableDestination(database: Database, destinationId: string, tenantId?: string): Promise<EnabledDestination> {
  const [row] = await database.query<EnabledRecord>(ENABLE_SQL, [destinationId, tenantId ?? null], "destination_enable");
  if (!row) throw new DestinationNotFoundError(destinationId);
  return {
    destination: {
      id: row.id,
      tenantId: row.tenant_id,
      url: row.url,
      state: row.state,
      consecutiveFailures: row.consecutive_failures,
      firstFailureAt: row.first_failure_at,
      lastSuccessAt: row.last_success_at,
      lastFailureAt: row.last_failure_at,
      openUntil: row.open_until,
      disabledAt: row.disabled_at,
      disabledReason: row.disabled_reason,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    },
    previousState: row.previous_state,
    released: row.released,
  };
}
