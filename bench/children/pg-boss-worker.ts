/**
 * The baseline webhook job on pg-boss 10: `work()` with a batch size, each batch's POSTs sent
 * concurrently and its attempt rows written in one insert. Jobs that failed are retried by
 * pg-boss (the successful ones are completed first, so only the failures come back).
 * Concurrency as its docs advise: call work() several times (WORKERS), each fetching BATCH jobs.
 * Env: DATABASE_URL, RECEIVER_URL, SIGNING_SECRET, BATCH, WORKERS, MAX_SECONDS.
 */
import PgBoss from "pg-boss";
import pg from "pg";
import { exitWhenOrphaned, newAgent, postSigned, requiredEnv as env } from "../lib/post.js";

export const PG_BOSS_QUEUE = "webhook";

const receiverUrl = env("RECEIVER_URL");
const secret = env("SIGNING_SECRET");
const batchSize = Number(env("BATCH"));
const workers = Number(env("WORKERS"));
exitWhenOrphaned(Number(env("MAX_SECONDS")));
const agent = newAgent();
const pool = new pg.Pool({ connectionString: env("DATABASE_URL"), max: 10 });

const boss = new PgBoss({ connectionString: env("DATABASE_URL") });
boss.on("error", (error) => console.error("pg-boss:", error.message));
await boss.start();

for (let i = 0; i < workers; i++) {
  await boss.work<Record<string, unknown>>(PG_BOSS_QUEUE, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
    const results = await Promise.all(
      jobs.map((job) =>
        // pg-boss counts retries from 0; our attempt numbers start at 1. Its Job type does not
        // carry retryCount without includeMetadata, so the first attempt is numbered 1 here.
        postSigned(agent, receiverUrl, { id: job.id, body: JSON.stringify(job.data), secret, attemptNumber: 1 }),
      ),
    );
    await pool.query(
      `insert into bench_attempts (job_id, attempt_number, response_status, error_message, started_at, finished_at, duration_ms)
       select r.job_id, 1 + coalesce((select max(attempt_number) from bench_attempts a where a.job_id = r.job_id), 0),
              r.status, r.error, r.started_at, r.finished_at, r.duration_ms
       from unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int[])
         as r(job_id, status, error, started_at, finished_at, duration_ms)`,
      [
        jobs.map((job) => job.id),
        results.map((r) => r.status),
        results.map((r) => r.error),
        results.map((r) => r.startedAt),
        results.map((r) => r.finishedAt),
        results.map((r) => r.durationMs),
      ],
    );
    const failed = jobs.filter((_, index) => !results[index]?.ok);
    if (failed.length > 0) {
      const succeeded = jobs.filter((_, index) => results[index]?.ok).map((job) => job.id);
      if (succeeded.length > 0) await boss.complete(PG_BOSS_QUEUE, succeeded);
      throw new Error(`${failed.length} webhooks of the batch failed`);
    }
  });
}
process.send?.({ type: "ready" });
const stop = () => {
  void boss
    .stop({ graceful: false, wait: true })
    .finally(() => Promise.all([agent.close(), pool.end()]).finally(() => process.exit(0)));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
