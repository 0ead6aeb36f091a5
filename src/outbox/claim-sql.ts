import type { Database } from "../db/client.js";
import type { AttemptOutcome, ErrorKind } from "../db/schema.js";

/*
 * Every statement of the claim loop. Each is one round trip for a whole batch and runs as a
 * named prepared statement on a server. The partial index webhook_deliveries_claim_idx
 * (next_attempt_at where status in ('pending','delivering')) serves the claim: while a delivery
 * is leased, next_attempt_at equals locked_until, so a lease that expires makes it due again.
 */

export interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  url: string;
  /** The frozen payload as Postgres prints it: the exact bytes signed and sent. */
  body: string;
  attempt_count: number;
  max_attempts: number;
  retry_delays_ms: number[];
  timeout_ms: number;
  connect_timeout_ms: number;
  /** Active signing secrets of the tenant, newest first. */
  secrets: string[] | null;
}

/** scheme://AUTHORITY/…: the destination a per-host cap counts. The same pattern runs in SQL and in JS. */
const URL_AUTHORITY_PATTERN = "^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)";
const URL_AUTHORITY = new RegExp(URL_AUTHORITY_PATTERN);

export function urlAuthority(url: string): string {
  return URL_AUTHORITY.exec(url)?.[1] ?? "";
}

export const CLAIM_SQL = `
with due as (
  select id, status as previous_status, attempt_count as previous_attempts, locked_by as previous_owner,
         locked_until as previous_lease_end, attempt_count < max_attempts as attempt_left
  from webhook_deliveries
  where status in ('pending', 'delivering') and next_attempt_at <= now()
    and (cardinality($4::text[]) = 0 or not (substring(url from '${URL_AUTHORITY_PATTERN}') = any($4::text[])))
  order by next_attempt_at
  limit $2
  for update skip locked
),
taken as (
  -- Rows are reached through "= any(array(...))", not by joining "due" alone: a generic plan
  -- guesses a LIMIT $2 at a tenth of the table and would hash-join a sequential scan of it.
  -- A row with no attempt left had its last one cut off by a dead worker: it fails instead.
  update webhook_deliveries d
  set status = case when due.attempt_left then 'delivering' else 'failed' end,
      attempt_count = case when due.attempt_left then d.attempt_count + 1 else d.attempt_count end,
      locked_by = case when due.attempt_left then $1 end,
      locked_until = case when due.attempt_left then now() + (d.timeout_ms + $3) * interval '1 millisecond' end,
      next_attempt_at = case when due.attempt_left then now() + (d.timeout_ms + $3) * interval '1 millisecond' end,
      finished_at = case when due.attempt_left then d.finished_at else now() end,
      last_error = case when due.attempt_left then d.last_error
                        else 'last attempt interrupted: its worker stopped before recording an outcome' end
  from due
  where d.id = any(array(select id from due)) and d.id = due.id
  returning d.id, d.tenant_id, d.url, d.payload::text as body, d.status, d.attempt_count, d.max_attempts,
            d.retry_delays_ms, d.timeout_ms, d.connect_timeout_ms,
            due.previous_status, due.previous_attempts, due.previous_owner, due.previous_lease_end
),
interrupted as (
  -- A lease that ran out with the attempt unrecorded: that attempt is written down as interrupted.
  insert into webhook_delivery_attempts
    (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, error_kind, error_message, outcome)
  select x.id, x.previous_attempts, x.previous_owner, x.started_at, now(),
         greatest(0, extract(epoch from now() - x.started_at) * 1000)::int,
         'other', 'worker stopped before recording an outcome; retried after its lease expired', 'interrupted'
  from (
    select id, previous_attempts, previous_owner,
           previous_lease_end - (timeout_ms + $3) * interval '1 millisecond' as started_at
    from taken where previous_status = 'delivering'
  ) x
  on conflict (delivery_id, attempt_number) do nothing
),
claimed as (
  select * from taken where status = 'delivering'
),
tenant_secrets as (
  -- Once per tenant in the batch, not once per row.
  select t.tenant_id,
         (select array_agg(s.secret order by s.created_at desc)
          from signing_secrets s
          where s.tenant_id = t.tenant_id and (s.expires_at is null or s.expires_at > now())) as secrets
  from (select distinct tenant_id from claimed) t
)
select c.id, c.tenant_id, c.url, c.body, c.attempt_count, c.max_attempts, c.retry_delays_ms, c.timeout_ms,
       c.connect_timeout_ms, k.secrets
from claimed c
join tenant_secrets k on k.tenant_id = c.tenant_id`;

/** Claims up to `limit` due deliveries, skipping destinations this worker already has at its cap. */
export async function claimDue(
  database: Database,
  workerId: string,
  limit: number,
  leaseMarginMs: number,
  saturatedAuthorities: string[] = [],
): Promise<ClaimedDelivery[]> {
  return database.query<ClaimedDelivery>(
    CLAIM_SQL,
    [workerId, limit, leaseMarginMs, saturatedAuthorities],
    "outbox_claim",
  );
}

export interface AttemptRecord {
  deliveryId: string;
  attemptNumber: number;
  outcome: AttemptOutcome;
  /** Where the delivery goes next: pending (due after retryDelayMs), succeeded or failed. */
  deliveryStatus: "pending" | "succeeded" | "failed";
  retryDelayMs: number | null;
  responseStatus: number | null;
  responseBodyExcerpt: string | null;
  errorKind: ErrorKind | null;
  errorMessage: string | null;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
}

export const RECORD_SQL = `
with result as (
  select *
  from unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[], $9::text[],
              $10::text[], $11::timestamptz[], $12::timestamptz[], $13::int[])
    as r(id, attempt_number, outcome, delivery_status, retry_delay_ms, response_status, response_body_excerpt,
         error_kind, error_message, started_at, finished_at, duration_ms)
),
settled as (
  -- Guarded by the claim: a worker whose lease expired and was taken over changes nothing.
  update webhook_deliveries d
  set status = r.delivery_status,
      next_attempt_at = case when r.delivery_status = 'pending' then now() + r.retry_delay_ms * interval '1 millisecond' end,
      locked_by = null,
      locked_until = null,
      last_response_status = r.response_status,
      last_error = r.error_message,
      finished_at = case when r.delivery_status = 'pending' then null else now() end
  from result r
  where d.id = r.id and d.status = 'delivering' and d.locked_by = $1 and d.attempt_count = r.attempt_number
  returning d.id
)
insert into webhook_delivery_attempts
  (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, response_status,
   response_body_excerpt, error_kind, error_message, outcome)
select r.id, r.attempt_number, $1, r.started_at, r.finished_at, r.duration_ms, r.response_status,
       r.response_body_excerpt, r.error_kind, r.error_message, r.outcome
from result r
join settled s on s.id = r.id
on conflict (delivery_id, attempt_number) do nothing
returning delivery_id`;

/** Records a batch of finished attempts and settles their deliveries; returns the ids it still owned. */
export async function recordAttempts(database: Database, workerId: string, records: AttemptRecord[]): Promise<string[]> {
  const column = <T>(pick: (record: AttemptRecord) => T) => records.map(pick);
  const rows = await database.query<{ delivery_id: string }>(
    RECORD_SQL,
    [
      workerId,
      column((r) => r.deliveryId),
      column((r) => r.attemptNumber),
      column((r) => r.outcome),
      column((r) => r.deliveryStatus),
      column((r) => r.retryDelayMs),
      column((r) => r.responseStatus),
      column((r) => r.responseBodyExcerpt),
      column((r) => r.errorKind),
      column((r) => r.errorMessage),
      column((r) => r.startedAt.toISOString()),
      column((r) => r.finishedAt.toISOString()),
      column((r) => r.durationMs),
    ],
    "outbox_record",
  );
  return rows.map((row) => row.delivery_id);
}

export const RELEASE_SQL = `
update webhook_deliveries
set status = 'pending', attempt_count = attempt_count - 1, locked_by = null, locked_until = null, next_attempt_at = now()
where id = any($2::uuid[]) and locked_by = $1 and status = 'delivering'`;

/** Gives back claimed deliveries whose attempt never started, without spending an attempt. */
export async function releaseClaims(database: Database, workerId: string, deliveryIds: string[]): Promise<void> {
  if (deliveryIds.length > 0) await database.query(RELEASE_SQL, [workerId, deliveryIds], "outbox_release");
}
