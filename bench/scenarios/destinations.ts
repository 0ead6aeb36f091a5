import type { BenchSettings } from "../lib/settings.js";
import { withScratchDatabase } from "../lib/database.js";
import { pollUntil, spawnWorker, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import { seedDueDeliveries } from "../lib/seed.js";
import { perSecond, pooledRate } from "../lib/stats.js";
import { measuredJobsDueAt, waitUntilDue } from "../lib/warmup.js";
import { WORKER_DEFAULTS } from "../../src/outbox/worker/options.js";
import { createTenant } from "../../src/tenants/tenant-service.js";
import { changedSettings, workerEnv } from "./drain.js";

/** 127.0.0.2 … 127.0.0.201: 200 destinations on one receiver. */
export const DESTINATION_HOSTS = Array.from({ length: 200 }, (_, i) => `127.0.0.${i + 2}`);
/** The first five of them never answer. */
export const HANGING_HOSTS = DESTINATION_HOSTS.slice(0, 5);

export const WITH_HANGING = "200 destinations, 5 hanging";
export const WITHOUT_HANGING = "the 195 answering ones alone";

/** Several rounds of one drain as one figure: all their deliveries over all their time. */
export interface PooledDestinations extends DestinationsResult {
  rounds: number;
  roundRates: number[];
}

export function poolDestinations(runs: DestinationsResult[]): PooledDestinations | undefined {
  const [first] = runs;
  if (!first) return undefined;
  const pooled = pooledRate(runs.map((run) => ({ deliveries: run.healthyDeliveries, elapsedMs: run.elapsedMs })));
  const open = runs.map((run) => run.maxOpenPerHanging).filter((value): value is number => value !== undefined);
  const untouched = runs.map((run) => run.hangingUntouched).filter((value): value is number => value !== undefined);
  return {
    ...first,
    perSecond: pooled.perSecond,
    elapsedMs: pooled.elapsedMs,
    maxOpenPerHanging: open.length > 0 ? Math.max(...open) : undefined,
    hangingUntouched: untouched.length > 0 ? Math.min(...untouched) : undefined,
    rounds: runs.length,
    roundRates: pooled.roundRates,
  };
}

export interface DestinationsResult {
  label: string;
  /** Deliveries to answering destinations, and their drain rate (first attempt → last success). */
  healthyDeliveries: number;
  perSecond: number;
  elapsedMs: number;
  /** Most requests each hanging destination had open at once (receiver's count), and the cap in force. */
  maxOpenPerHanging: number | undefined;
  cap: number;
  /** Rows of hanging destinations still pending with no attempt spent when the others were done. */
  hangingUntouched: number | undefined;
  changed: Record<string, string>;
}

/**
 * One worker process at its defaults drains N deliveries spread evenly over the receiver's
 * destinations (`hosts`); requests to `hang` are never answered. Measures how fast the deliveries
 * to the answering destinations finish, and how many attempts the hanging ones held.
 */
export async function runDestinations(
  settings: BenchSettings,
  receiver: ReceiverProcess,
  label: string,
  hosts: string[],
  hang: string[],
): Promise<DestinationsResult> {
  const urls = hosts.map((host) => `http://${host}:${receiver.port}/webhook`);
  const perDestination = Math.max(1, Math.floor(settings.n / DESTINATION_HOSTS.length));
  const total = perDestination * urls.length;
  const healthy = perDestination * (hosts.length - hang.filter((host) => hosts.includes(host)).length);
  return withScratchDatabase(settings.adminUrl, "destinations", async ({ url, database }) => {
    const tenant = await createTenant(database, "bench");
    const dueAt = measuredJobsDueAt(settings);
    await seedDueDeliveries(database, tenant.tenantId, receiver.url, settings.warmup);
    await seedDueDeliveries(database, tenant.tenantId, urls, total, { dueAt });
    const worker = spawnWorker(workerEnv(url, settings), settings.workerRuntime);
    const succeeded = async () => {
      if (worker.exitCode !== null) throw new Error("the worker process exited");
      const [row] = await database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where status = 'succeeded'");
      return row?.n ?? 0;
    };
    try {
      await pollUntil("warm-up deliveries", async () => ((await succeeded()) >= settings.warmup ? true : undefined), 120_000, 50);
      await receiver.report();
      await waitUntilDue(dueAt);
      await pollUntil(
        `${healthy} deliveries to answering destinations`,
        async () => ((await succeeded()) >= settings.warmup + healthy ? true : undefined),
        120_000 + total * 10,
        50,
      );
      const hangingUrls = urls.filter((_, i) => hang.includes(hosts[i] ?? ""));
      const [untouched] = await database.query<{ n: number }>(
        "select count(*)::int as n from webhook_outbox.webhook_deliveries where url = any($1) and status = 'pending' and attempt_count = 0",
        [hangingUrls],
      );
      const report = await receiver.report();
      const [span] = await database.query<{ first_ms: number; last_ms: number }>(
        `select (extract(epoch from (select min(started_at) from webhook_outbox.webhook_delivery_attempts where started_at >= $1)) * 1000)::float8 as first_ms,
                (extract(epoch from (select max(finished_at) from webhook_outbox.webhook_deliveries where status = 'succeeded')) * 1000)::float8 as last_ms`,
        [dueAt.toISOString()],
      );
      const elapsedMs = Number(span?.last_ms) - Number(span?.first_ms);
      const hangingOpen = hang.map((host) => report.maxOpen[host] ?? 0);
      return {
        label,
        healthyDeliveries: healthy,
        perSecond: perSecond(healthy, elapsedMs),
        elapsedMs,
        maxOpenPerHanging: hang.length > 0 ? Math.max(...hangingOpen) : undefined,
        cap: Number(settings.workerEnv.DESTINATION_CONCURRENCY ?? WORKER_DEFAULTS.destinationConcurrency),
        hangingUntouched: hang.length > 0 ? (untouched?.n ?? 0) : undefined,
        changed: changedSettings(settings),
      };
    } finally {
      // Attempts to the hanging destinations are still open: no grace for them.
      await stopProcess(worker, 1_000);
    }
  });
}
