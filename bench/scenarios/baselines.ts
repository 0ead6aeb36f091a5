import { makeWorkerUtils } from "graphile-worker";
import PgBoss from "pg-boss";
import type { Database } from "../../src/db/client.js";
import { withScratchDatabase } from "../lib/database.js";
import { newSigningSecret, webhookPayload } from "../lib/payload.js";
import { ATTEMPTS_TABLE_SQL } from "../lib/post.js";
import { forkTs, peakRssMiB, pollUntil, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import type { BenchSettings } from "../lib/settings.js";
import { perSecond } from "../lib/stats.js";

export interface BaselineResult {
  system: string;
  /** Worker processes, each configured as `settings` says (compare with our drain on as many). */
  processes: number;
  settings: string;
  deliveries: number;
  /**
   * First attempt started → last job completed: pg-boss's own completed_on; graphile-worker deletes
   * completed jobs, so there it is when the bench's 20 ms poll saw the last one gone.
   */
  perSecond: number;
  endFrom: "completed_on" | "poll";
  elapsedMs: number;
  peakRssMiB: number | undefined;
  receiverRequests: number;
}

const CHUNK = 5_000;
const QUEUE = "webhook";

async function firstAttemptMs(database: Database): Promise<number> {
  const [row] = await database.query<{ first_ms: number }>(
    "select (extract(epoch from min(started_at)) * 1000)::float8 as first_ms from bench_attempts",
  );
  return Number(row?.first_ms);
}

/** Starts the baseline's worker processes, waits for every job to complete, then stops them. */
async function drainWith(
  label: string,
  settingsText: string,
  n: number,
  processes: number,
  database: Database,
  receiver: ReceiverProcess,
  start: () => ReturnType<typeof forkTs>,
  progress: () => Promise<{ completed: number; failed: number; lastCompletedMs?: number }>,
  pollMs: number,
): Promise<BaselineResult> {
  await receiver.report();
  const children = Array.from({ length: processes }, start);
  try {
    const done = await pollUntil(
      `${label} to complete ${n} jobs`,
      async () => {
        const exited = children.find((child) => child.exitCode !== null);
        if (exited) throw new Error(`${label} worker exited (${exited.exitCode})`);
        const state = await progress();
        if (state.failed > 0) throw new Error(`${label}: ${state.failed} jobs failed for good`);
        return state.completed >= n ? { polledAt: Date.now(), lastCompletedMs: state.lastCompletedMs } : undefined;
      },
      60_000 + n * 20,
      pollMs,
    );
    const peaks = children.map((child) => peakRssMiB(child.pid)).filter((value): value is number => value !== undefined);
    const endMs = done.lastCompletedMs ?? done.polledAt;
    const elapsedMs = endMs - (await firstAttemptMs(database));
    const { count } = await receiver.report();
    return {
      system: label,
      processes,
      settings: settingsText,
      deliveries: n,
      perSecond: perSecond(n, elapsedMs),
      endFrom: done.lastCompletedMs === undefined ? "poll" : "completed_on",
      elapsedMs,
      peakRssMiB: peaks.length > 0 ? Math.max(...peaks) : undefined,
      receiverRequests: count,
    };
  } finally {
    await Promise.all(children.map((child) => stopProcess(child)));
  }
}

/** graphile-worker 0.17: jobs added with addJobs in bulk, then `processes` worker processes drain them. */
export async function runGraphileWorker(settings: BenchSettings, receiver: ReceiverProcess, processes: number): Promise<BaselineResult> {
  const n = settings.n;
  return withScratchDatabase(
    settings.adminUrl,
    "graphile",
    async ({ url, database }) => {
      await database.query(ATTEMPTS_TABLE_SQL);
      const utils = await makeWorkerUtils({ connectionString: url });
      try {
        await utils.migrate();
        for (let done = 0; done < n; done += CHUNK) {
          await utils.addJobs(
            Array.from({ length: Math.min(CHUNK, n - done) }, () => ({ identifier: QUEUE, payload: webhookPayload(), maxAttempts: 3 })),
          );
        }
      } finally {
        await utils.release();
      }
      await database.query("vacuum analyze graphile_worker._private_jobs");
      const secret = newSigningSecret();
      return drainWith(
        "graphile-worker",
        `concurrency ${settings.concurrency}, localQueue ${Math.max(settings.concurrency + 1, 500)}, batched completion`,
        n,
        processes,
        database,
        receiver,
        () =>
          forkTs("bench/children/graphile-worker.ts", {
            DATABASE_URL: url,
            RECEIVER_URL: receiver.url,
            SIGNING_SECRET: secret,
            CONCURRENCY: String(settings.concurrency),
            MAX_SECONDS: String(120 + Math.ceil(n / 50)),
          }),
        async () => {
          // Completed jobs are deleted: done when none is left and every job has its 2xx attempt row.
          const [row] = await database.query<{ open: number; dead: number }>(
            `select count(*)::int as open, count(*) filter (where attempts >= max_attempts and last_error is not null)::int as dead
             from graphile_worker._private_jobs`,
          );
          if (!row || row.open > 0) return { completed: 0, failed: row?.dead ?? 0 };
          const [attempted] = await database.query<{ n: number }>(
            "select count(distinct job_id)::int as n from bench_attempts where response_status between 200 and 299",
          );
          return { completed: attempted?.n ?? 0, failed: 0 };
        },
        20,
      );
    },
  );
}

/** pg-boss 10: jobs inserted in bulk, then `processes` processes with WORKERS work() loops of `batchSize` each. */
export async function runPgBoss(
  settings: BenchSettings,
  receiver: ReceiverProcess,
  batchSize: number,
  processes: number,
): Promise<BaselineResult> {
  const n = settings.n;
  return withScratchDatabase(settings.adminUrl, "pgboss", async ({ url, database }) => {
    await database.query(ATTEMPTS_TABLE_SQL);
    const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false, max: 4 });
    boss.on("error", (error) => console.error("pg-boss (bench):", error.message));
    await boss.start();
    try {
      await boss.createQueue(QUEUE, { name: QUEUE, retryLimit: 2, retryDelay: 0 });
      for (let done = 0; done < n; done += CHUNK) {
        await boss.insert(Array.from({ length: Math.min(CHUNK, n - done) }, () => ({ name: QUEUE, data: webhookPayload(), retryLimit: 2 })));
      }
    } finally {
      await boss.stop({ graceful: false, wait: true });
    }
    await database.query("vacuum analyze pgboss.job");
    const secret = newSigningSecret();
    return drainWith(
      `pg-boss batch ${batchSize}`,
      `batchSize ${batchSize}, ${settings.pgBossWorkers} work() loops, polling 0.5 s`,
      n,
      processes,
      database,
      receiver,
      () =>
        forkTs("bench/children/pg-boss-worker.ts", {
          DATABASE_URL: url,
          RECEIVER_URL: receiver.url,
          SIGNING_SECRET: secret,
          BATCH: String(batchSize),
          WORKERS: String(settings.pgBossWorkers),
          MAX_SECONDS: String(120 + Math.ceil(n / 50)),
        }),
      async () => {
        const [row] = await database.query<{ completed: number; failed: number; last_ms: number | null }>(
          `select count(*) filter (where state = 'completed')::int as completed, count(*) filter (where state = 'failed')::int as failed,
                  (extract(epoch from max(completed_on)) * 1000)::float8 as last_ms
           from pgboss.job where name = $1`,
          [QUEUE],
        );
        return { completed: row?.completed ?? 0, failed: row?.failed ?? 0, lastCompletedMs: row?.last_ms ?? undefined };
      },
      100,
    );
  });
}
