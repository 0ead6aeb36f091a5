import type { Database } from "../db/client.js";
import type { AttemptOutcome, DeliveryStatus, DestinationState, ErrorKind } from "../db/schema.js";

/**
 * The dashboard's reads. `tenantId` scopes every one to a tenant; undefined is the operator's view
 * of every tenant. Each names the index it runs on (docs/dashboard.md, bench/dashboard.ts).
 */

export interface DeliveryFilter {
  tenantId?: string | undefined;
  status?: DeliveryStatus | undefined;
  eventType?: string | undefined;
  destinationId?: string | undefined;
  jobId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  after?: { createdAt: Date; id: string } | undefined;
}

export interface DeliverySummary {
  id: string;
  tenant_id: string;
  job_id: string | null;
  event_type: string;
  url: string;
  destination_id: string;
  status: DeliveryStatus;
  attempt_count: number;
  max_attempts: number;
  last_response_status: number | null;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

const SUMMARY_COLUMNS = `d.id, d.tenant_id, d.job_id, d.event_type, d.url, d.destination_id, d.status, d.attempt_count,
  d.max_attempts, d.last_response_status, d.last_error, d.created_at, d.finished_at`;

/**
 * A page of deliveries, newest first, keyset-paginated on (created_at, id). A job id is served by
 * webhook_deliveries_job_event_uq, a destination by webhook_deliveries_destination_created_idx, a
 * tenant by webhook_deliveries_tenant_created_idx (…_tenant_failed_idx for failed), every tenant by
 * webhook_deliveries_created_idx.
 */
export async function findDeliveries(
  database: Database,
  filter: DeliveryFilter,
): Promise<{ deliveries: DeliverySummary[]; hasMore: boolean }> {
  const params: unknown[] = [];
  const where: string[] = [];
  const param = (value: unknown) => `$${params.push(value)}`;
  if (filter.tenantId !== undefined) where.push(`d.tenant_id = ${param(filter.tenantId)}`);
  if (filter.status) where.push(`d.status = ${param(filter.status)}`);
  if (filter.eventType) where.push(`d.event_type = ${param(filter.eventType)}`);
  if (filter.destinationId) where.push(`d.destination_id = ${param(filter.destinationId)}`);
  if (filter.jobId) where.push(`d.job_id = ${param(filter.jobId)}`);
  if (filter.since) where.push(`d.created_at >= ${param(filter.since)}`);
  if (filter.until) where.push(`d.created_at < ${param(filter.until)}`);
  if (filter.after) {
    where.push(`(d.created_at, d.id) < (${param(filter.after.createdAt)}, ${param(filter.after.id)})`);
  }
  const rows = await database.query<DeliverySummary>(
    `select ${SUMMARY_COLUMNS} from webhook_outbox.webhook_deliveries d
     ${where.length > 0 ? `where ${where.join(" and ")}` : ""}
     order by d.created_at desc nulls last, d.id desc nulls last
     limit ${param(filter.limit + 1)}`,
    params,
  );
  return { deliveries: rows.slice(0, filter.limit), hasMore: rows.length > filter.limit };
}

export interface DeliveryDetail extends DeliverySummary {
  /** The bytes every attempt sent (payload::text, as the claim reads it). */
  body: string;
  next_attempt_at: Date | null;
  retry_delays_ms: number[];
  timeout_ms: number;
}

export interface AttemptDetail {
  attempt_number: number;
  worker_id: string;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  response_status: number | null;
  response_body_excerpt: string | null;
  error_kind: ErrorKind | null;
  error_message: string | null;
  outcome: AttemptOutcome;
}

/** One delivery (primary key) with every attempt (webhook_delivery_attempts_number_uq), or undefined. */
export async function deliveryDetail(
  database: Database,
  deliveryId: string,
  tenantId: string | undefined,
): Promise<{ delivery: DeliveryDetail; attempts: AttemptDetail[] } | undefined> {
  const [delivery] = await database.query<DeliveryDetail>(
    `select ${SUMMARY_COLUMNS}, d.payload::text as body, d.next_attempt_at, d.retry_delays_ms, d.timeout_ms
     from webhook_outbox.webhook_deliveries d
     where d.id = $1 and ($2::uuid is null or d.tenant_id = $2)`,
    [deliveryId, tenantId ?? null],
  );
  if (!delivery) return undefined;
  const attempts = await database.query<AttemptDetail>(
    `select attempt_number, worker_id, started_at, finished_at, duration_ms, response_status, response_body_excerpt,
            error_kind, error_message, outcome
     from webhook_outbox.webhook_delivery_attempts where delivery_id = $1 order by attempt_number`,
    [deliveryId],
  );
  return { delivery, attempts };
}

export interface DestinationSummary {
  id: string;
  tenant_id: string;
  url: string;
  state: DestinationState;
  consecutive_failures: number;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  disabled_reason: string | null;
  created_at: Date;
}

/** A page of destinations, newest first (destinations_tenant_created_idx; every tenant's: destinations_created_idx). */
export async function findDestinations(
  database: Database,
  filter: { tenantId?: string | undefined; state?: DestinationState | undefined; limit: number; after?: { createdAt: Date; id: string } | undefined },
): Promise<{ destinations: DestinationSummary[]; hasMore: boolean }> {
  const params: unknown[] = [];
  const where: string[] = [];
  const param = (value: unknown) => `$${params.push(value)}`;
  if (filter.tenantId !== undefined) where.push(`g.tenant_id = ${param(filter.tenantId)}`);
  if (filter.state) where.push(`g.state = ${param(filter.state)}`);
  if (filter.after) where.push(`(g.created_at, g.id) < (${param(filter.after.createdAt)}, ${param(filter.after.id)})`);
  const rows = await database.query<DestinationSummary>(
    `select g.id, g.tenant_id, g.url, g.state, g.consecutive_failures, g.last_success_at, g.last_failure_at,
            g.disabled_reason, g.created_at
     from webhook_outbox.destinations g
     ${where.length > 0 ? `where ${where.join(" and ")}` : ""}
     order by g.created_at desc nulls last, g.id desc nulls last
     limit ${param(filter.limit + 1)}`,
    params,
  );
  return { destinations: rows.slice(0, filter.limit), hasMore: rows.length > filter.limit };
}

export interface WindowStats {
  attempts: number;
  succeeded: number;
  p95Ms: number | null;
}

export interface DestinationStats {
  hour: WindowStats;
  day: WindowStats;
  /** Attempts per minute over the last hour by outcome, oldest minute first (60 buckets). */
  perMinute: OutcomeBuckets;
}

export type OutcomeBuckets = Array<{ minute: Date; succeeded: number; retry: number; failed: number }>;

/**
 * Success rate, p95 latency and attempts per minute of some destinations: the attempts of the last
 * day (webhook_delivery_attempts_started_idx) of the deliveries to them
 * (webhook_deliveries_destination_created_idx, then the attempts' webhook_delivery_attempts_number_uq).
 */
export async function destinationStats(
  database: Database,
  destinationIds: string[],
  now: Date,
): Promise<Map<string, DestinationStats>> {
  const stats = new Map<string, DestinationStats>();
  if (destinationIds.length === 0) return stats;
  const windows = await database.query<{
    destination_id: string;
    hour_attempts: number;
    hour_succeeded: number;
    hour_p95: number | null;
    day_attempts: number;
    day_succeeded: number;
    day_p95: number | null;
  }>(
    `select x.destination_id,
       count(*) filter (where x.started_at >= $2::timestamptz - interval '1 hour')::int as hour_attempts,
       count(*) filter (where x.started_at >= $2::timestamptz - interval '1 hour' and x.outcome = 'succeeded')::int as hour_succeeded,
       percentile_disc(0.95) within group (order by x.duration_ms) filter (where x.started_at >= $2::timestamptz - interval '1 hour') as hour_p95,
       count(*)::int as day_attempts,
       count(*) filter (where x.outcome = 'succeeded')::int as day_succeeded,
       percentile_disc(0.95) within group (order by x.duration_ms) as day_p95
     from (${ATTEMPTS_OF_DESTINATIONS}) x
     group by x.destination_id`,
    [destinationIds, now],
  );
  const minutes = await database.query<{ destination_id: string; minute: Date; outcome: string; count: number }>(
    `select x.destination_id, date_trunc('minute', x.started_at) as minute, x.outcome, count(*)::int as count
     from (${ATTEMPTS_OF_DESTINATIONS}) x
     where x.started_at >= $2::timestamptz - interval '1 hour'
     group by 1, 2, 3`,
    [destinationIds, now],
  );
  for (const id of destinationIds) {
    const row = windows.find((w) => w.destination_id === id);
    stats.set(id, {
      hour: { attempts: row?.hour_attempts ?? 0, succeeded: row?.hour_succeeded ?? 0, p95Ms: row?.hour_p95 ?? null },
      day: { attempts: row?.day_attempts ?? 0, succeeded: row?.day_succeeded ?? 0, p95Ms: row?.day_p95 ?? null },
      perMinute: bucketize(
        minutes.filter((m) => m.destination_id === id),
        now,
      ),
    });
  }
  return stats;
}

// The attempts started in the day before $2 of deliveries to the destinations $1: per destination,
// its deliveries created in that day or the day before (a delivery's attempts end within its
// schedule; redeliveries of older ones are left out), then their attempts by number.
const ATTEMPTS_OF_DESTINATIONS = `
  select d.destination_id, a.started_at, a.outcome, a.duration_ms
  from unnest($1::uuid[]) as g(id)
  join webhook_outbox.webhook_deliveries d
    on d.destination_id = g.id and d.created_at >= $2::timestamptz - interval '2 days'
  join webhook_outbox.webhook_delivery_attempts a on a.delivery_id = d.id
  where a.started_at >= $2::timestamptz - interval '1 day' and a.started_at <= $2::timestamptz`;

function bucketize(rows: Array<{ minute: Date; outcome: string; count: number }>, now: Date): OutcomeBuckets {
  const end = Math.floor(now.getTime() / 60_000) * 60_000;
  const buckets: OutcomeBuckets = [];
  for (let i = 59; i >= 0; i--) buckets.push({ minute: new Date(end - i * 60_000), succeeded: 0, retry: 0, failed: 0 });
  for (const row of rows) {
    const index = 59 - Math.round((end - new Date(row.minute).getTime()) / 60_000);
    const bucket = buckets[index];
    if (!bucket) continue;
    if (row.outcome === "succeeded") bucket.succeeded += row.count;
    else if (row.outcome === "failed") bucket.failed += row.count;
    else bucket.retry += row.count;
  }
  return buckets;
}

export interface Overview {
  queue: { pending: number; delivering: number };
  oldestDueAgeMs: number | null;
  /** Deliveries finished per minute over the last hour: succeeded and failed (retry stays 0). */
  perMinute: OutcomeBuckets;
  failuresByDestination: Array<{ destination_id: string; url: string; tenant_id: string; failed: number }>;
}

/**
 * The queue (webhook_deliveries_claim_idx), deliveries finished per minute in the last hour and the
 * last day's failures by destination (webhook_deliveries_finished_idx).
 */
export async function overview(database: Database, tenantId: string | undefined, now: Date): Promise<Overview> {
  const scope = tenantId === undefined ? "" : "and d.tenant_id = $2";
  const params = (extra: unknown[]) => (tenantId === undefined ? extra : [...extra, tenantId]);
  const [queue] = await database.query<{ pending: number; delivering: number; oldest_due: Date | null }>(
    `select count(*) filter (where d.status = 'pending')::int as pending,
            count(*) filter (where d.status = 'delivering')::int as delivering,
            min(d.next_attempt_at) filter (where d.next_attempt_at <= $1) as oldest_due
     from webhook_outbox.webhook_deliveries d
     where d.status in ('pending', 'delivering') ${scope}`,
    params([now]),
  );
  const minutes = await database.query<{ minute: Date; outcome: string; count: number }>(
    `select date_trunc('minute', d.finished_at) as minute, d.status as outcome, count(*)::int as count
     from webhook_outbox.webhook_deliveries d
     where d.status in ('succeeded', 'failed') and d.finished_at is not null
       and d.finished_at >= $1::timestamptz - interval '1 hour' and d.finished_at <= $1 ${scope}
     group by 1, 2`,
    params([now]),
  );
  const failures = await database.query<{ destination_id: string; url: string; tenant_id: string; failed: number }>(
    `select f.destination_id, g.url, g.tenant_id, f.failed
     from (
       select d.destination_id, count(*)::int as failed
       from webhook_outbox.webhook_deliveries d
       where d.status = 'failed' and d.finished_at is not null
         and d.finished_at >= $1::timestamptz - interval '1 day' and d.finished_at <= $1 ${scope}
       group by d.destination_id
       order by failed desc
       limit 10
     ) f
     join webhook_outbox.destinations g on g.id = f.destination_id
     order by f.failed desc, g.url`,
    params([now]),
  );
  const oldest = queue?.oldest_due ?? null;
  return {
    queue: { pending: queue?.pending ?? 0, delivering: queue?.delivering ?? 0 },
    oldestDueAgeMs: oldest && Number.isFinite(oldest.getTime()) ? Math.max(0, now.getTime() - oldest.getTime()) : null,
    perMinute: bucketize(minutes, now),
    failuresByDestination: failures,
  };
}

/** The tenant of an unrevoked API key, by its sha256 (api_keys_key_hash_uq). */
export async function tenantOfKeyHash(database: Database, keyHash: string): Promise<string | undefined> {
  const [row] = await database.query<{ tenant_id: string }>(
    `select tenant_id from webhook_outbox.api_keys where key_hash = $1 and revoked_at is null`,
    [keyHash],
  );
  return row?.tenant_id;
}
