/**
 * EXPLAIN (ANALYZE, BUFFERS) of every audit cookbook query on generated data.
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx scripts/audit-explain.ts [deliveries]
 * Creates a scratch database, fills it with `deliveries` (default 1000000) deliveries of 3 attempts each
 * spread over 30 days and 200 receiver hosts, prints each plan, then drops the database.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { COOKBOOK } from "../src/audit/cookbook.js";
import { openDatabase } from "../src/db/client.js";
import { runMigrations } from "../src/db/migrate.js";

const GENERATE_SQL = `
insert into webhook_outbox.tenants (id, name) select gen_random_uuid(), 'tenant ' || t from generate_series(1, 20) t;

create temporary table gen as
select g, gen_random_uuid() as job_id, gen_random_uuid() as delivery_id,
       (select array_agg(id) from webhook_outbox.tenants)[1 + g % 20] as tenant_id,
       case when g % 500 = 0 then now() - random() * interval '30 minutes'
            else now() - random() * interval '30 days' end as created_at,
       case when g % 500 = 0 then 'pending' when g % 12 = 0 then 'failed' else 'succeeded' end as status
from generate_series(1, $1::int) g;

insert into webhook_outbox.jobs (id, tenant_id, api_flavor, prompt, status, webhook_url, created_at, updated_at, completed_at, deadline_at)
select job_id, tenant_id, case when g % 3 = 0 then 'veo3' else 'nouvel' end, 'prompt ' || g, 'completed',
       'https://receiver-' || (g % 200) || '.example.com/hooks/' || (g % 7), created_at, created_at, created_at,
       created_at + interval '10 minutes'
from gen;

insert into webhook_outbox.destinations (tenant_id, url)
select distinct tenant_id, 'https://receiver-' || (g % 200) || '.example.com/hooks/' || (g % 7) from gen
on conflict do nothing;

insert into webhook_outbox.webhook_deliveries (id, tenant_id, job_id, event_type, url, payload, status, attempt_count, max_attempts,
  retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at, last_response_status, last_error, created_at, finished_at)
select delivery_id, tenant_id, job_id, 'job.completed', 'https://receiver-' || (g % 200) || '.example.com/hooks/' || (g % 7),
       jsonb_build_object('jobId', job_id), status, 3, 3, '{0,10000,60000}', 10000, 10000,
       case when status = 'pending' then created_at + interval '70 seconds' end,
       case status when 'succeeded' then 200 when 'failed' then 503 end,
       case when status <> 'succeeded' then 'HTTP 503' end,
       created_at, case when status <> 'pending' then created_at + interval '70 seconds' end
from gen;

insert into webhook_outbox.webhook_delivery_attempts (delivery_id, attempt_number, worker_id, started_at, finished_at, duration_ms,
  response_status, error_kind, error_message, outcome)
select delivery_id, n, 'bench', created_at + (n - 1) * interval '30 seconds',
       created_at + (n - 1) * interval '30 seconds' + interval '120 ms', (20 + random() * 400)::int,
       case when n = 3 and status = 'succeeded' then 200 else 503 end,
       case when n = 3 and status = 'succeeded' then null else 'http_status' end,
       case when n = 3 and status = 'succeeded' then null else 'HTTP 503' end,
       case when n = 3 and status = 'succeeded' then 'succeeded' when n = 3 then 'failed' else 'retry' end
from gen, generate_series(1, 3) n;

analyze;`;

async function main(): Promise<void> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error("set DATABASE_URL to a server where databases can be created");
  const count = Number(process.argv[2] ?? 1_000_000);
  const name = `wo_explain_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: url.toString() });
  try {
    await runMigrations(database);
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const started = Date.now();
    for (const statement of GENERATE_SQL.split(";").map((s) => s.trim()).filter(Boolean)) {
      await client.query(statement, statement.includes("$1") ? [count] : []);
    }
    const [{ attempts }] = (await client.query("select count(*)::int as attempts from webhook_outbox.webhook_delivery_attempts")).rows;
    console.log(`generated ${count} deliveries, ${attempts} attempts in ${Math.round((Date.now() - started) / 1000)} s\n`);
    const { rows: jobRows } = await client.query("select job_id from webhook_outbox.webhook_deliveries limit 1");
    const hourAgo = new Date(Date.now() - 3_600_000);
    const dayAgo = new Date(Date.now() - 86_400_000);
    const runs: Array<[keyof typeof COOKBOOK, unknown[], string]> = [
      ["failedLastHour", [], ""],
      ["attemptsOfJob", [jobRows[0].job_id], ""],
      ["latencyByHost", [hourAgo, new Date()], " (1 h window)"],
      ["latencyByHost", [dayAgo, new Date()], " (24 h window)"],
      ["stuck", [15], " (15 minutes)"],
      ["top5xxReceivers", [hourAgo, 10], " (1 h window)"],
      ["top5xxReceivers", [dayAgo, 10], " (24 h window)"],
    ];
    for (const [key, params, note] of runs) {
      const query = COOKBOOK[key];
      const { rows } = await client.query(`explain (analyze, buffers) ${query.sql}`, params);
      console.log(`-- ${query.title}${note}\n${rows.map((row) => row["QUERY PLAN"]).join("\n")}\n`);
    }
    await client.end();
  } finally {
    await database.close();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
