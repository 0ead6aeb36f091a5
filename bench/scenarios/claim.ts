import pg from "pg";
import { queryOn, type Query } from "../../src/db/client.js";
import { destinationIdSql, destinationSql } from "../../src/db/schema.js";
import { claimDue, type ClaimInput } from "../../src/outbox/sql/claim.js";
import { WORKER_DEFAULTS } from "../../src/outbox/worker/options.js";
import { JOB_COMPLETED_EVENT } from "../../src/jobs/payloads.js";
import { createTenant } from "../../src/tenants/tenant-service.js";
import { withScratchDatabase } from "../lib/database.js";
import { webhookPayload } from "../lib/payload.js";
import { defaultPolicy } from "../lib/seed.js";
import type { BenchSettings } from "../lib/settings.js";
import { median, percentile } from "../lib/stats.js";

export interface ClaimResult {
  rows: number;
  dueRows: number;
  generateSeconds: number;
  runs: number;
  claimedPerRun: number;
  medianMs: number;
  p95Ms: number;
  /** Whether EXPLAIN (ANALYZE, BUFFERS) of the claim shows webhook_deliveries_claim_idx. */
  customPlanUsesClaimIndex: boolean;
  genericPlanUsesClaimIndex: boolean;
  /** The plan lines that touch webhook_deliveries. */
  planExcerpt: string[];
  plan: string;
}

const CLAIM_INDEX = "webhook_deliveries_claim_idx";
const CHUNK = 1_000_000;
const WARM_UP_RUNS = 10;
const PER_TEN_THOUSAND = 10_000;

/** The claim statement as the worker sends it, text and parameters: captured from claimDue itself so neither can drift from src/. */
async function claimStatement(input: ClaimInput): Promise<{ text: string; values: unknown[] }> {
  let captured = { text: "", values: [] as unknown[] };
  const recorder = (async (text: string, values: unknown[]) => {
    captured = { text, values };
    return [];
  }) as Query;
  await claimDue(recorder, input);
  return captured;
}

/** A parameter as an SQL literal (EXECUTE takes no bound parameters): numbers, text and arrays of them. */
function literal(client: pg.Client, value: unknown): string {
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) {
    return client.escapeLiteral(`{${value.map((element) => `"${String(element).replace(/["\\]/g, "\\$&")}"`).join(",")}}`);
  }
  return client.escapeLiteral(String(value));
}

/**
 * The worker's claim at its defaults, `limit` rows at most, from a worker that has seen
 * `fastDestinations` answer quickly (as one draining them has): their room is the fast one. Named,
 * as the worker sends it while the table's statistics are current (the bench analyzes the table).
 */
function claimInput(limit: number, fastDestinations: string[]): ClaimInput {
  return {
    workerId: "bench-claim",
    limit,
    named: true,
    leaseMarginMs: WORKER_DEFAULTS.leaseMarginMs,
    destinationConcurrency: WORKER_DEFAULTS.destinationConcurrency,
    slowAfterMs: WORKER_DEFAULTS.destinationSlowAfterMs,
    fastDestinationConcurrency: Math.floor(WORKER_DEFAULTS.concurrency / 2),
    maxInterruptions: WORKER_DEFAULTS.maxInterruptions,
    fastDestinations,
  };
}

/**
 * Drops every index of webhook_deliveries (constraint-backed ones with their constraints, and the
 * foreign keys that point at them) and returns the statements that put each back, read from the
 * catalog so they follow whatever the migrations define. Loading 10M rows into random-UUID B-trees
 * would take far longer than building them once afterwards.
 */
async function dropIndexesForLoad(client: pg.Client): Promise<string[]> {
  const referencing = await client.query<{ table: string; name: string; definition: string }>(
    `select conrelid::regclass::text as table, conname as name, pg_get_constraintdef(oid) as definition
     from pg_constraint where contype = 'f' and confrelid = 'webhook_outbox.webhook_deliveries'::regclass`,
  );
  const owned = await client.query<{ name: string; definition: string }>(
    `select conname as name, pg_get_constraintdef(oid) as definition
     from pg_constraint where conrelid = 'webhook_outbox.webhook_deliveries'::regclass and contype in ('p', 'u')`,
  );
  const plain = await client.query<{ name: string; definition: string }>(
    `select indexname as name, indexdef as definition from pg_indexes
     where schemaname = 'webhook_outbox' and tablename = 'webhook_deliveries'
       and indexname not in (select conname from pg_constraint where conrelid = 'webhook_outbox.webhook_deliveries'::regclass)`,
  );
  const id = pg.escapeIdentifier;
  for (const fk of referencing.rows) await client.query(`alter table ${fk.table} drop constraint ${id(fk.name)}`);
  for (const constraint of owned.rows) await client.query(`alter table webhook_outbox.webhook_deliveries drop constraint ${id(constraint.name)}`);
  for (const index of plain.rows) await client.query(`drop index webhook_outbox.${id(index.name)}`);
  return [
    ...owned.rows.map((constraint) => `alter table webhook_outbox.webhook_deliveries add constraint ${id(constraint.name)} ${constraint.definition}`),
    ...plain.rows.map((index) => index.definition),
    ...referencing.rows.map((fk) => `alter table ${fk.table} add constraint ${id(fk.name)} ${fk.definition}`),
  ];
}

/**
 * `rows` deliveries: most succeeded long ago, a share pending and due, a little pending later or
 * failed. Written with generate_series in chunks, indexes built after the load (FK checks are
 * skipped with session_replication_role: history rows need no jobs rows for this test).
 * Finished rows carry a short payload to keep generation to minutes; the claim never reads them.
 */
async function generate(client: pg.Client, tenantId: string, url: string, rows: number, pendingShare: number, log: (m: string) => void) {
  const restore = await dropIndexesForLoad(client);
  await client.query("set session_replication_role = replica");
  const due = Math.max(1, Math.round(pendingShare * PER_TEN_THOUSAND));
  const later = Math.max(1, Math.round(due / 2));
  const failed = Math.max(1, Math.round(due / 5));
  const fullPayload = JSON.stringify(webhookPayload());
  const shortPayload = JSON.stringify({ event: JOB_COMPLETED_EVENT, status: "completed" });
  for (let done = 0; done < rows; done += CHUNK) {
    const size = Math.min(CHUNK, rows - done);
    await client.query(
      // The destination columns are written here: in the replica role no trigger fills them.
      `insert into webhook_outbox.webhook_deliveries
         (tenant_id, job_id, event_type, url, payload, status, attempt_count, max_attempts, retry_delays_ms, timeout_ms,
          connect_timeout_ms, next_attempt_at, last_response_status, created_at, finished_at, destination, destination_id)
       select $1, gen_random_uuid(), $2, $3,
              case when b < $7::int then $4::jsonb else $5::jsonb end,
              case when b < $7::int then 'pending' when b < $8::int then 'failed' else 'succeeded' end,
              case when b < $7::int then 0 when b < $8::int then $10::int else 1 end,
              $10::int, $11::int[], $12::int, $13::int,
              case when b < $6::int then now() - (g % 60000) * interval '1 millisecond'
                   when b < $7::int then now() + interval '1 day' + (g % 60000) * interval '1 millisecond' end,
              case when b < $7::int then null when b < $8::int then 500 else 200 end,
              now() - interval '30 days' + (g::float8 / $9::float8) * interval '30 days',
              case when b < $7::int then null else now() - interval '30 days' + (g::float8 / $9::float8) * interval '30 days' end,
              ${destinationSql("$3::text")}, ${destinationIdSql("$1::uuid", "$3::text")}
       from (select g, (g * 7919) % ${PER_TEN_THOUSAND} as b from generate_series($14::bigint, $15::bigint) g) s`,
      [
        tenantId,
        JOB_COMPLETED_EVENT,
        url,
        fullPayload,
        shortPayload,
        due,
        due + later,
        due + later + failed,
        rows,
        defaultPolicy.retryDelaysMs.length,
        defaultPolicy.retryDelaysMs,
        defaultPolicy.timeoutMs,
        defaultPolicy.connectTimeoutMs,
        done + 1,
        done + size,
      ],
    );
    if (rows > CHUNK) log(`claim: generated ${done + size} of ${rows} rows`);
  }
  await client.query("set session_replication_role = origin");
  log(`claim: rebuilding indexes and constraints on ${rows} rows`);
  await client.query("set maintenance_work_mem = '256MB'");
  for (const statement of restore) await client.query(statement);
  await client.query("vacuum analyze webhook_outbox.webhook_deliveries");
}

function planUsesIndex(plan: string): boolean {
  return plan.includes(CLAIM_INDEX);
}

async function explainClaim(client: pg.Client, statement: { text: string; values: unknown[] }, generic: boolean): Promise<string> {
  await client.query("begin");
  try {
    if (generic) await client.query("set local plan_cache_mode = force_generic_plan");
    await client.query(`prepare bench_claim_explain as ${statement.text}`);
    const { rows } = await client.query<{ "QUERY PLAN": string }>(
      `explain (analyze, buffers) execute bench_claim_explain(${statement.values.map((value) => literal(client, value)).join(", ")})`,
    );
    return rows.map((row) => row["QUERY PLAN"]).join("\n");
  } finally {
    await client.query("rollback");
    await client.query("deallocate bench_claim_explain").catch(() => undefined);
  }
}

/** Times the worker's exact claim statement (rolled back each time) on a table of `rows` deliveries. */
export async function runClaim(settings: BenchSettings, rows: number, receiverUrl: string, log: (m: string) => void): Promise<ClaimResult> {
  return withScratchDatabase(settings.adminUrl, "claim", async ({ url, database }) => {
    const tenant = await createTenant(database, "bench");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const generateStarted = performance.now();
      await generate(client, tenant.tenantId, receiverUrl, rows, settings.claimPendingShare, log);
      const generateSeconds = (performance.now() - generateStarted) / 1000;
      const { rows: dueRows } = await client.query<{ n: number }>(
        "select count(*)::int as n from webhook_outbox.webhook_deliveries where status in ('pending', 'delivering') and next_attempt_at <= now()",
      );

      // One connection, so claimDue runs inside a transaction the bench controls.
      const handle = queryOn(client);
      // The receiver, as a worker draining it knows it: answering quickly.
      const fast = [new URL(receiverUrl).host.toLowerCase()];
      const timings: number[] = [];
      let claimed = 0;
      // The first runs prepare the statement and warm the cache; they are not counted.
      for (let run = -WARM_UP_RUNS; run < settings.claimRuns; run++) {
        await client.query("begin");
        const started = performance.now();
        const { deliveries: batch } = await claimDue(handle, claimInput(settings.batchSize, fast));
        if (run >= 0) timings.push(performance.now() - started);
        await client.query("rollback");
        claimed = batch.length;
      }
      const statement = await claimStatement(claimInput(settings.batchSize, fast));
      const plan = await explainClaim(client, statement, false);
      const genericPlan = await explainClaim(client, statement, true);
      return {
        rows,
        dueRows: dueRows[0]?.n ?? 0,
        generateSeconds,
        runs: settings.claimRuns,
        claimedPerRun: claimed,
        medianMs: median(timings),
        p95Ms: percentile(timings, 95),
        customPlanUsesClaimIndex: planUsesIndex(plan),
        genericPlanUsesClaimIndex: planUsesIndex(genericPlan),
        planExcerpt: plan
          .split("\n")
          .filter((line) => /Scan .*webhook_deliveries|Execution Time/.test(line))
          .map((line) => line.trim()),
        plan,
      };
    } finally {
      await client.end();
    }
  });
}
