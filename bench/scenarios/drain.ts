import type { BenchSettings } from "../lib/settings.js";
import { withScratchDatabase } from "../lib/database.js";
import { peakRssMiB, pollUntil, spawnWorker, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import { seedDueDeliveries } from "../lib/seed.js";
import { measuredJobsDueAt, waitUntilDue } from "../lib/warmup.js";
import { perSecond } from "../lib/stats.js";
import { createTenant } from "../../src/tenants/tenant-service.js";

export interface DrainResult {
  workers: number;
  deliveries: number;
  /** First attempt started → last delivery recorded succeeded, from the rows' own timestamps. */
  perSecond: number;
  elapsedMs: number;
  /** The same span ending when the bench's poll saw the count complete (a few ms later). */
  perSecondPolled: number;
  /** Largest VmHWM among the worker processes. */
  peakRssMiB: number | undefined;
  receiverRequests: number;
}

/** The worker's environment for a benchmark run: src/config.ts reads each of these. */
export function workerEnv(databaseUrl: string, settings: BenchSettings): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    WORKER_CONCURRENCY: String(settings.concurrency),
    WORKER_BATCH_SIZE: String(settings.batchSize),
    WORKER_BATCH_WINDOW_MS: String(settings.batchWindowMs),
    WORKER_PREFETCH: String(settings.prefetch),
    // One receiver is one destination: a per-host cap below what the worker holds (in flight and
    // prefetched) would throttle the run.
    WORKER_HOST_CONCURRENCY: String(settings.concurrency + settings.prefetch),
    WORKER_POLL_INTERVAL_MS: "1000",
    WEBHOOK_ALLOW_INSECURE_URLS: "true",
    SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "warn",
  };
}

/**
 * `workers` worker processes drain `warmup` due deliveries unmeasured (JIT, pool and keep-alive
 * connections warm, as in a worker that has been running); then the N deliveries written with them
 * come due (bench/lib/warmup.ts), and their drain is measured.
 */
export async function runDrain(settings: BenchSettings, receiver: ReceiverProcess, workers: number): Promise<DrainResult> {
  const n = settings.n;
  return withScratchDatabase(settings.adminUrl, "drain", async ({ url, database }) => {
    const tenant = await createTenant(database, "bench");
    const dueAt = measuredJobsDueAt(settings);
    await seedDueDeliveries(database, tenant.tenantId, receiver.url, settings.warmup);
    await seedDueDeliveries(database, tenant.tenantId, receiver.url, n, { dueAt });

    const processes = Array.from({ length: workers }, () => spawnWorker(workerEnv(url, settings), settings.workerRuntime));
    const alive = () => {
      if (processes.some((child) => child.exitCode !== null)) throw new Error("a worker process exited during the drain");
    };
    const succeeded = async () => {
      alive();
      const [row] = await database.query<{ n: number }>("select count(*)::int as n from webhook_deliveries where status = 'succeeded'");
      return row?.n;
    };
    try {
      await pollUntil(
        `${settings.warmup} warm-up deliveries`,
        async () => ((await succeeded()) === settings.warmup ? true : undefined),
        60_000 + settings.warmup * 10,
        50,
      );
      await receiver.report();
      await waitUntilDue(dueAt);
      // The end time comes from the rows themselves, so the poll only has to be cheap: it reads the
      // first entry of the claim index (open rows only), never the whole table, to take as little
      // of the machine from the drain as it can.
      const polledAt = await pollUntil(
        `${n} deliveries to finish`,
        async () => {
          alive();
          const open = await database.query(
            `select 1 from webhook_deliveries where status in ('pending', 'delivering') order by next_attempt_at limit 1`,
          );
          return open.length === 0 ? Date.now() : undefined;
        },
        60_000 + n * 10,
        50,
      );
      const total = await succeeded();
      if (total !== settings.warmup + n) throw new Error(`only ${total} of ${settings.warmup + n} deliveries succeeded`);
      const peak = Math.max(...processes.map((child) => peakRssMiB(child.pid) ?? Number.NaN));
      const [span] = await database.query<{ first_ms: number; last_ms: number }>(
        `select (extract(epoch from (select min(started_at) from webhook_delivery_attempts where started_at >= $1)) * 1000)::float8 as first_ms,
                (extract(epoch from (select max(finished_at) from webhook_deliveries)) * 1000)::float8 as last_ms`,
        [dueAt.toISOString()],
      );
      const firstMs = Number(span?.first_ms);
      const elapsedMs = Number(span?.last_ms) - firstMs;
      const { count } = await receiver.report();
      return {
        workers,
        deliveries: n,
        perSecond: perSecond(n, elapsedMs),
        elapsedMs,
        perSecondPolled: perSecond(n, polledAt - firstMs),
        peakRssMiB: Number.isFinite(peak) ? peak : undefined,
        receiverRequests: count,
      };
    } finally {
      await Promise.all(processes.map((child) => stopProcess(child)));
    }
  });
}
