import { makeWorkerUtils } from "graphile-worker";
import PgBoss from "pg-boss";
import type { Database } from "../../src/db/client.js";
import { withScratchDatabase } from "../lib/database.js";
import { newSigningSecret, webhookPayload } from "../lib/payload.js";
import { ATTEMPTS_TABLE_SQL } from "../lib/post.js";
import { forkTs, peakRssMiB, pollUntil, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import type { BenchSettings } from "../lib/settings.js";
import { perSecond } from "../lib/stats.js";
import { measuredJobsDueAt, waitUntilDue } from "../lib/warmup.js";

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

/** Inserts in chunks: first the warm-up jobs, due now; then the N measured ones, due at `dueAt`. */
async function insertWarmUpThenHeld(
  warmup: number,
  n: number,
  dueAt: Date,
  insert: (size: number, heldUntil: Date | undefined) => Promise<unknown>,
): Promise<void> {
  for (const [count, heldUntil] of [[warmup, undefined], [n, dueAt]] as const) {
    for (let done = 0; done < count; done += CHUNK) await insert(Math.min(CHUNK, count - done), heldUntil);
  }
}

async function firstAttemptMs(database: Database): Promise<number> {
  const [row] = await database.query<{ first_ms: number }>(
    "select (extract(epoch from min(started_at)) * 1000)::float8 as first_ms from bench_attempts",
  );
  return Number(row?.first_ms);
}

/** The unmeasured first phase: its jobs are due from the start, the measured ones at `dueAt`. */
interface WarmUp {
  count: number;
  dueAt: Date;
  done: () => Promise<boolean>;
}

interface Progress {
  /** A cheap probe (one index entry): true while jobs are certainly still waiting. */
  busy: () => Promise<boolean>;
  count: () => Promise<{ completed: number; failed: number; lastCompletedMs?: number }>;
}

/**
 * Starts the baseline's worker processes, lets them drain the warm-up jobs, clears their attempt
 * rows, waits for the N measured jobs to come due and complete, then stops the processes.
 */
async function drainWith(
  label: string,
  settingsText: string,
  n: number,
  processes: number,
  database: Database,
  receiver: ReceiverProcess,
  start: () => ReturnType<typeof forkTs>,
  warmUp: WarmUp,
  progress: Progress,
  pollMs: number,
): Promise<BaselineResult> {
  const children = Array.from({ length: processes }, start);
  const alive = () => {
    const exited = children.find((child) => child.exitCode !== null);
    if (exited) throw new Error(`${label} worker exited (${exited.exitCode})`);
  };
  try {
    await pollUntil(
      `${label} to complete ${warmUp.count} warm-up jobs`,
      async () => {
        alive();
        return (await warmUp.done()) ? true : undefined;
      },
      60_000 + warmUp.count * 20,
      pollMs,
    );
    await receiver.report();
    await database.query("truncate bench_attempts");
    await waitUntilDue(warmUp.dueAt);
    let lastCountAt = Date.now();
    const done = await pollUntil(
      `${label} to complete ${n} jobs`,
      async () => {
        alive();
        // The full count reads the whole table: only when the probe finds nothing waiting, or once a
        // second to notice jobs that failed for good, so the poll takes little from the drain.
        if ((await progress.busy()) && Date.now() - lastCountAt < 1_000) return undefined;
        lastCountAt = Date.now();
        const state = await progress.count();
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
      const dueAt = measuredJobsDueAt(settings);
      const utils = await makeWorkerUtils({ connectionString: url });
      try {
        await utils.migrate();
        await insertWarmUpThenHeld(settings.warmup, n, dueAt, (size, runAt) =>
          utils.addJobs(
            Array.from({ length: size }, () => ({ identifier: QUEUE, payload: webhookPayload(), maxAttempts: 3, ...(runAt ? { runAt } : {}) })),
          ),
        );
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
            MAX_SECONDS: String(120 + Math.ceil((settings.warmup + n) / 50)),
          }),
        {
          count: settings.warmup,
          dueAt,
          // Completed jobs are deleted: warm when only the measured ones are left.
          done: async () => {
            const [row] = await database.query<{ left: number }>(
              "select count(*)::int as left from graphile_worker._private_jobs where run_at < $1",
              [dueAt.toISOString()],
            );
            return row?.left === 0;
          },
        },
        {
          busy: async () =>
            (await database.query("select 1 from graphile_worker._private_jobs order by id limit 1")).length > 0,
          // Completed jobs are deleted: done when none is left and every job has its 2xx attempt row.
          count: async () => {
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
    const dueAt = measuredJobsDueAt(settings);
    const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false, max: 4 });
    boss.on("error", (error) => console.error("pg-boss (bench):", error.message));
    await boss.start();
    try {
      await boss.createQueue(QUEUE, { name: QUEUE, retryLimit: 2, retryDelay: 0 });
      await insertWarmUpThenHeld(settings.warmup, n, dueAt, (size, startAfter) =>
        boss.insert(
          Array.from({ length: size }, () => ({ name: QUEUE, data: webhookPayload(), retryLimit: 2, ...(startAfter ? { startAfter } : {}) })),
        ),
      );
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
          MAX_SECONDS: String(120 + Math.ceil((settings.warmup + n) / 50)),
        }),
      {
        count: settings.warmup,
        dueAt,
        done: async () => (await pgBossProgress(database)).completed >= settings.warmup,
      },
      {
        // job_i5 holds the jobs not yet fetched; the active ones at the tail are left to the count.
        busy: async () =>
          (await database.query("select 1 from pgboss.job where name = $1 and state < 'active' limit 1", [QUEUE])).length > 0,
        count: async () => {
          const state = await pgBossProgress(database);
          return { ...state, completed: state.completed - settings.warmup };
        },
      },
      100,
    );
  });
}

/** pg-boss's completed and failed jobs so far, and its last completion time, in epoch ms. */
async function pgBossProgress(database: Database): Promise<{ completed: number; failed: number; lastCompletedMs?: number }> {
  const [row] = await database.query<{ completed: number; failed: number; last_ms: number | null }>(
    `select count(*) filter (where state = 'completed')::int as completed, count(*) filter (where state = 'failed')::int as failed,
            (extract(epoch from max(completed_on)) * 1000)::float8 as last_ms
     from pgboss.job where name = $1`,
    [QUEUE],
  );
  return { completed: row?.completed ?? 0, failed: row?.failed ?? 0, lastCompletedMs: row?.last_ms ?? undefined };
}
