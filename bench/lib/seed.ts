import { configWith } from "../../src/config.js";
import type { Database } from "../../src/db/client.js";
import { destinationIdSql, destinationSql } from "../../src/db/schema.js";
import { JOB_COMPLETED_EVENT } from "../../src/jobs/payloads.js";
import { deliveryPolicies } from "../../src/jobs/delivery-policies.js";
import { webhookPayload } from "./payload.js";

const CHUNK = 5_000;

/** The delivery policy the service freezes onto a `nouvel` job's delivery with default configuration. */
export const defaultPolicy = deliveryPolicies(configWith({})).nouvel;

/**
 * N terminal jobs, each with its due webhook_deliveries row, written in bulk the way
 * src/outbox/enqueue.ts writes one (same columns, frozen policy, next_attempt_at = now()).
 * `dueAt` puts them off until then. Several URLs take the rows in turn (many destinations).
 */
export async function seedDueDeliveries(
  database: Database,
  tenantId: string,
  url: string | string[],
  count: number,
  options: { dueAt?: Date } = {},
): Promise<void> {
  const template = JSON.stringify(webhookPayload("00000000-0000-0000-0000-000000000000"));
  const urls = typeof url === "string" ? [url] : url;
  for (let done = 0; done < count; done += CHUNK) {
    await database.query(
      `with destination as (
         insert into webhook_outbox.destinations (id, tenant_id, url)
         select ${destinationIdSql("$1::uuid", "u.url")}, $1, u.url from unnest($2::text[]) u(url) on conflict do nothing
       ), j as (
         insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, webhook_url, deadline_at, completed_at)
         select $1, 'nouvel', 'bench', 'completed', ($2::text[])[1 + (g + $11::int) % cardinality($2::text[])],
                now() + interval '1 hour', now()
         from generate_series(1, $3::int) g
         returning id, webhook_url
       )
       insert into webhook_outbox.webhook_deliveries
         (tenant_id, job_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at,
          destination, destination_id)
       select $1, j.id, $4, j.webhook_url, jsonb_set($5::jsonb, '{jobId}', to_jsonb(j.id::text)), $6, $7::int[], $8, $9,
              coalesce($10::timestamptz, now()), ${destinationSql("j.webhook_url")}, ${destinationIdSql("$1::uuid", "j.webhook_url")}
       from j`,
      [
        tenantId,
        urls,
        Math.min(CHUNK, count - done),
        JOB_COMPLETED_EVENT,
        template,
        defaultPolicy.retryDelaysMs.length,
        defaultPolicy.retryDelaysMs,
        defaultPolicy.timeoutMs,
        defaultPolicy.connectTimeoutMs,
        options.dueAt?.toISOString() ?? null,
        done,
      ],
    );
  }
  await database.query("vacuum analyze webhook_outbox.jobs");
  await database.query("vacuum analyze webhook_outbox.webhook_deliveries");
}

/**
 * N open jobs of two projects, the first already completed and the second processing: one
 * `updateProject(id, 1, completed)` makes each terminal and enqueues its webhook. Returns the job ids.
 */
export async function seedOpenJobs(database: Database, tenantId: string, url: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let done = 0; done < count; done += CHUNK) {
    const rows = await database.query<{ id: string }>(
      `with j as (
         insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, webhook_url, deadline_at)
         select $1, 'nouvel', 'bench', 'processing', $2, now() + interval '1 hour'
         from generate_series(1, $3::int)
         returning id
       ), p as (
         insert into webhook_outbox.job_projects (job_id, index, status, video_url, seed)
         select j.id, 0, 'completed', 'https://cdn.example.com/videos/' || j.id || '/0.mp4', 424242 from j
         union all
         select j.id, 1, 'processing', null, 424242 from j
       )
       select id from j`,
      [tenantId, url, Math.min(CHUNK, count - done)],
    );
    ids.push(...rows.map((row) => row.id));
  }
  await database.query("vacuum analyze webhook_outbox.jobs");
  await database.query("vacuum analyze webhook_outbox.job_projects");
  return ids;
}
