import type { Query } from "../../db/client.js";
import type { AttemptOutcome, DestinationState, ErrorKind } from "../../db/schema.js";
import { deliveriesInsertFrom, OUTBOX_CHANNEL } from "../enqueue.js";
import { DESTINATION_EVENT_DATA, OPERATIONAL_EVENT_TYPES_SQL, operationalSource } from "../operational-webhooks.js";


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
  /** What the attempt says about its destination's health. */
  destinationResult: DestinationResult;
}

/**
 * What an attempt says about its destination: it answered 2xx (success), it failed with a response
 * or a network error (failure), or nothing (null: interrupted, or never sent).
 */
export type DestinationResult = "success" | "failure" | null;

/** The circuit rules the record statement applies; WorkerSettings states their defaults. */
export interface DestinationRules {
  /** Consecutive failed attempts that open a destination's circuit. */
  failureThreshold: number;
  /** How long an open circuit holds its deliveries back before one probe goes. */
  cooldownMs: number;
  /** A destination failing continuously for this long is disabled. */
  disableAfterMs: number;
}

/*
 * A batch of finished attempts in one round trip: each settles its delivery and appends its attempt
 * row, and each destination they reached moves through its circuit. An interrupted attempt (the
 * worker stopped before the receiver answered) spends nothing of the budget: max_attempts grows by
 * the attempt it took, as when a lease runs out.
 *
 * The circuit, for the attempts of this batch in the order they ended:
 *   - a success closes it (healthy) and ends the run of failures;
 *   - $15 consecutive failures open it, and any failure while open opens it for another cool-down
 *     ($16 ms; the claim lets one probe through after it);
 *   - a 410 Gone after the batch's last success, or a run of failures that began $17 ms ago or
 *     more, disables it (a disabled destination stays so until it is enabled);
 * A delivery left pending on an open destination is parked (next_attempt_at 'infinity'); when the
 * destination leaves open, its parked deliveries are due at once. Every change of state is a
 * destination_events row. A batch of successes alone to a healthy destination leaves it as it is
 * (its last_success_at is kept to the second).
 *
 * Operational webhooks, in the same statement (so never lost, never doubled): delivery.exhausted
 * for each delivery this batch fails, destination.disabled and destination.recovered for each
 * destination it disables or closes (see operational-webhooks.ts for who hears them).
 */
export const RECORD_SQL = `
with result as materialized (
  select *
  from unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[], $9::text[],
              $10::text[], $11::timestamptz[], $12::timestamptz[], $13::int[], $14::text[])
    as r(id, attempt_number, outcome, delivery_status, retry_delay_ms, response_status, response_body_excerpt,
         error_kind, error_message, started_at, finished_at, duration_ms, destination_result)
),
owned as materialized (
  -- The results this worker still owns, as this statement's snapshot sees them (not locked: the
  -- settling UPDATE re-checks the guard, so a worker whose lease expired and was taken over in the
  -- meantime settles nothing; only its destination's tally may count that result).
  select r.*, d.destination_id
  from result r join webhook_outbox.webhook_deliveries d on d.id = r.id
  where d.status = 'delivering' and d.locked_by = $1 and d.attempt_count = r.attempt_number
),
seen as (
  select o.*,
         max(o.finished_at) filter (where o.destination_result = 'success') over (partition by o.destination_id) as last_success
  from owned o
  where o.destination_result is not null
),
tally as (
  -- Per destination: its last success in the batch, and the failures after it (the run still going).
  select destination_id,
         max(last_success) as success_at,
         max(finished_at) filter (where destination_result = 'failure') as failure_at,
         count(*) filter (where destination_result = 'failure' and after_success)::int as failures,
         min(finished_at) filter (where destination_result = 'failure' and after_success) as run_began,
         coalesce(bool_or(response_status = 410 and after_success), false) as gone
  from (select *, last_success is null or finished_at > last_success as after_success from seen) s
  group by destination_id
),
moving as materialized (
  -- The destinations this batch changes. Successes alone to a healthy destination with no failure
  -- change nothing but last_success_at, which is kept to the second: those rows are neither locked
  -- nor written (every batch of a busy destination would otherwise queue on its row). Read without
  -- a lock, so a failure another worker is recording at the same instant may keep its count where
  -- this batch's success would have reset it: the next success of the destination resets it.
  select t.destination_id
  from tally t join webhook_outbox.destinations g on g.id = t.destination_id
  where t.failures > 0 or g.state <> 'healthy' or g.consecutive_failures > 0
     or g.last_success_at is null or g.last_success_at < t.success_at - interval '1 second'
),
locked as materialized (
  -- In id order, so two record statements over the same destinations cannot deadlock.
  select g.* from webhook_outbox.destinations g
  where g.id = any(array(select destination_id from moving))
  order by g.id
  for no key update
),
decided as (
  select l.id, l.tenant_id, l.url, l.state as previous_state, l.open_until, l.disabled_at, t.success_at,
         t.failure_at, t.failures, n.consecutive, n.run_began,
         case when v.disabled_reason is not null then 'disabled'
              when n.consecutive >= $15 then 'open'
              when t.success_at is not null then 'healthy'
              else l.state end as state,
         v.disabled_reason
  from locked l
  join tally t on t.destination_id = l.id
  cross join lateral (
    select case when t.success_at is not null then t.failures else l.consecutive_failures + t.failures end as consecutive,
           case when t.success_at is not null then t.run_began else coalesce(l.first_failure_at, t.run_began) end as run_began
  ) n
  cross join lateral (
    select case when l.state = 'disabled' then l.disabled_reason
                when t.gone then 'gone'
                when n.consecutive > 0 and n.run_began <= now() - $17 * interval '1 millisecond' then 'failing' end
             as disabled_reason
  ) v
),
moved as (
  update webhook_outbox.destinations g
  set state = x.state,
      consecutive_failures = x.consecutive,
      first_failure_at = case when x.consecutive > 0 then x.run_began end,
      last_success_at = greatest(g.last_success_at, x.success_at),
      last_failure_at = greatest(g.last_failure_at, x.failure_at),
      open_until = case when x.state <> 'open' then null
                        when x.previous_state <> 'open' or x.failures > 0 then now() + $16 * interval '1 millisecond'
                        else g.open_until end,
      disabled_at = case when x.state <> 'disabled' then null else coalesce(g.disabled_at, now()) end,
      disabled_reason = x.disabled_reason,
      updated_at = now()
  from decided x
  where g.id = x.id
  returning g.id, g.tenant_id, g.url, x.previous_state, g.state, g.disabled_reason, g.consecutive_failures,
            g.first_failure_at, g.last_failure_at, g.disabled_at
),
history as (
  insert into webhook_outbox.destination_events (destination_id, tenant_id, from_state, to_state, reason, consecutive_failures)
  select id, tenant_id, previous_state, state,
         case when state = 'disabled' then disabled_reason
              when state = 'healthy' then 'success'
              when previous_state = 'open' then 'probe_failed'
              else 'failures' end,
         consecutive_failures
  from moved
  where state <> previous_state
),
released as (
  -- A destination that leaves open lets its parked deliveries go (a disabled one's then fail).
  update webhook_outbox.webhook_deliveries w
  set next_attempt_at = now()
  where w.destination_id = any(array(select id from moved where previous_state = 'open' and state <> 'open'))
    and w.status = 'pending' and w.next_attempt_at = 'infinity'
  returning w.id
),
settled as (
  update webhook_outbox.webhook_deliveries d
  set status = o.delivery_status,
      next_attempt_at = case when o.delivery_status <> 'pending' then null
                             when m.state = 'open' then 'infinity'::timestamptz
                             else now() + o.retry_delay_ms * interval '1 millisecond' end,
      locked_by = null,
      locked_until = null,
      max_attempts = d.max_attempts + (o.outcome = 'interrupted' and o.delivery_status = 'pending')::int,
      interruptions = d.interruptions + (o.outcome = 'interrupted')::int,
      last_response_status = o.response_status,
      last_error = o.error_message,
      finished_at = case when o.delivery_status = 'pending' then null else now() end
  from owned o left join moved m on m.id = o.destination_id
  where d.id = o.id
    -- Guarded by the claim: a worker whose lease expired and was taken over changes nothing.
    and d.status = 'delivering' and d.locked_by = $1 and d.attempt_count = o.attempt_number
  -- Everything the attempt row and a delivery.exhausted notice need, so neither joins back.
  returning d.id, d.status, d.tenant_id, d.event_type, d.url, d.job_id, o.attempt_number, o.outcome, o.started_at,
            o.finished_at, o.duration_ms, o.response_status, o.response_body_excerpt, o.error_kind, o.error_message
),
recorded as (
  insert into webhook_outbox.webhook_delivery_attempts
    (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, response_status,
     response_body_excerpt, error_kind, error_message, outcome)
  select s.id, s.attempt_number, $1, s.started_at, s.finished_at, s.duration_ms, s.response_status,
         s.response_body_excerpt, s.error_kind, s.error_message, s.outcome
  from settled s
  on conflict (delivery_id, attempt_number) do nothing
  returning delivery_id
),
${deliveriesInsertFrom(
  "operational",
  operationalSource(`
    -- A delivery failed for good (its last attempt, or one that may not be retried), unless it is
    -- itself an operational webhook. Keyed by delivery and attempt: one notice per failure.
    select s.tenant_id, 'delivery.exhausted' as event_type, null::text as about_url,
           jsonb_build_object(
             'deliveryId', s.id, 'eventType', s.event_type, 'url', s.url, 'jobId', s.job_id, 'attempts', s.attempt_number,
             'lastError', jsonb_build_object('kind', s.error_kind, 'message', s.error_message,
                                             'responseStatus', s.response_status)) as data,
           'delivery.exhausted:' || s.id || ':' || s.attempt_number as idempotency_key
    from settled s
    where s.status = 'failed' and s.event_type <> all (${OPERATIONAL_EVENT_TYPES_SQL})
    union all
    -- A destination disabled, or closed again after being open.
    select m.tenant_id, case m.state when 'disabled' then 'destination.disabled' else 'destination.recovered' end,
           m.url, ${DESTINATION_EVENT_DATA}, null
    from moved m
    where m.state <> m.previous_state and m.state in ('disabled', 'healthy')`),
  { destinationsExist: true },
)}
select delivery_id, null::uuid as destination_id, null::text as from_state, null::text as to_state from recorded
union all
select null, id, previous_state, state from moved where state <> previous_state
union all
-- Deliveries released or enqueued: wake every worker (delivered at the commit).
select null, null, null, null
from (select pg_notify('${OUTBOX_CHANNEL}', '') from (select 1) one
      where exists (select from released) or exists (select from operational)) notified`;

/** A destination whose circuit this record moved. */
export interface DestinationTransition {
  destinationId: string;
  from: DestinationState;
  to: DestinationState;
}

export interface Recorded {
  /** The deliveries whose attempts were recorded: the ones this worker still owned. */
  owned: string[];
  transitions: DestinationTransition[];
}

/** Records a batch of finished attempts, settles their deliveries and moves their destinations' circuits. */
export async function recordAttempts(
  query: Query,
  workerId: string,
  records: AttemptRecord[],
  rules: DestinationRules,
): Promise<Recorded> {
  const column = <T>(pick: (record: AttemptRecord) => T) => records.map(pick);
  const rows = await query<{
    delivery_id: string | null;
    destination_id: string | null;
    from_state: DestinationState | null;
    to_state: DestinationState | null;
  }>(
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
      column((r) => r.destinationResult),
      rules.failureThreshold,
      rules.cooldownMs,
      rules.disableAfterMs,
    ],
    "outbox_record",
  );
  const recorded: Recorded = { owned: [], transitions: [] };
  for (const row of rows) {
    if (row.destination_id !== null && row.from_state !== null && row.to_state !== null) {
      recorded.transitions.push({ destinationId: row.destination_id, from: row.from_state, to: row.to_state });
    } else if (row.delivery_id !== null) recorded.owned.push(row.delivery_id);
  }
  return recorded;
}
