import type { ChildProcess } from "node:child_process";
import type { BenchSettings } from "../lib/settings.js";
import { createCompletedJobs, startApiProcess } from "../lib/api-process.js";
import { withScratchDatabase } from "../lib/database.js";
import { peakRssMiB, pollUntil, spawnWorker, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import { seedDueDeliveries } from "../lib/seed.js";
import { perSecond } from "../lib/stats.js";
import { createTenant } from "../../src/tenants/tenant-service.js";

export interface DrainResult {
  /** What was drained, e.g. "one destination" or "one destination, cap lifted". */
  label: string;
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
  /** Worker variables set other than the product's defaults (beyond the loopback receiver's WEBHOOK_ALLOW_INSECURE_URLS). */
  changed: Record<string, string>;
}

/**
 * The worker's environment: the product's defaults, plus BENCH_WORKER_ENV and the scenario's own
 * changes (both printed beside the figure). WEBHOOK_ALLOW_INSECURE_URLS lets it reach the loopback receiver.
 */
export function workerEnv(databaseUrl: string, settings: BenchSettings, changes: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, WEBHOOK_ALLOW_INSECURE_URLS: "true", ...settings.workerEnv, ...changes };
}

/** The variables a drain ran with other than the defaults. */
export function changedSettings(settings: BenchSettings, changes: Record<string, string> = {}): Record<string, string> {
  return { ...settings.workerEnv, ...changes };
}

/** SIGSTOP/SIGCONT every worker: a warm worker that is not running while the backlog is written. */
function pause(processes: ChildProcess[], paused: boolean): void {
  for (const child of processes) child.kill(paused ? "SIGSTOP" : "SIGCONT");
}

/**
 * A backlog to one destination, written as users write it: N jobs created and completed through
 * the HTTP API (the real `api` process) while no worker runs. `workers` worker processes first
 * drain BENCH_WARMUP seeded deliveries unmeasured (JIT, pool and keep-alive connections warm) and
 * are paused (SIGSTOP) while the API writes the backlog; resumed, their drain of it is measured.
 */
export async function runDrain(
  settings: BenchSettings,
  receiver: ReceiverProcess,
  workers: number,
  label = "one destination",
  changes: Record<string, string> = {},
): Promise<DrainResult> {
  const n = settings.n;
  return withScratchDatabase(settings.adminUrl, "drain", async ({ url, database }) => {
    const tenant = await createTenant(database, "bench");
    await seedDueDeliveries(database, tenant.tenantId, receiver.url, settings.warmup);

    const processes = Array.from({ length: workers }, () => spawnWorker(workerEnv(url, settings, changes), settings.workerRuntime));
    const alive = () => {
      if (processes.some((child) => child.exitCode !== null)) throw new Error("a worker process exited during the drain");
    };
    const succeeded = async () => {
      alive();
      const [row] = await database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where status = 'succeeded'");
      return row?.n;
    };
    try {
      await pollUntil(
        `${settings.warmup} warm-up deliveries`,
        async () => ((await succeeded()) === settings.warmup ? true : undefined),
        60_000 + settings.warmup * 10,
        50,
      );
      pause(processes, true);
      const api = await startApiProcess({ DATABASE_URL: url, WEBHOOK_ALLOW_INSECURE_URLS: "true" }, settings.workerRuntime);
      try {
        await createCompletedJobs(api.url, tenant.apiKey, () => receiver.url, n);
      } finally {
        await api.stop();
      }
      await database.query("vacuum analyze webhook_outbox.webhook_deliveries");
      await receiver.report();
      const [resumed] = await database.query<{ at: string }>("select now()::text as at");
      pause(processes, false);
      // The end time comes from the rows themselves, so the poll only has to be cheap: it reads the
      // first entry of the claim index (open rows only), never the whole table.
      const polledAt = await pollUntil(
        `${n} deliveries to finish`,
        async () => {
          alive();
          const open = await database.query(
            `select 1 from webhook_outbox.webhook_deliveries where status in ('pending', 'delivering') order by next_attempt_at limit 1`,
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
        `select (extract(epoch from (select min(started_at) from webhook_outbox.webhook_delivery_attempts where started_at >= $1)) * 1000)::float8 as first_ms,
                (extract(epoch from (select max(finished_at) from webhook_outbox.webhook_deliveries)) * 1000)::float8 as last_ms`,
        [resumed?.at],
      );
      const firstMs = Number(span?.first_ms);
      const elapsedMs = Number(span?.last_ms) - firstMs;
      const { count } = await receiver.report();
      return {
        label,
        workers,
        deliveries: n,
        perSecond: perSecond(n, elapsedMs),
        elapsedMs,
        perSecondPolled: perSecond(n, polledAt - firstMs),
        peakRssMiB: Number.isFinite(peak) ? peak : undefined,
        receiverRequests: count,
        changed: changedSettings(settings, changes),
      };
    } finally {
      pause(processes, false);
      await Promise.all(processes.map((child) => stopProcess(child)));
    }
  });
}
