/**
 * The baseline webhook job on graphile-worker: POST the signed payload, record an attempt row,
 * throw on a non-2xx so graphile-worker retries it. Tuned as its performance docs advise: local
 * queue (batched fetch), batched completion, concurrency like our worker's.
 * Env: DATABASE_URL, RECEIVER_URL, SIGNING_SECRET, CONCURRENCY, MAX_SECONDS.
 */
import { Logger, run, type Task } from "graphile-worker";
import { exitWhenOrphaned, newAgent, postSigned, requiredEnv as env } from "../lib/post.js";

const receiverUrl = env("RECEIVER_URL");
const secret = env("SIGNING_SECRET");
const concurrency = Number(env("CONCURRENCY"));
exitWhenOrphaned(Number(env("MAX_SECONDS")));
const agent = newAgent();

// graphile-worker logs every completed job at info; printing 20,000 lines would slow it down unfairly.
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
});

const webhook: Task = async (payload, helpers) => {
  const body = JSON.stringify(payload);
  const result = await postSigned(agent, receiverUrl, { id: helpers.job.id, body, secret, attemptNumber: helpers.job.attempts });
  await helpers.query(
    `insert into bench_attempts (job_id, attempt_number, response_status, error_message, started_at, finished_at, duration_ms)
     values ($1, $2, $3, $4, $5, $6, $7)
     on conflict (job_id, attempt_number) do nothing`,
    [helpers.job.id, helpers.job.attempts, result.status, result.error, result.startedAt, result.finishedAt, result.durationMs],
  );
  if (!result.ok) throw new Error(`webhook answered ${result.status ?? result.error}`);
};

const runner = await run({
  connectionString: env("DATABASE_URL"),
  concurrency,
  maxPoolSize: Math.min(concurrency + 1, 25),
  pollInterval: 1000,
  noHandleSignals: true,
  logger,
  taskList: { webhook },
  preset: {
    worker: {
      localQueue: { size: Math.max(concurrency + 1, 500) },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  },
});
process.send?.({ type: "ready" });
const stop = () => {
  void runner.stop().finally(() => agent.close().finally(() => process.exit(0)));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
await runner.promise;
