import type { Query } from "../../db/client.js";
import { deliveriesInsertFrom, OUTBOX_CHANNEL } from "../enqueue.js";
import { OPERATIONAL_EVENT_TYPES_SQL, operationalSource } from "../operational-webhooks.js";

/** The rows webhook_deliveries' statistics describe, and the rows it has now. */
export interface TableCounts {
  /** `pg_class.reltuples`, from its last ANALYZE or VACUUM (0 if never). */
  rows: number;
  /** `n_live_tup`: the statistics' count plus the rows inserted and less those deleted since, as committed. */
  liveRows: number;
}

/*
 * The claim: one round trip takes a batch of due deliveries under a lease, at most the free room of
 * each destination (host:port), and applies the circuit of each destination (tenant, URL): an open
 * one's due deliveries are parked (next_attempt_at 'infinity', nothing spent) but for one probe per
 * cool-down, a disabled one's fail. The partial index webhook_deliveries_claim_idx (next_attempt_at where status in
 * ('pending','delivering')) serves the scan for due rows: while a delivery is leased, next_attempt_at
 * equals locked_until, so a lease that expires makes it due again. webhook_deliveries_in_flight_idx
 * serves the count of live leases per destination.
 */

export interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  url: string;
  /** host:port of the URL (its authority), lower-cased: what the per-destination cap counts. */
  destination: string;
  /** The frozen payload as Postgres prints it: the exact bytes signed and sent. */
  body: string;
  attempt_count: number;
  max_attempts: number;
  interruptions: number;
  retry_delays_ms: number[];
  timeout_ms: number;
  connect_timeout_ms: number;
  /** Active signing secrets of the tenant, newest first. */
  secrets: string[] | null;
}

export interface Claim {
  deliveries: ClaimedDelivery[];
  /**
   * Destinations at their cap once this claim's leases are counted: due rows of theirs may wait
   * for room, which only an attempt of theirs that ends can make.
   */
  capped: string[];
  /** The rows webhook_deliveries' statistics describe, and the rows it has now. */
  table: TableCounts;
}

export interface ClaimInput {
  workerId: string;
  /** Deliveries taken at most. */
  limit: number;
  /**
   * The largest `limit` this caller asks for (a worker's batch size): the statement is made and
   * prepared once per batch size, and reads up to twice as many due rows.
   * @defaultValue limit
   */
  batchSize?: number;
  /** Added to each delivery's request timeout to form its lease. */
  leaseMarginMs: number;
  /** Live leases per destination at most, across every worker. */
  destinationConcurrency: number;
  /** A delivery whose lease ran out this many times fails instead of being tried again. */
  maxInterruptions: number;
  /**
   * A destination with an attempt in flight for longer than this is slow: it gets
   * `destinationConcurrency` slots, as does every destination not in `fastDestinations`.
   * @defaultValue 0 (every destination with an attempt in flight is slow)
   */
  slowAfterMs?: number;
  /**
   * Most slots of a fast destination. The slots past `destinationConcurrency` come out of one share
   * of `fastDestinationConcurrency - destinationConcurrency` for every destination together: what
   * one destination holds past `destinationConcurrency` (fast, or turned slow with its attempts
   * still in flight) is not there for another.
   * @defaultValue destinationConcurrency
   */
  fastDestinationConcurrency?: number;
  /**
   * Destinations that have lately answered within `slowAfterMs` (the claimer's evidence): only
   * these may be fast.
   * @defaultValue []
   */
  fastDestinations?: string[];
  /**
   * This worker's attempts that have ended but whose records are still on their way: their leases
   * no longer count against their destination's cap.
   * @defaultValue []
   */
  ended?: string[];
  /**
   * Send it as the named statement `outbox_claim_<batchSize>` (its plan kept per connection)
   * rather than unnamed (planned every time). Safe only while the table's statistics are current.
   * @defaultValue false
   */
  named?: boolean;
}

/**
 * Due rows the claim reads per row it may take: a destination with less room than its share of them
 * leaves the rest of the batch to the others' rows among them. The read and its ranking are the part
 * of the claim that grows with this, and through a backlog the claim loop runs back to back, its
 * claims the pace of the drain: one destination's backlog drained about a tenth faster reading two
 * batches' worth than four, and with five of 200 destinations hanging the others kept their rate.
 */
const READ_BATCHES = 2;

/**
 * The claim for batches of up to `batchSize`: it reads up to twice that many due rows (so each
 * destination's share can be cut to its room) and takes at most $2 (the limit) of them. The read's
 * LIMIT is written into the text, not sent as a parameter: with it known, the plan Postgres makes
 * once for the prepared statement (its generic plan) is estimated as cheap as one made for each
 * execution, so Postgres keeps it instead of planning the claim on every execution (a fifth more
 * claims and records a second in a loop of them). With a LIMIT parameter there, the generic plan
 * guessed the read at a tenth of the due rows, was costed at twice the custom plans and never used.
 */
export function claimSql(batchSize: number): string {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const readLimit = batchSize * READ_BATCHES;
  return `
with leased as materialized (
  -- Attempts in flight per destination, in every worker: live leases only, so the leases of a dead
  -- worker stop counting when they run out (and their rows are due again), and not the attempts
  -- this worker has seen end ($6) while their records travel. A destination is fast only while it
  -- answers quickly ($9: it answered within $7 ms, lately) and has no attempt in flight for longer
  -- than $7 ms; any other is slow: one that hangs, answers slowly, or has not answered yet.
  select destination, count(*)::int as held,
         destination in (select unnest($9::text[]))
           and not bool_or(locked_until - (timeout_ms + $3) * interval '1 millisecond' < now() - $7 * interval '1 millisecond')
           as fast
  from webhook_outbox.webhook_deliveries
  where status = 'delivering' and locked_until > now() and id <> all ($6::uuid[])
  group by destination
),
busy as materialized (
  -- Every destination with leases, and every fast one ($9) without: its slots. Any other gets $4.
  -- A slow destination gets $4 slots (so one that never answers never holds more). A fast one may
  -- go past $4 up to $8, out of one share of $8 - $4 slots for every destination together: the
  -- slots any destination holds beyond $4 (a fast one's, or a fast one's that has since turned
  -- slow, whose attempts hang until they time out) are not there for another fast one. So several
  -- busy destinations that hang at once hold at most $4 each and that one share, not $8 each.
  select destination, held,
         case when fast
              then least($8::int, $4::int + greatest(0, ($8::int - $4::int)
                     - (sum(greatest(held - $4::int, 0)) over () - greatest(held - $4::int, 0))::int))
              else $4::int end as cap
  from (
    select destination, held, fast from leased
    union all
    select f.destination, 0, true from unnest($9::text[]) as f(destination)
    where f.destination not in (select destination from leased)
  ) d
),
held_back as materialized (
  -- Destinations whose circuit is not closed (a handful, through destinations_unhealthy_idx): an
  -- open one's deliveries wait, spending nothing, but for one probe once its cool-down is over; a
  -- disabled one's due deliveries fail.
  select id, state, open_until <= now() as probe_due, disabled_reason
  from webhook_outbox.destinations
  where state <> 'healthy'
),
candidate as materialized (
  -- Due rows in due order, skipping destinations with no room at all: a full destination's backlog
  -- is passed over here instead of filling the batch. Read, not locked: two batches' worth (a
  -- constant of the text, see claimSql), so each destination's share can be cut to its room below.
  select id, destination, destination_id, next_attempt_at
  from webhook_outbox.webhook_deliveries
  where status in ('pending', 'delivering') and next_attempt_at <= now()
    -- "Not one of the full destinations", written so the planner cannot estimate it: "destination <>
    -- all($x)" with one destination in the statistics (one customer's burst) is estimated to pass no
    -- row at all, and a sequential scan of the table looks cheaper than walking the claim index.
    and nullif(destination = any (array(select destination from busy where held >= cap)), true) is not null
  order by next_attempt_at
  limit ${readLimit}
),
probe as materialized (
  -- The oldest parked delivery of each open destination whose cool-down is over (webhook_deliveries_parked_idx).
  select p.id, p.timeout_ms, h.id as destination_id
  from held_back h
  cross join lateral (
    select w.id, w.timeout_ms from webhook_outbox.webhook_deliveries w
    where w.destination_id = h.id and w.status = 'pending' and w.next_attempt_at = 'infinity'
    order by w.created_at
    limit 1
  ) p
  where h.state = 'open' and h.probe_due
  limit $2
),
gate as materialized (
  -- One probe per destination across every worker: the destination row is taken (SKIP LOCKED: a
  -- claim never waits) at its latest version, so a claim that comes second finds the cool-down
  -- already pushed on, to the end of the probe's lease (a probe whose row another statement holds
  -- just waits for the next cool-down).
  select g.id from webhook_outbox.destinations g
  where g.id = any(array(select destination_id from probe))
    and g.state = 'open' and g.open_until <= now()
  for no key update skip locked
),
probing as (
  update webhook_outbox.destinations g
  set open_until = now() + (p.timeout_ms + $3) * interval '1 millisecond', updated_at = now()
  from probe p
  where g.id = any(array(select id from gate)) and p.destination_id = g.id
  returning p.id
),
ranked as (
  select c.id, c.destination, c.next_attempt_at,
         row_number() over (partition by c.destination order by c.next_attempt_at, c.id) + coalesce(b.held, 0) as slot,
         coalesce(b.cap, $4::int) as cap
  from candidate c left join busy b on b.destination = c.destination
  where c.destination_id <> all (array(select id from held_back))
),
chosen as materialized (
  select id
  from (
    select id, next_attempt_at from ranked where slot <= cap order by next_attempt_at
    limit greatest(0, $2 - (select count(*) from probing))
  ) sent
  union all
  select id from probing
  union all
  -- Due rows of the destinations held back: an open one's are parked until it closes, a disabled one's fail.
  select c.id from candidate c
  where c.destination_id = any(array(select id from held_back)) and c.id <> all (array(select id from probing))
),
due as (
  -- Reached through "= any(array(...))", not by a join: a generic plan guesses a LIMIT $2 at a tenth
  -- of what it limits and might hash-join a sequential scan of the table.
  select w.id, w.status as previous_status, w.attempt_count as previous_attempts, w.locked_by as previous_owner,
         w.locked_until as previous_lease_end,
         w.status = 'delivering' as interrupted,
         case
           -- A lease that ran out with its attempt unrecorded is tried again, unless this makes $5 interruptions.
           when w.status = 'delivering' and w.interruptions + 1 >= $5 then 'give_up'
           when w.id = any(array(select id from probing)) then 'send'
           else coalesce((select case h.state when 'open' then 'park' else 'refuse' end
                          from held_back h where h.id = w.destination_id), 'send')
         end as act,
         (select h.disabled_reason from held_back h where h.id = w.destination_id) as disabled_reason
  from webhook_outbox.webhook_deliveries w
  where w.id = any(array(select id from chosen))
    and w.status in ('pending', 'delivering')
    and (w.next_attempt_at <= now() or (w.status = 'pending' and w.id = any(array(select id from probing))))
  for update skip locked
),
taken as (
  update webhook_outbox.webhook_deliveries d
  set status = case a.act when 'send' then 'delivering' when 'park' then 'pending' else 'failed' end,
      -- A refused delivery's record is an attempt of its own (error_kind destination_disabled).
      attempt_count = d.attempt_count + (a.act in ('send', 'refuse'))::int,
      -- An interrupted attempt spends nothing of the budget: the budget grows by the attempt it took.
      max_attempts = d.max_attempts + (a.interrupted and a.act <> 'give_up')::int,
      interruptions = d.interruptions + a.interrupted::int,
      locked_by = case when a.act = 'send' then $1 end,
      locked_until = case when a.act = 'send' then now() + (d.timeout_ms + $3) * interval '1 millisecond' end,
      -- Parked: pending, due at no time, until its destination closes or is enabled.
      next_attempt_at = case a.act when 'send' then now() + (d.timeout_ms + $3) * interval '1 millisecond'
                                   when 'park' then 'infinity'::timestamptz end,
      finished_at = case when a.act in ('send', 'park') then d.finished_at else now() end,
      last_error = case a.act
                     when 'give_up' then 'interrupted ' || (d.interruptions + 1) || ' times: each worker that took it '
                                         || 'stopped before recording an outcome (a payload that crashes workers?)'
                     when 'refuse' then 'not sent: the destination is disabled ('
                                        || case a.disabled_reason when 'gone' then 'it answered 410 Gone'
                                                                  else 'it kept failing' end
                                        || '); enable it, then redeliver'
                     else d.last_error end
  from due a
  -- By the id alone: beside a "d.id = any(...)" a plan may take the array as its index condition
  -- and scan the whole batch again for every row (with time-ordered ids it did: 96 × 96 tuples).
  where d.id = a.id
  returning d.id, d.tenant_id, d.url, d.destination, d.event_type, d.job_id, d.payload::text as body, a.act, d.attempt_count,
            d.max_attempts, d.interruptions, d.retry_delays_ms, d.timeout_ms, d.connect_timeout_ms, d.last_error,
            a.interrupted, a.previous_attempts, a.previous_owner, a.previous_lease_end
),
interrupted as (
  -- The attempt whose lease ran out is written down as interrupted.
  insert into webhook_outbox.webhook_delivery_attempts
    (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, error_kind, error_message, outcome)
  select x.id, x.previous_attempts, x.previous_owner, x.started_at, now(),
         greatest(0, extract(epoch from now() - x.started_at) * 1000)::int,
         'other', 'worker stopped before recording an outcome; tried again after its lease ran out', 'interrupted'
  from (
    select id, previous_attempts, previous_owner,
           previous_lease_end - (timeout_ms + $3) * interval '1 millisecond' as started_at
    from taken where interrupted
  ) x
  on conflict (delivery_id, attempt_number) do nothing
),
refused as (
  -- A disabled destination's delivery fails without being sent, recorded as a failed attempt.
  insert into webhook_outbox.webhook_delivery_attempts
    (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, error_kind, error_message, outcome)
  select id, attempt_count, $1, now(), now(), 0, 'destination_disabled', last_error, 'failed'
  from taken where act = 'refuse'
  on conflict (delivery_id, attempt_number) do nothing
),
${deliveriesInsertFrom(
  "operational",
  operationalSource(`
    -- A delivery failed for good by its interruptions: delivery.exhausted, as when an attempt fails it.
    select t.tenant_id, 'delivery.exhausted' as event_type, null::text as about_url,
           jsonb_build_object(
             'deliveryId', t.id, 'eventType', t.event_type, 'url', t.url, 'jobId', t.job_id, 'attempts', t.attempt_count,
             'lastError', jsonb_build_object('kind', 'other', 'message', t.last_error, 'responseStatus', null)) as data,
           'delivery.exhausted:' || t.id || ':' || t.attempt_count as idempotency_key
    from taken t
    where t.act = 'give_up' and t.event_type <> all (${OPERATIONAL_EVENT_TYPES_SQL})`),
  { destinationsExist: true },
)},
claimed as (
  select * from taken where act = 'send'
),
tenant_secrets as materialized (
  -- Once per tenant in the batch, not once per row: materialized, or the planner re-runs it for
  -- every claimed row on the inner side of the join (about 20 µs a row).
  select t.tenant_id,
         (select array_agg(s.secret order by s.created_at desc)
          from webhook_outbox.signing_secrets s
          where s.tenant_id = t.tenant_id and (s.expires_at is null or s.expires_at > now())) as secrets
  from (select distinct tenant_id from claimed) t
)
select c.id, c.tenant_id, c.url, c.destination, c.body, c.attempt_count, c.max_attempts, c.interruptions,
       c.retry_delays_ms, c.timeout_ms, c.connect_timeout_ms, k.secrets, null::text[] as capped,
       null::float8 as statistics_rows, null::float8 as live_rows
from claimed c
join tenant_secrets k on k.tenant_id = c.tenant_id
union all
-- The last row: no delivery, the destinations left at their cap (and a NOTIFY, at the commit, for
-- operational webhooks enqueued), and the rows the table's statistics describe and the rows it has now.
select null, null, null, null, null, null, null, null, null, null, null, null,
       array(
         select r.destination from ranked r
         group by r.destination
         having max(r.slot) >= max(r.cap)
         union
         select b.destination from busy b where b.held >= b.cap
       ),
       (select greatest(c.reltuples, 0)::float8 from pg_catalog.pg_class c where c.oid = 'webhook_outbox.webhook_deliveries'::regclass),
       pg_stat_get_live_tuples('webhook_outbox.webhook_deliveries'::regclass)::float8
from (select 1) one
left join lateral (select pg_notify('${OUTBOX_CHANNEL}', '') where exists (select from operational)) notified on true`;
}

type ClaimRow = Omit<ClaimedDelivery, "id"> & {
  id: string | null;
  capped: string[] | null;
  statistics_rows: number | null;
  live_rows: number | null;
};

/** The claim's text for each batch size in use, made once. */
const claimTexts = new Map<number, string>();

function claimText(batchSize: number): string {
  let text = claimTexts.get(batchSize);
  if (text === undefined) {
    text = claimSql(batchSize);
    claimTexts.set(batchSize, text);
  }
  return text;
}

/**
 * Claims up to `limit` due deliveries, at most each destination's free room.
 *
 * Sent as the named statement `outbox_claim_<batchSize>` when `input.named` (its name carries the
 * batch size, so workers with different sizes may share a pool), else unnamed: planned for its
 * parameters and the table's current size every time. The worker names it only while the table's
 * statistics are current (see ../worker/table-statistics.ts): a generic plan made while
 * webhook_deliveries was nearly empty may reach each claimed row by id through
 * webhook_deliveries_destination_created_idx (id is its last column), a scan of that whole index
 * per row, kept as the table grows until an ANALYZE: about 110 ms a claim at 100k rows instead of 5.
 */
export async function claimDue(query: Query, input: ClaimInput): Promise<Claim> {
  const batchSize = input.batchSize ?? input.limit;
  if (!Number.isSafeInteger(input.limit) || input.limit < 1 || input.limit > batchSize) {
    throw new RangeError(`claim limit must be an integer from 1 to the batch size (${batchSize}), got ${input.limit}`);
  }
  const rows = await query<ClaimRow>(
    claimText(batchSize),
    [
      input.workerId,
      input.limit,
      input.leaseMarginMs,
      input.destinationConcurrency,
      input.maxInterruptions,
      input.ended ?? [],
      input.slowAfterMs ?? 0,
      input.fastDestinationConcurrency ?? input.destinationConcurrency,
      input.fastDestinations ?? [],
    ],
    input.named ? `outbox_claim_${batchSize}` : undefined,
  );
  const deliveries: ClaimedDelivery[] = [];
  let capped: string[] = [];
  let table: TableCounts = { rows: 0, liveRows: 0 };
  for (const row of rows) {
    if (row.id === null) {
      capped = row.capped ?? [];
      table = { rows: row.statistics_rows ?? 0, liveRows: row.live_rows ?? 0 };
    } else deliveries.push(row as ClaimedDelivery);
  }
  return { deliveries, capped, table };
}
