import type { Query } from "../../db/client.js";
import type { AttemptOutcome, ErrorKind } from "../../db/schema.js";

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

/*
 * A batch of finished attempts: each settles its delivery and appends its attempt row, in one
 * round trip. An interrupted attempt (the worker stopped before the receiver answered) spends
 * nothing of the budget: max_attempts grows by the attempt it took, as when a lease runs out.
 */
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
  update webhook_outbox.webhook_deliveries d
  set status = r.delivery_status,
      next_attempt_at = case when r.delivery_status = 'pending' then now() + r.retry_delay_ms * interval '1 millisecond' end,
      locked_by = null,
      locked_until = null,
      max_attempts = d.max_attempts + (r.outcome = 'interrupted' and r.delivery_status = 'pending')::int,
      interruptions = d.interruptions + (r.outcome = 'interrupted')::int,
      last_response_status = r.response_status,
      last_error = r.error_message,
      finished_at = case when r.delivery_status = 'pending' then null else now() end
  from result r
  where d.id = r.id and d.status = 'delivering' and d.locked_by = $1 and d.attempt_count = r.attempt_number
  returning d.id
)
insert into webhook_outbox.webhook_delivery_attempts
  (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms, response_status,
   response_body_excerpt, error_kind, error_message, outcome)
select r.id, r.attempt_number, $1, r.started_at, r.finished_at, r.duration_ms, r.response_status,
       r.response_body_excerpt, r.error_kind, r.error_message, r.outcome
from result r
join settled s on s.id = r.id
on conflict (delivery_id, attempt_number) do nothing
returning delivery_id`;

/** Records a batch of finished attempts and settles their deliveries; returns the ids it still owned. */
export async function recordAttempts(query: Query, workerId: string, records: AttemptRecord[]): Promise<string[]> {
  const column = <T>(pick: (record: AttemptRecord) => T) => records.map(pick);
  const rows = await query<{ delivery_id: string }>(
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
