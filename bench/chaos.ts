/**
 * npm run chaos — runs the real service with several worker processes against a receiver that
 * fails a share of requests, kills workers with SIGKILL at random moments and restarts them,
 * cuts the workers' database link through a TCP proxy, then checks the outbox's promises in SQL.
 *
 * Needs DATABASE_URL (a server it may create a database on). Sizes: CHAOS_JOBS (default 2000),
 * CHAOS_WORKERS (3), CHAOS_FAILURE_RATE (0.3), CHAOS_SECONDS (max run time, 240).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { configWith } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { startService } from "../src/service.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createScratchDatabase } from "./lib/database.js";
import { TcpProxy } from "./lib/tcp-proxy.js";

const JOBS = Number(process.env.CHAOS_JOBS ?? 2000);
const WORKERS = Number(process.env.CHAOS_WORKERS ?? 3);
const FAILURE_RATE = Number(process.env.CHAOS_FAILURE_RATE ?? 0.3);
const MAX_SECONDS = Number(process.env.CHAOS_SECONDS ?? 240);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  console.error("npm run chaos needs DATABASE_URL (a Postgres server it may create a database on)");
  process.exit(2);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function main(): Promise<number> {
  const scratch = await createScratchDatabase(adminUrl as string, "run", { prefix: "wo_chaos" });
  const { database, url: databaseUrl } = scratch;

  // The receiver: fails a share of requests with 500, notes every attempt it answered 2xx per webhook-id.
  const okReceipts = new Map<string, number[]>();
  let received = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      if (Math.random() < FAILURE_RATE) return void res.writeHead(500).end("chaos");
      const id = String(req.headers["webhook-id"]);
      okReceipts.set(id, [...(okReceipts.get(id) ?? []), Number(req.headers["x-webhook-attempt"])]);
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", () => resolve()));
  const webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

  const proxy = await TcpProxy.start(databaseUrl);
  const config = configWith({
    DATABASE_URL: databaseUrl,
    PORT: 0,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    INTERNAL_API_TOKEN: "chaos",
    WEBHOOK_ALLOW_INSECURE_URLS: true,
    WEBHOOK_RETRY_DELAYS: [0, 200, 400, 800],
    WEBHOOK_TIMEOUT_MS: 5000,
  });
  const api = await startService({ config, logger: createLogger("warn"), api: true, worker: false, migrate: false });
  const tenant = await createTenant(database, "chaos");

  const workerEnv = {
    DATABASE_URL: proxy.rewrite(databaseUrl),
    WEBHOOK_ALLOW_INSECURE_URLS: "true",
    WORKER_POLL_INTERVAL_MS: "200",
    LEASE_MARGIN_MS: "500",
    SHUTDOWN_GRACE_MS: "1000",
    LOG_LEVEL: "error",
  };
  const workers: Array<ChildProcess | undefined> = [];
  const startWorker = (slot: number) => {
    workers[slot] = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "worker"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...workerEnv },
      stdio: ["ignore", "ignore", "inherit"],
    });
  };
  for (let slot = 0; slot < WORKERS; slot++) startWorker(slot);

  let kills = 0;
  let cuts = 0;
  let chaosOn = true;
  const chaos = (async () => {
    while (chaosOn) {
      await sleep(1000 + Math.random() * 2000);
      if (!chaosOn) break;
      if (Math.random() < 0.75) {
        const slot = Math.floor(Math.random() * WORKERS);
        workers[slot]?.kill("SIGKILL");
        kills++;
        await sleep(300);
        if (chaosOn) startWorker(slot);
      } else {
        proxy.cut();
        cuts++;
        await sleep(500 + Math.random() * 1000);
        proxy.restore();
      }
    }
  })();

  // Create and complete the jobs over HTTP, a few at a time.
  const started = Date.now();
  const call = async (method: string, path: string, token: string, body: unknown) => {
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { jobId: string };
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < JOBS) {
        const i = next++;
        const job = await call("POST", "/api/v1/generate", tenant.apiKey, { prompt: `chaos ${i}`, webhookUrl });
        const failed = i % 10 === 0;
        await call("PATCH", `/internal/v1/jobs/${job.jobId}/projects/0`, "chaos", failed
          ? { status: "failed", error: { code: "UNSAFE_CONTENT" } }
          : { status: "completed", videoUrl: `https://cdn.example.com/${i}.mp4` });
      }
    }),
  );
  log(`${JOBS} jobs created and completed in ${((Date.now() - started) / 1000).toFixed(1)} s; chaos continues while deliveries drain`);

  // Drain: keep the chaos going until every delivery has finished, or time runs out.
  const deadline = started + MAX_SECONDS * 1000;
  let open = Infinity;
  while (Date.now() < deadline) {
    const [row] = await database.query<{ open: number }>(
      "select count(*)::int as open from webhook_deliveries where status in ('pending', 'delivering')",
    );
    open = row?.open ?? 0;
    if (open === 0) break;
    await sleep(500);
  }
  chaosOn = false;
  await chaos;
  proxy.restore();
  const drainedSeconds = (Date.now() - started) / 1000;
  for (const worker of workers) worker?.kill("SIGTERM");
  await sleep(1500);

  const [facts] = await database.query<Record<string, number>>(`
    select
      (select count(*)::int from jobs where status in ('completed', 'partial', 'failed')) as terminal_jobs,
      (select count(*)::int from jobs j where j.status in ('completed', 'partial', 'failed')
         and (select count(*) from webhook_deliveries d where d.job_id = j.id) <> 1) as jobs_without_exactly_one_delivery,
      (select count(*)::int from webhook_deliveries) as deliveries,
      (select count(*)::int from webhook_deliveries where status = 'succeeded') as succeeded,
      (select count(*)::int from webhook_deliveries where status = 'failed') as failed,
      (select count(*)::int from webhook_deliveries where status in ('pending', 'delivering')) as unfinished,
      (select count(*)::int from webhook_deliveries where status = 'failed' and attempt_count <> max_attempts) as failed_before_limit,
      (select count(*)::int from webhook_deliveries d
         where d.attempt_count <> (select count(*) from webhook_delivery_attempts a where a.delivery_id = d.id)
            or (select max(attempt_number) from webhook_delivery_attempts a where a.delivery_id = d.id) <> d.attempt_count)
        as deliveries_with_unrecorded_attempts,
      (select count(*)::int from webhook_delivery_attempts) as attempts,
      (select count(*)::int from webhook_delivery_attempts where outcome = 'interrupted') as interrupted_attempts
  `);
  // A duplicate is a 2xx the receiver gave for an attempt the outbox did not record as succeeded.
  // Allowed: attempts cut by a kill (interrupted) or abandoned by the sender's timeout after the receiver answered.
  const duplicates = [...okReceipts].flatMap(([id, attempts]) =>
    attempts.length > 1 ? attempts.map((attempt) => ({ id, attempt })) : [],
  );
  const outcomes = await database.query<{ id: string; attempt: number; outcome: string; error_kind: string | null }>(
    `select r.id, r.attempt, a.outcome, a.error_kind
     from unnest($1::uuid[], $2::int[]) as r(id, attempt)
     left join webhook_delivery_attempts a on a.delivery_id = r.id and a.attempt_number = r.attempt`,
    [duplicates.map((d) => d.id), duplicates.map((d) => d.attempt)],
  );
  const duplicateReceipts = outcomes.filter((row) => row.outcome !== "succeeded").length;
  const byKill = outcomes.filter((row) => row.outcome === "interrupted").length;
  const byTimeout = outcomes.filter((row) => row.outcome !== "interrupted" && row.outcome !== "succeeded" && row.error_kind === "timeout").length;
  const unexplained = duplicateReceipts - byKill - byTimeout;
  const results: Record<string, number | string> = {
    jobs: JOBS,
    workers: WORKERS,
    "failure rate": FAILURE_RATE,
    "worker SIGKILLs": kills,
    "database link cuts": cuts,
    "seconds to drain": drainedSeconds.toFixed(1),
    "requests received": received,
    ...facts,
    "duplicate 2xx receipts": duplicateReceipts,
    "  of which cut by a kill": byKill,
    "  of which sender timed out": byTimeout,
    "  unexplained": unexplained,
  };
  console.table(results);

  const problems: string[] = [];
  if (facts?.jobs_without_exactly_one_delivery) problems.push("a terminal job without exactly one delivery");
  if (facts?.unfinished) problems.push("deliveries still unfinished at the time limit");
  if (facts?.failed_before_limit) problems.push("a delivery failed before its attempt limit");
  if (facts?.deliveries_with_unrecorded_attempts) problems.push("attempts not recorded");
  if (unexplained > 0) problems.push("duplicates not explained by a kill or a timeout");
  console.log(problems.length === 0 ? "chaos: every check passed" : `chaos: FAILED: ${problems.join("; ")}`);

  await api.stop();
  await proxy.close();
  receiver.close();
  await scratch.drop();
  return problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
