/**
 * The SQL audit cookbook: docs/sql-audit.md shows exactly these texts, and test/audit-cookbook.test.ts
 * runs exactly these texts on seeded data (and checks that page still contains them).
 * Parameters are positional; each entry says what they are.
 */
export interface CookbookQuery {
  title: string;
  params: string[];
  sql: string;
}

// The host of a webhook URL (URLs never carry credentials; IPv6 literals keep their brackets).
const HOST = String.raw`substring(d.url from '^[a-z]+://(\[[^]]+\]|[^/:?#]+)')`;

export const COOKBOOK = {
  failedLastHour: {
    title: "Deliveries that failed in the last hour, with their last error",
    params: [],
    sql: `select delivery_id, tenant_id, job_id, url, finished_at, attempt_count,
       last_attempt_status, last_attempt_error_kind, last_attempt_error
from webhook_outbox.delivery_audit
where delivery_status = 'failed' and finished_at > now() - interval '1 hour'
order by finished_at desc;`,
  },
  attemptsOfJob: {
    title: "Every attempt of one job, in order",
    params: ["$1 job id"],
    sql: `select d.id as delivery_id, a.attempt_number, a.started_at, a.duration_ms, a.outcome,
       a.response_status, a.error_kind, a.error_message, a.worker_id
from webhook_outbox.webhook_deliveries d
join webhook_outbox.webhook_delivery_attempts a on a.delivery_id = d.id
where d.job_id = $1
order by d.created_at, a.attempt_number;`,
  },
  latencyByHost: {
    title: "p50/p95 attempt latency and success rate per destination host over a window",
    params: ["$1 window start (timestamptz)", "$2 window end (timestamptz)"],
    sql: `select ${HOST} as host,
       count(*) as attempts,
       percentile_cont(0.5) within group (order by a.duration_ms) as p50_ms,
       percentile_cont(0.95) within group (order by a.duration_ms) as p95_ms,
       round(avg((a.outcome = 'succeeded')::int), 4) as success_rate
from webhook_outbox.webhook_delivery_attempts a
join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
where a.started_at >= $1 and a.started_at < $2
group by 1
order by attempts desc, host;`,
  },
  stuck: {
    title: "Deliveries still pending (or delivering) longer than N minutes",
    params: ["$1 minutes"],
    sql: `select id as delivery_id, tenant_id, job_id, url, status, attempt_count, max_attempts,
       created_at, next_attempt_at, locked_by, last_error, now() - created_at as age
from webhook_outbox.webhook_deliveries
where status in ('pending', 'delivering') and created_at < now() - $1 * interval '1 minute'
order by created_at;`,
  },
  top5xxReceivers: {
    title: "Receivers returning the most 5xx over a window",
    params: ["$1 window start (timestamptz)", "$2 how many"],
    sql: `select d.url,
       count(*) filter (where a.response_status >= 500) as responses_5xx,
       count(*) as attempts,
       max(a.started_at) filter (where a.response_status >= 500) as last_5xx_at
from webhook_outbox.webhook_delivery_attempts a
join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
where a.started_at >= $1
group by d.url
having count(*) filter (where a.response_status >= 500) > 0
order by responses_5xx desc, d.url
limit $2;`,
  },
  unhealthyDestinations: {
    title: "Destinations whose circuit is open or that are disabled, since when and why",
    params: [],
    sql: `select id as destination_id, tenant_id, url, state, consecutive_failures, first_failure_at, last_failure_at,
       last_success_at, open_until, disabled_at, disabled_reason,
       (select count(*) from webhook_outbox.webhook_deliveries w
        where w.destination_id = g.id and w.status = 'pending' and w.next_attempt_at = 'infinity') as waiting
from webhook_outbox.destinations g
where state <> 'healthy'
order by state, first_failure_at;`,
  },
  destinationHistory: {
    title: "One destination's history: every change of its state, with why",
    params: ["$1 destination id"],
    sql: `select e.at, e.from_state, e.to_state, e.reason, e.consecutive_failures
from webhook_outbox.destination_events e
where e.destination_id = $1
order by e.at, e.id;`,
  },
} satisfies Record<string, CookbookQuery>;

export type CookbookName = keyof typeof COOKBOOK;
