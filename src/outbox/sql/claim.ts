import type { Query } from "../../db/client.js";

/*
 * The claim: one round trip takes a batch of due deliveries under a lease, at most the free room of
 * each destination. The partial index webhook_deliveries_claim_idx (next_attempt_at where status in
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
}

export interface ClaimInput {
  workerId: string;
  limit: number;
  /** Added to each delivery's request timeout to form its lease. */
  leaseMarginMs: number;
  /** Live leases per destination at most, across every worker. */
  destinationConcurrency: number;
  /** A delivery whose lease ran out this many times fails instead of being tried again. */
  maxInterruptions: number;
  /**
   * This worker's attempts that have ended but whose records are still on their way: their leases
   * no longer count against their destination's cap.
   * @defaultValue []
   */
  ended?: string[];
}

export const CLAIM_SQL = `
with busy as materialized (
  -- Attempts in flight per destination, in every worker: live leases only, so the leases of a dead
  -- worker stop counting when they run out (and their rows are due again), and not the attempts
  -- this worker has seen end ($6) while their records travel.
  select destination, count(*)::int as held
  from webhook_outbox.webhook_deliveries
  where status = 'delivering' and locked_until > now() and id <> all ($6::uuid[])
  group by destination
),
candidate as materialized (
  -- Due rows in due order, skipping destinations with no room at all: a full destination's backlog
  -- is passed over here instead of filling the batch. Read, not locked: more than the batch, so each
  -- destination's share can be cut to its room below.
  select id, destination, next_attempt_at
  from webhook_outbox.webhook_deliveries
  where status in ('pending', 'delivering') and next_attempt_at <= now()
    -- "Not one of the full destinations", written so the planner cannot estimate it: "destination <>
    -- all($x)" with one destination in the statistics (one customer's burst) is estimated to pass no
    -- row at all, and a sequential scan of the table looks cheaper than walking the claim index.
    and nullif(destination = any (array(select destination from busy where held >= $4)), true) is not null
  order by next_attempt_at
  limit $2 * 4
),
ranked as (
  select c.id, c.destination, c.next_attempt_at,
         row_number() over (partition by c.destination order by c.next_attempt_at, c.id) + coalesce(b.held, 0) as slot
  from candidate c left join busy b on b.destination = c.destination
),
chosen as materialized (
  select id, next_attempt_at from ranked where slot <= $4 order by next_attempt_at limit $2
),
due as (
  -- Reached through "= any(array(...))", not by a join: a generic plan guesses a LIMIT $2 at a tenth
  -- of the table and would hash-join a sequential scan of it.
  select id, status as previous_status, attempt_count as previous_attempts, locked_by as previous_owner,
         locked_until as previous_lease_end,
         status = 'delivering' as interrupted,
         -- A lease that ran out with its attempt unrecorded is tried again, unless this makes $5 interruptions.
         status <> 'delivering' or interruptions + 1 < $5 as goes_on
  from webhook_outbox.webhook_deliveries
  where id = any(array(select id from chosen))
    and status in ('pending', 'delivering') and next_attempt_at <= now()
  for update skip locked
),
taken as (
  update webhook_outbox.webhook_deliveries d
  set status = case when due.goes_on then 'delivering' else 'failed' end,
      attempt_count = case when due.goes_on then d.attempt_count + 1 else d.attempt_count end,
      -- An interrupted attempt spends nothing of the budget: the budget grows by the attempt it took.
      max_attempts = case when due.interrupted and due.goes_on then d.max_attempts + 1 else d.max_attempts end,
      interruptions = case when due.interrupted then d.interruptions + 1 else d.interruptions end,
      locked_by = case when due.goes_on then $1 end,
      locked_until = case when due.goes_on then now() + (d.timeout_ms + $3) * interval '1 millisecond' end,
      next_attempt_at = case when due.goes_on then now() + (d.timeout_ms + $3) * interval '1 millisecond' end,
      finished_at = case when due.goes_on then d.finished_at else now() end,
      last_error = case when due.goes_on then d.last_error
                        else 'interrupted ' || (d.interruptions + 1) || ' times: each worker that took it stopped before '
                             || 'recording an outcome (a payload that crashes workers?)' end
  from due
  where d.id = any(array(select id from due)) and d.id = due.id
  returning d.id, d.tenant_id, d.url, d.destination, d.payload::text as body, d.status, d.attempt_count,
            d.max_attempts, d.interruptions, d.retry_delays_ms, d.timeout_ms, d.connect_timeout_ms,
            due.interrupted, due.previous_attempts, due.previous_owner, due.previous_lease_end
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
claimed as (
  select * from taken where status = 'delivering'
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
       c.retry_delays_ms, c.timeout_ms, c.connect_timeout_ms, k.secrets, null::text[] as capped
from claimed c
join tenant_secrets k on k.tenant_id = c.tenant_id
union all
-- The last row: no delivery, the destinations left at their cap.
select null, null, null, null, null, null, null, null, null, null, null, null,
       array(
         select r.destination from ranked r
         group by r.destination
         having max(r.slot) >= $4
         union
         select b.destination from busy b where b.held >= $4
       )`;

type ClaimRow = Omit<ClaimedDelivery, "id"> & { id: string | null; capped: string[] | null };

/** Claims up to `limit` due deliveries, at most each destination's free room. */
export async function claimDue(query: Query, input: ClaimInput): Promise<Claim> {
  const rows = await query<ClaimRow>(
    CLAIM_SQL,
    [input.workerId, input.limit, input.leaseMarginMs, input.destinationConcurrency, input.maxInterruptions, input.ended ?? []],
    "outbox_claim",
  );
  const deliveries: ClaimedDelivery[] = [];
  let capped: string[] = [];
  for (const row of rows) {
    if (row.id === null) capped = row.capped ?? [];
    else deliveries.push(row as ClaimedDelivery);
  }
  return { deliveries, capped };
}
