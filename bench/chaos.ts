/**
 * npm run chaos — the real service under create and delivery load while its database connections
 * are cut every way production cuts them, then checks the outbox's promises in SQL.
 *
 * An `api` process and CHAOS_WORKERS `worker` processes run against a receiver that fails a share
 * of requests. Phase 1 (failover): CHAOS_TERMINATE_ROUNDS times, every backend of the database is
 * terminated (pg_terminate_backend, what a failover or a proxy restart does) while jobs are created
 * and delivered; afterwards the service must heal by itself: /readyz 200, a burst of creates all
 * accepted, and (CHAOS_RATE_CHECK=1) creates as fast as before within 20%. Phase 2 (crashes): the
 * remaining jobs are created while workers are killed with SIGKILL and restarted, and the workers'
 * database link is cut through a TCP proxy. Then: SIGTERM makes every process exit 0 and log
 * `stopped`; no log line carries the API key, the signing secret or the internal token; and in SQL,
 * every terminal job has one delivery, nothing is left unfinished, no delivery failed before its
 * schedule was spent on real attempts (interrupted ones spend nothing) and none ended failed on an
 * interrupted attempt. Reported beside: interrupted attempts the receiver never saw (a kill between
 * dispatch and arrival) and failed deliveries the receiver had once acknowledged (a 2xx cut off by a
 * kill or the sender's timeout, followed by real failures).
 *
 * Needs DATABASE_URL (a server it may create a database on). Sizes: CHAOS_JOBS (default 2000),
 * CHAOS_WORKERS (3), CHAOS_FAILURE_RATE (0.3), CHAOS_TERMINATE_ROUNDS (30), CHAOS_RATE_CHECK (1),
 * CHAOS_SECONDS (max run time, 300). Phase 1 creates at most half of CHAOS_JOBS (plus what its two
 * 3-second rate measurements create), phase 2 the other half. CI runs a short version (.ci/run).
 */
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createTenant } from "../src/tenants/tenant-service.js";
import { listeningUrl } from "./lib/api-process.js";
import { createScratchDatabase } from "./lib/database.js";
import { TcpProxy } from "./lib/tcp-proxy.js";

const JOBS = Number(process.env.CHAOS_JOBS ?? 2000);
const WORKERS = Number(process.env.CHAOS_WORKERS ?? 3);
const FAILURE_RATE = Number(process.env.CHAOS_FAILURE_RATE ?? 0.3);
const TERMINATE_ROUNDS = Number(process.env.CHAOS_TERMINATE_ROUNDS ?? 30);
const RATE_CHECK = (process.env.CHAOS_RATE_CHECK ?? "1") === "1";
const MAX_SECONDS = Number(process.env.CHAOS_SECONDS ?? 300);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const INTERNAL_TOKEN = `chaos-internal-${randomBytes(16).toString("hex")}`;
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  console.error("npm run chaos needs DATABASE_URL (a Postgres server it may create a database on)");
  process.exit(2);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** A service process of the CLI whose every output line is kept (for the secrets check and `stopped`). */
interface Service {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function startCli(command: "api" | "worker", env: Record<string, string>, allLines: string[]): Service {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", command], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on("line", (line) => {
      lines.push(line);
      allLines.push(line);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, lines, exited };
}

/** The URL from the API's "API listening" line, once it logs it; throws with its last lines if it exits first. */
async function apiUrlOf(api: Service): Promise<string> {
  let exited = false;
  void api.exited.then(() => (exited = true));
  for (let tries = 0; tries <= 300; tries++) {
    for (const line of api.lines) {
      const url = listeningUrl(line);
      if (url !== undefined) return url;
    }
    if (exited) break;
    await sleep(100);
  }
  throw new Error(`the api process never listened${exited ? " (it exited)" : ""}:\n${api.lines.slice(-20).join("\n")}`);
}

async function main(): Promise<number> {
  const scratch = await createScratchDatabase(adminUrl as string, "run", { prefix: "wo_chaos" });
  const { database, url: databaseUrl } = scratch;
  const problems: string[] = [];
  const allLines: string[] = [];

  // The receiver: fails a share of requests with 500, notes every (webhook-id, attempt) it saw and those it answered 2xx.
  const okReceipts = new Map<string, number[]>();
  const seen = new Set<string>();
  let received = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      const id = String(req.headers["webhook-id"]);
      const attempt = Number(req.headers["x-webhook-attempt"]);
      seen.add(`${id}:${attempt}`);
      if (Math.random() < FAILURE_RATE) return void res.writeHead(500).end("chaos");
      okReceipts.set(id, [...(okReceipts.get(id) ?? []), attempt]);
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", () => resolve()));
  const webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

  const tenant = await createTenant(database, "chaos");
  const proxy = await TcpProxy.start(databaseUrl);
  const common = {
    WEBHOOK_ALLOW_INSECURE_URLS: "true",
    WEBHOOK_RETRY_DELAYS: "0,200ms,400ms,800ms",
    WEBHOOK_TIMEOUT_MS: "5000",
    LOG_LEVEL: "info",
  };
  // Port 0: the kernel picks a free port and the API logs its URL (a port picked here at random
  // could be taken, e.g. by an outgoing connection's ephemeral port, and the API would never listen).
  const api = startCli(
    "api",
    { ...common, DATABASE_URL: databaseUrl, PORT: "0", HOST: "127.0.0.1", INTERNAL_API_TOKEN: INTERNAL_TOKEN },
    allLines,
  );
  const apiUrl = await apiUrlOf(api);
  const workerEnv = {
    ...common,
    DATABASE_URL: proxy.rewrite(databaseUrl),
    WORKER_POLL_INTERVAL_MS: "200",
    LEASE_MARGIN_MS: "500",
    SHUTDOWN_GRACE_MS: "1000",
  };
  const workers: Service[] = [];
  const startWorker = (slot: number) => void (workers[slot] = startCli("worker", workerEnv, allLines));
  for (let slot = 0; slot < WORKERS; slot++) startWorker(slot);

  const readyz = async () => (await fetch(`${apiUrl}/readyz`).catch(() => undefined))?.status;
  for (let tries = 0; (await readyz()) !== 200; tries++) {
    if (tries > 300) throw new Error("the api process never became ready");
    await sleep(100);
  }

  const call = async (method: string, path: string, token: string, body: unknown) => {
    const response = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { jobId: string };
  };
  /** One job created and made terminal over HTTP; false when the service refused (503 during a cut). */
  let created = 0;
  const oneJob = async (): Promise<boolean> => {
    const i = created;
    try {
      const job = await call("POST", "/api/v1/generate", tenant.apiKey, { prompt: `chaos ${i}`, webhookUrl });
      created++;
      // A terminal report is retried until it lands: the job must not be left open.
      for (let tries = 0; ; tries++) {
        try {
          await call("PATCH", `/internal/v1/jobs/${job.jobId}/projects/0`, INTERNAL_TOKEN, i % 10 === 0
            ? { status: "failed", error: { code: "UNSAFE_CONTENT" } }
            : { status: "completed", videoUrl: `https://cdn.example.com/${i}.mp4` });
          return true;
        } catch (error) {
          if (tries > 200) throw error;
          await sleep(50);
        }
      }
    } catch {
      return false;
    }
  };
  /** Jobs per second created and completed by 16 concurrent loops for `ms`. */
  const measureRate = async (ms: number): Promise<number> => {
    const until = Date.now() + ms;
    let done = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (Date.now() < until) if (await oneJob()) done++;
    }));
    return done / (ms / 1000);
  };

  // Phase 1: failovers.
  const before = await measureRate(3_000);
  let terminated = 0;
  let load = true;
  // Half of the jobs at most: the other half is created under the crashes of phase 2.
  const background = Promise.all(Array.from({ length: 16 }, async () => {
    while (load && created < JOBS / 2) await oneJob();
  }));
  for (let round = 0; round < TERMINATE_ROUNDS; round++) {
    const rows = await database.query<{ n: number }>(
      `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid()`,
    );
    terminated += rows[0]?.n ?? 0;
    await sleep(700 + Math.random() * 300);
  }
  load = false;
  await background;
  let healedInMs = 0;
  for (const started = Date.now(); (await readyz()) !== 200; healedInMs = Date.now() - started) {
    if (Date.now() - started > 15_000) {
      problems.push("/readyz did not answer 200 within 15 s of the last failover");
      break;
    }
    await sleep(100);
  }
  const burst = await Promise.all(Array.from({ length: 32 }, () => oneJob()));
  if (!burst.every(Boolean)) problems.push(`after the failovers ${burst.filter((ok) => !ok).length} of 32 concurrent creates were refused`);
  const after = await measureRate(3_000);
  log(`${TERMINATE_ROUNDS} failovers (${terminated} backends terminated): ${before.toFixed(0)} jobs/s before, ${after.toFixed(0)} after; ready again in ${healedInMs} ms`);
  if (RATE_CHECK && after < before * 0.8) problems.push(`creates ran at ${after.toFixed(0)}/s after the failovers, ${before.toFixed(0)}/s before`);

  // Phase 2: worker crashes and link cuts while the rest of the jobs are created.
  let kills = 0;
  let cuts = 0;
  let chaosOn = true;
  const chaos = (async () => {
    while (chaosOn) {
      await sleep(500 + Math.random() * 1000);
      if (!chaosOn) break;
      // The first two are always kills: every run crashes workers under load at least twice.
      if (kills < 2 || Math.random() < 0.75) {
        const slot = Math.floor(Math.random() * WORKERS);
        workers[slot]?.child.kill("SIGKILL");
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
  const started = Date.now();
  const phaseTwoEnds = created + Math.ceil(JOBS / 2);
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (created < phaseTwoEnds) await oneJob();
  }));
  log(`${created} jobs created and completed; chaos continues while deliveries drain`);

  const deadline = started + MAX_SECONDS * 1000;
  while (Date.now() < deadline) {
    const [row] = await database.query<{ open: number }>(
      "select count(*)::int as open from webhook_outbox.webhook_deliveries where status in ('pending', 'delivering')",
    );
    if ((row?.open ?? 0) === 0) break;
    await sleep(500);
  }
  chaosOn = false;
  await chaos;
  proxy.restore();
  const drainedSeconds = (Date.now() - started) / 1000;
  // A worker killed as the chaos ended was not restarted: start it, so every slot stops cleanly below.
  for (const [slot, worker] of workers.entries()) {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) startWorker(slot);
  }

  // SIGTERM: every process stops claiming, finishes or releases its work, exits 0 saying `stopped`.
  // A worker restarted a moment ago is let finish starting first (a signal before that is a kill).
  for (const worker of workers) {
    for (let waited = 0; !worker.lines.some((line) => line.includes("worker started")) && waited < 30_000; waited += 100) await sleep(100);
  }
  for (const service of [api, ...workers]) service.child.kill("SIGTERM");
  const codes = await Promise.all([api, ...workers].map((service) => service.exited));
  const names = ["api", ...workers.map((_, i) => `worker ${i}`)];
  const unclean = [api, ...workers].flatMap((service, i) =>
    codes[i] !== 0 || !service.lines.some((line) => line.includes('"stopped"')) ? [`${names[i]} (exit ${codes[i]})`] : [],
  );
  if (unclean.length > 0) {
    problems.push(`after SIGTERM, no exit 0 with a "stopped" line from: ${unclean.join(", ")}`);
    for (const [i, service] of [api, ...workers].entries()) {
      if (unclean.some((entry) => entry.startsWith(`${names[i]} `))) console.log(`${names[i]}'s last lines:\n${service.lines.slice(-5).join("\n")}`);
    }
  }

  const secrets = [tenant.apiKey, tenant.signingSecret, INTERNAL_TOKEN];
  const leaking = allLines.filter((line) => secrets.some((secret) => line.includes(secret)));
  if (leaking.length > 0) problems.push(`${leaking.length} log line(s) carry a credential`);

  const [facts] = await database.query<Record<string, number>>(`
    select
      (select count(*)::int from webhook_outbox.jobs where status in ('completed', 'partial', 'failed')) as terminal_jobs,
      (select count(*)::int from webhook_outbox.jobs where status not in ('completed', 'partial', 'failed')) as open_jobs,
      (select count(*)::int from webhook_outbox.jobs j where j.status in ('completed', 'partial', 'failed')
         and (select count(*) from webhook_outbox.webhook_deliveries d where d.job_id = j.id) <> 1) as jobs_without_exactly_one_delivery,
      (select count(*)::int from webhook_outbox.webhook_deliveries) as deliveries,
      (select count(*)::int from webhook_outbox.webhook_deliveries where status = 'succeeded') as succeeded,
      (select count(*)::int from webhook_outbox.webhook_deliveries where status = 'failed') as failed,
      (select count(*)::int from webhook_outbox.webhook_deliveries where status in ('pending', 'delivering')) as unfinished,
      -- A failure must come from its whole schedule of real attempts (or from the interruption bound).
      (select count(*)::int from webhook_outbox.webhook_deliveries
         where status = 'failed' and attempt_count - interruptions < cardinality(retry_delays_ms) and interruptions < 5)
        as failed_before_budget,
      (select count(*)::int from webhook_outbox.webhook_deliveries d
         where d.attempt_count <> (select count(*) from webhook_outbox.webhook_delivery_attempts a where a.delivery_id = d.id))
        as deliveries_with_unrecorded_attempts,
      -- A delivery whose last attempt was cut off is tried again: it never ends failed on an interruption.
      (select count(*)::int from webhook_outbox.webhook_deliveries d
         where d.status = 'failed' and d.interruptions < 5
           and (select a.outcome from webhook_outbox.webhook_delivery_attempts a where a.delivery_id = d.id
                order by a.attempt_number desc limit 1) = 'interrupted') as failed_on_an_interruption,
      (select count(*)::int from webhook_outbox.webhook_delivery_attempts) as attempts,
      (select count(*)::int from webhook_outbox.webhook_delivery_attempts where outcome = 'interrupted') as interrupted_attempts
  `);
  const interrupted = await database.query<{ id: string; attempt: number }>(
    "select delivery_id as id, attempt_number as attempt from webhook_outbox.webhook_delivery_attempts where outcome = 'interrupted'",
  );
  const unsentInterrupted = interrupted.filter((row) => !seen.has(`${row.id}:${row.attempt}`)).length;
  const failedIds = new Set(
    (await database.query<{ id: string }>("select id from webhook_outbox.webhook_deliveries where status = 'failed'")).map((row) => row.id),
  );
  const acknowledgedButFailed = [...okReceipts.keys()].filter((id) => failedIds.has(id)).length;

  // A duplicate is a 2xx the receiver gave for an attempt the outbox did not record as succeeded:
  // allowed for attempts cut by a kill (interrupted) or abandoned by the sender's timeout.
  const duplicates = [...okReceipts].flatMap(([id, attempts]) => (attempts.length > 1 ? attempts.map((attempt) => ({ id, attempt })) : []));
  const outcomes = await database.query<{ outcome: string | null; error_kind: string | null }>(
    `select a.outcome, a.error_kind
     from unnest($1::uuid[], $2::int[]) as r(id, attempt)
     left join webhook_outbox.webhook_delivery_attempts a on a.delivery_id = r.id and a.attempt_number = r.attempt`,
    [duplicates.map((d) => d.id), duplicates.map((d) => d.attempt)],
  );
  const duplicateReceipts = outcomes.filter((row) => row.outcome !== "succeeded").length;
  const byKill = outcomes.filter((row) => row.outcome === "interrupted").length;
  const byTimeout = outcomes.filter((row) => row.outcome !== "interrupted" && row.outcome !== "succeeded" && row.error_kind === "timeout").length;
  const unexplained = duplicateReceipts - byKill - byTimeout;
  console.table({
    jobs: created,
    workers: WORKERS,
    "failure rate": FAILURE_RATE,
    "failovers (every backend terminated)": TERMINATE_ROUNDS,
    "backends terminated": terminated,
    "jobs/s before the failovers": before.toFixed(0),
    "jobs/s after the failovers": after.toFixed(0),
    "worker SIGKILLs": kills,
    "database link cuts": cuts,
    "seconds to drain": drainedSeconds.toFixed(1),
    "requests received": received,
    ...facts,
    "interrupted attempts the receiver never saw": unsentInterrupted,
    "failed deliveries the receiver acknowledged": acknowledgedButFailed,
    "duplicate 2xx receipts": duplicateReceipts,
    "  of which cut by a kill": byKill,
    "  of which sender timed out": byTimeout,
    "  unexplained": unexplained,
    "log lines carrying a credential": leaking.length,
  });

  if (facts?.open_jobs) problems.push("a job left open");
  if (facts?.jobs_without_exactly_one_delivery) problems.push("a terminal job without exactly one delivery");
  if (facts?.unfinished) problems.push("deliveries still unfinished at the time limit");
  if (facts?.failed_before_budget) problems.push("a delivery failed before its schedule of real attempts was spent");
  if (facts?.deliveries_with_unrecorded_attempts) problems.push("attempts not recorded");
  if (facts?.failed_on_an_interruption) problems.push("a delivery ended failed on an interrupted attempt");
  if (unexplained > 0) problems.push("duplicates not explained by a kill or a timeout");
  console.log(problems.length === 0 ? "chaos: every check passed" : `chaos: FAILED: ${problems.join("; ")}`);

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
