/**
 * The dashboard on big tables: seeds 1,000,000 deliveries and ~3,000,000 attempts (30 days of
 * traffic of 50 tenants to 1,000 destinations) into a scratch database, starts the API, signs in as
 * a tenant and as the operator, and times each page: the median of BENCH_REQUESTS requests (default
 * 7) after 2 warm-ups. `DATABASE_URL` names the server (its database is only used to create the
 * scratch one). BENCH_DELIVERIES scales the seed.
 */
import { configWith } from "../src/config.js";
import { destinationIdSql, destinationSql } from "../src/db/schema.js";
import { createLogger } from "../src/logger.js";
import { startService } from "../src/service.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createScratchDatabase } from "./lib/database.js";

const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  console.error("bench:dashboard needs DATABASE_URL=postgres://… (a server it may create a scratch database on)");
  process.exit(1);
}
const DELIVERIES = Number(process.env.BENCH_DELIVERIES ?? 1_000_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 7);
const TENANTS = 50;
const DESTINATIONS = 1_000;
const TOKEN = "bench-internal-token";

const scratch = await createScratchDatabase(adminUrl, "dashboard", { poolSize: 4 });
const q = scratch.database.query;
try {
  const started = Date.now();
  const tenants: CreatedTenant[] = [];
  for (let i = 0; i < TENANTS; i++) tenants.push(await createTenant(scratch.database, `tenant-${i}`));
  await q(`create temporary table bench_tenants (n int primary key, id uuid)`);
  await q(`insert into bench_tenants select ordinality - 1, id from unnest($1::uuid[]) with ordinality as t(id)`, [
    tenants.map((t) => t.tenantId),
  ]);
  await q(
    `insert into webhook_outbox.destinations (id, tenant_id, url, created_at)
     select ${destinationIdSql("d.tenant_id", "d.url")}, d.tenant_id, d.url, d.created_at
     from (select t.id as tenant_id, 'https://d' || k || '.example.com/hook' as url,
                  now() - interval '31 days' + k * interval '1 second' as created_at
           from generate_series(0, ${DESTINATIONS - 1}) k join bench_tenants t on t.n = k % ${TENANTS}) d`,
  );
  // Plain indexes are built after the load (the constraints' stay).
  const indexes = await q<{ name: string; definition: string }>(
    `select i.indexname as name, i.indexdef as definition from pg_indexes i
     where i.schemaname = 'webhook_outbox' and i.tablename in ('webhook_deliveries', 'webhook_delivery_attempts')
       and not exists (select from pg_constraint c where c.conname = i.indexname)`,
  );
  for (const index of indexes) await q(`drop index webhook_outbox.${index.name}`);

  // Newest first: delivery i was created i × (30 days / N) ago; 5% failed, the newest 2,000 pending.
  await q(
    `insert into webhook_outbox.webhook_deliveries (tenant_id, event_type, url, payload, status, attempt_count,
       max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at, last_response_status,
       created_at, finished_at, destination, destination_id)
     select t.id, case when i % 3 = 0 then 'order.refunded' else 'order.paid' end,
       'https://d' || (i % ${DESTINATIONS}) || '.example.com/hook',
       jsonb_build_object('event', 'order.paid', 'orderId', i, 'amount', i % 1000, 'currency', 'EUR'),
       case when i <= 2000 then 'pending' when i % 20 = 0 then 'failed' else 'succeeded' end,
       case when i <= 2000 then 2 else 3 end, 3, '{0,10000,60000}', 10000, 5000,
       case when i <= 2000 then now() - (i % 60) * interval '1 second' end,
       case when i <= 2000 then 503 when i % 20 = 0 then 500 else 200 end,
       date_trunc('milliseconds', now() - i * (interval '30 days' / ${DELIVERIES})),
       case when i > 2000 then now() - i * (interval '30 days' / ${DELIVERIES}) + interval '70 seconds' end,
       ${destinationSql("'https://d' || (i % " + DESTINATIONS + ") || '.example.com/hook'")},
       ${destinationIdSql("t.id", "('https://d' || (i % " + DESTINATIONS + ") || '.example.com/hook')")}
     from generate_series(1, ${DELIVERIES}) i
     join bench_tenants t on t.n = (i % ${DESTINATIONS}) % ${TENANTS}`,
  );
  await q(
    `insert into webhook_outbox.webhook_delivery_attempts (delivery_id, attempt_number, worker_id, started_at,
       finished_at, duration_ms, response_status, outcome, error_kind)
     select d.id, n, 'bench', d.created_at + (array[0, 10, 70])[n] * interval '1 second',
       d.created_at + (array[0, 10, 70])[n] * interval '1 second' + interval '120 milliseconds',
       20 + (hashtext(d.id::text || n) & 511),
       case when n < 3 or d.status = 'pending' then 503 when d.status = 'failed' then 500 else 200 end,
       case when n < 3 then 'retry' else d.status end,
       case when n < 3 or d.status = 'failed' then 'http_status' end
     from webhook_outbox.webhook_deliveries d cross join generate_series(1, 3) n
     where n <= d.attempt_count`,
  );
  for (const index of indexes) await q(index.definition);
  await q(`vacuum analyze webhook_outbox.webhook_deliveries`);
  await q(`vacuum analyze webhook_outbox.webhook_delivery_attempts`);
  await q(`vacuum analyze webhook_outbox.destinations`);
  const [counts] = await q<{ deliveries: number; attempts: number }>(
    `select (select count(*) from webhook_outbox.webhook_deliveries)::int as deliveries,
            (select count(*) from webhook_outbox.webhook_delivery_attempts)::int as attempts`,
  );
  console.log(`seeded ${counts?.deliveries} deliveries, ${counts?.attempts} attempts in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const config = configWith({
    DATABASE_URL: scratch.url,
    PORT: 0,
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    INTERNAL_API_TOKEN: TOKEN,
    DASHBOARD_SESSION_SECRET: "bench-dashboard-secret-of-at-least-32-chars",
  });
  const service = await startService({ config, logger: createLogger("silent"), api: true, worker: false, migrate: false });
  try {
    const base = service.url ?? "";
    const signIn = async (credential: string): Promise<string> => {
      const form = await fetch(`${base}/dashboard/sign-in`);
      const presession = (form.headers.getSetCookie()[0] ?? "").split(";")[0] ?? "";
      const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? "";
      const response = await fetch(`${base}/dashboard/sign-in`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: presession, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ csrf, credential }).toString(),
      });
      const cookie = response.headers.getSetCookie().find((line) => line.startsWith("wo_session="));
      if (response.status !== 303 || !cookie) throw new Error(`sign-in failed: ${response.status}`);
      return cookie.split(";")[0] ?? "";
    };
    const time = async (cookie: string, path: string): Promise<{ ms: number; html: string }> => {
      const times: number[] = [];
      let html = "";
      for (let i = 0; i < REQUESTS + 2; i++) {
        const t0 = performance.now();
        const response = await fetch(`${base}${path}`, { headers: { cookie }, redirect: "manual" });
        html = await response.text();
        if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
        if (i >= 2) times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return { ms: times[Math.floor(times.length / 2)] ?? 0, html };
    };

    const tenant = tenants[0];
    if (!tenant) throw new Error("no tenant");
    const tenantCookie = await signIn(tenant.apiKey);
    const operatorCookie = await signIn(TOKEN);
    const [someDelivery] = await q<{ id: string; destination_id: string }>(
      `select id, destination_id from webhook_outbox.webhook_deliveries where tenant_id = $1 and status = 'failed'
       order by created_at desc limit 1 offset 5`,
      [tenant.tenantId],
    );
    const rows: Array<[string, string, number]> = [];
    const run = async (who: string, cookie: string, path: string) => {
      const { ms, html } = await time(cookie, path);
      rows.push([who, path, ms]);
      return html;
    };
    await run("tenant", tenantCookie, "/dashboard");
    const first = await run("tenant", tenantCookie, "/dashboard/deliveries");
    const next = /href="(\/dashboard\/deliveries\?[^"]*cursor=[^"]+)"/.exec(first)?.[1]?.replaceAll("&amp;", "&");
    if (next) await run("tenant", tenantCookie, next);
    await run("tenant", tenantCookie, "/dashboard/deliveries?status=failed");
    await run("tenant", tenantCookie, "/dashboard/deliveries?status=pending");
    await run("tenant", tenantCookie, "/dashboard/deliveries?event=order.refunded&since=2000-01-01T00:00");
    await run("tenant", tenantCookie, `/dashboard/deliveries?destination=${someDelivery?.destination_id}`);
    await run("tenant", tenantCookie, `/dashboard/deliveries/${someDelivery?.id}`);
    await run("tenant", tenantCookie, "/dashboard/destinations");
    await run("operator", operatorCookie, "/dashboard");
    await run("operator", operatorCookie, "/dashboard/deliveries");
    await run("operator", operatorCookie, "/dashboard/deliveries?status=failed");
    await run("operator", operatorCookie, `/dashboard/deliveries?tenant=${tenants[1]?.tenantId}`);
    await run("operator", operatorCookie, "/dashboard/destinations");

    console.log(`\n| viewer | page | median ms (of ${REQUESTS}) |\n|---|---|---:|`);
    for (const [who, path, ms] of rows) {
      const shown = path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, ":id").replace(/cursor=[^&]+/, "cursor=…");
      console.log(`| ${who} | \`${shown}\` | ${ms.toFixed(1)} |`);
    }
  } finally {
    await service.stop();
  }
} finally {
  await scratch.drop();
}
