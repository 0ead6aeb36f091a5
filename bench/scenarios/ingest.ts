import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import type { HttpOnlyApiMessage } from "../children/http-only-api.js";
import type { IngestLoadReport } from "../children/ingest-load.js";
import type { Database } from "../../src/db/client.js";
import { createTenant } from "../../src/tenants/tenant-service.js";
import { startApiProcess } from "../lib/api-process.js";
import { withScratchDatabase } from "../lib/database.js";
import { ROOT, buildDist, forkTs, stopProcess } from "../lib/processes.js";
import { perSecond } from "../lib/stats.js";

export interface IngestSettings {
  /** A server the bench may create databases on. */
  adminUrl: string;
  /** Length of each measured load (the API's and the HTTP-only ceiling's). */
  seconds: number;
  /** Keep-alive clients of the load, each creating then completing jobs back to back. */
  clients: number;
  /** The API's LOG_LEVEL (and the ceiling's); default: the product's (a line per request). */
  logLevel?: string;
  /** Single-row INSERT commits: how long, and how many connections. Defaults 3 s, 10. */
  insertSeconds?: number;
  insertConnections?: number;
  /** Builds dist/ first (the API runs as `node dist/cli.js api`); default: only when dist/ is missing. */
  build?: boolean;
  /** Finished jobs in the database before the API starts, analyzed; default 20,000. */
  seededJobs?: number;
}

export interface IngestResult {
  /** Created + completed requests per second the real API answered (202 / 200). */
  requestsPerSecond: number;
  jobsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * Single-row INSERT commits per second from a pool (insertConnections) on the same server: the
   * mean of a measurement just before the API's load and one just after, so that both face the
   * same machine.
   */
  insertCeilingPerSecond: number;
  insertCeilingBeforeAfter: [number, number];
  /** The same requests against the same Hono stack answering canned jobs, with no database. */
  httpOnlyCeilingPerSecond: number;
  httpOnlyP99Ms: number;
  /** requestsPerSecond ÷ insertCeilingPerSecond: the target is at least 0.5. */
  ofInsertCeiling: number;
  failures: number;
}

const INTERNAL_TOKEN = "bench-ingest-internal-token-0123456789";
const DEFAULT_SEEDED_JOBS = 20_000;

/**
 * Finished jobs, one project each, then ANALYZE: the state of a database in service. On an empty,
 * never-analyzed one the API's prepared statements get plans made for empty tables (sequential
 * scans) and keep them until autovacuum first analyzes the tables, a minute or more into a run:
 * a measurement of those first seconds would be a measurement of that.
 */
async function seedFinishedJobs(database: Database, tenantId: string, count: number): Promise<void> {
  await database.query(
    `with j as (
       insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, deadline_at, completed_at)
       select $1, 'nouvel', 'seeded', 'completed', now(), now() from generate_series(1, $2::int)
       returning id
     )
     insert into webhook_outbox.job_projects (job_id, index, status, video_url)
     select id, 0, 'completed', 'https://cdn.example.com/seeded.mp4' from j`,
    [tenantId, count],
  );
  await database.query("analyze webhook_outbox.jobs, webhook_outbox.job_projects, webhook_outbox.api_keys, webhook_outbox.tenants");
}
const WARM_UP_SECONDS = 2;

/** Runs the load child against `targetUrl` and returns its report. */
function runLoad(targetUrl: string, apiKey: string, settings: IngestSettings): Promise<IngestLoadReport> {
  const child = forkTs("bench/children/ingest-load.ts", {
    TARGET_URL: targetUrl,
    API_KEY: apiKey,
    INTERNAL_TOKEN,
    CLIENTS: String(settings.clients),
    SECONDS: String(settings.seconds),
    WARMUP_SECONDS: String(WARM_UP_SECONDS),
  });
  return new Promise<IngestLoadReport>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the ingest load exited without a report (${code})`)));
    child.on("message", (message: IngestLoadReport) => {
      if (message.type === "done") resolve(message);
    });
  });
}

/** Single-row INSERTs, each its own commit, from `connections` connections looping for `seconds`. */
async function insertCeiling(url: string, seconds: number, connections: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: connections });
  // An idle connection cut under the pool (the scratch database dropped with force) must not
  // crash the run: an unhandled 'error' on a pool is fatal in Node.
  pool.on("error", () => undefined);
  try {
    await pool.query(
      "create table if not exists ingest_ceiling (id bigserial primary key, body text not null, created_at timestamptz not null default now())",
    );
    const loop = async (until: number) => {
      let count = 0;
      while (performance.now() < until) {
        await pool.query({ name: "ingest_ceiling_insert", text: "insert into ingest_ceiling (body) values ($1)", values: ["a red fox"] });
        count++;
      }
      return count;
    };
    await Promise.all(Array.from({ length: connections }, () => loop(performance.now() + 500)));
    const started = performance.now();
    const counts = await Promise.all(Array.from({ length: connections }, () => loop(started + seconds * 1000)));
    return perSecond(
      counts.reduce((sum, count) => sum + count, 0),
      performance.now() - started,
    );
  } finally {
    await pool.end();
  }
}

async function startHttpOnly(apiKey: string, tenantId: string, logLevel: string | undefined): Promise<{ child: ChildProcess; url: string }> {
  const child = forkTs("bench/children/http-only-api.ts", {
    API_KEY: apiKey,
    TENANT_ID: tenantId,
    INTERNAL_TOKEN,
    ...(logLevel === undefined ? {} : { LOG_LEVEL: logLevel }),
  }, "ignore");
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the HTTP-only API did not start within 60 s")), 60_000);
    child.once("exit", (code) => reject(new Error(`the HTTP-only API exited early (${code})`)));
    child.on("message", (message: HttpOnlyApiMessage) => {
      if (message.type !== "ready") return;
      clearTimeout(timer);
      resolve(message.port);
    });
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

/**
 * Ingest through the real `api` process (node dist/cli.js api) on a scratch database: `clients`
 * keep-alive clients in a separate process create a job and complete it, back to back, for
 * `seconds`; beside it the HTTP-only ceiling (the same stack, no database) and the single-row
 * INSERT commit ceiling, all on this machine in one run.
 */
export async function runIngest(settings: IngestSettings): Promise<IngestResult> {
  if (settings.build ?? !existsSync(join(ROOT, "dist", "cli.js"))) buildDist();
  const logLevel = settings.logLevel;
  return withScratchDatabase(settings.adminUrl, "ingest", async ({ url, database }) => {
    const tenant = await createTenant(database, "bench-ingest");
    await seedFinishedJobs(database, tenant.tenantId, settings.seededJobs ?? DEFAULT_SEEDED_JOBS);

    const measureInserts = () => insertCeiling(url, settings.insertSeconds ?? 3, settings.insertConnections ?? 10);
    const httpOnly = await startHttpOnly(tenant.apiKey, tenant.tenantId, logLevel);
    let ceiling: IngestLoadReport;
    try {
      ceiling = await runLoad(httpOnly.url, tenant.apiKey, settings);
    } finally {
      await stopProcess(httpOnly.child);
    }
    if (ceiling.failures > 0) throw new Error(`HTTP-only ceiling: ${ceiling.failures} failures: ${ceiling.failureSamples.join("; ")}`);

    const api = await startApiProcess(
      { DATABASE_URL: url, INTERNAL_API_TOKEN: INTERNAL_TOKEN, ...(logLevel === undefined ? {} : { LOG_LEVEL: logLevel }) },
      "dist",
    );
    let load: IngestLoadReport;
    let insertsBefore: number;
    try {
      insertsBefore = await measureInserts();
      load = await runLoad(api.url, tenant.apiKey, settings);
    } finally {
      await api.stop();
    }
    const insertsAfter = await measureInserts();
    const insertCeilingPerSecond = (insertsBefore + insertsAfter) / 2;
    const requestsPerSecond = perSecond(load.requests, load.elapsedMs);
    return {
      requestsPerSecond,
      jobsPerSecond: perSecond(load.jobs, load.elapsedMs),
      p50Ms: load.p50Ms,
      p99Ms: load.p99Ms,
      maxMs: load.maxMs,
      insertCeilingPerSecond,
      insertCeilingBeforeAfter: [insertsBefore, insertsAfter],
      httpOnlyCeilingPerSecond: perSecond(ceiling.requests, ceiling.elapsedMs),
      httpOnlyP99Ms: ceiling.p99Ms,
      ofInsertCeiling: requestsPerSecond / insertCeilingPerSecond,
      failures: load.failures,
    };
  });
}

/** `tsx bench/scenarios/ingest.ts`: one run, printed. Env: DATABASE_URL, BENCH_SECONDS (10), BENCH_CLIENTS (64), BENCH_LOG_LEVEL. */
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error("DATABASE_URL is required");
  const result = await runIngest({
    adminUrl,
    seconds: Number(process.env.BENCH_SECONDS ?? 10),
    clients: Number(process.env.BENCH_CLIENTS ?? 64),
    logLevel: process.env.BENCH_LOG_LEVEL,
  });
  const round = (value: number) => Math.round(value);
  console.log(`ingest: ${round(result.requestsPerSecond)} requests/s (${round(result.jobsPerSecond)} jobs/s), p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms, ${result.failures} failures`);
  const [before, after] = result.insertCeilingBeforeAfter.map(round);
  console.log(
    `single-row INSERT commit ceiling: ${round(result.insertCeilingPerSecond)}/s (${before} before, ${after} after; ingest is ${(result.ofInsertCeiling * 100).toFixed(0)}% of it)`,
  );
  console.log(`HTTP-only ceiling: ${round(result.httpOnlyCeilingPerSecond)} requests/s (p99 ${result.httpOnlyP99Ms.toFixed(1)} ms)`);
}
