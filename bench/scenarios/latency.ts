import type { ChildProcess } from "node:child_process";
import { configWith } from "../../src/config.js";
import { UrlPolicy } from "../../src/delivery/url-policy.js";
import { JobService } from "../../src/jobs/job-service.js";
import { deliveryPolicies } from "../../src/jobs/delivery-policies.js";
import { createTenant } from "../../src/tenants/tenant-service.js";
import { withScratchDatabase } from "../lib/database.js";
import { cpuBetween, postgresPids, readCpu, type CpuReading, type CpuUse, type ProcessGroups } from "../lib/cpu.js";
import { forkTs, pollUntil, spawnWorker, stopProcess, type ReceiverProcess } from "../lib/processes.js";
import type { OffererCommand, OffererReport } from "../children/offerer.js";
import { seedOpenJobs } from "../lib/seed.js";
import type { BenchSettings } from "../lib/settings.js";
import { percentile } from "../lib/stats.js";
import { workerEnv } from "./drain.js";

export interface LatencyResult {
  workers: number;
  offeredPerSecond: number;
  /** Updates actually committed per second over the offering window. */
  achievedPerSecond: number;
  jobs: number;
  /** Terminal-update commit (as the caller saw it return) → receiver arrival, ms. */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Terminal update issued (before its transaction) → arrival, ms. */
  issuedP50: number;
  issuedP99: number;
  /** Updates issued more than 10 ms after their slot in the schedule: the offered rate was not met. */
  lateStarts: number;
  /** Arrivals noted before the offering process saw its commit return (counted as 0 ms). */
  arrivedBeforeCommitReturned: number;
  /**
   * The CPU while the measured updates were offered (Linux /proc): how busy the machine was, and
   * the cores used by Postgres, the offering process, the workers and the receiver. Near a fully
   * busy machine, every stage waits for CPU and the tail follows.
   */
  cpu: CpuUse;
}

const WARM_UP_JOBS = 50;

/**
 * Runs the offerings in their own process, one after another, and returns the last one's report
 * with the CPU used while it ran. Earlier offerings warm that process up (its pool's connections,
 * prepared statements, JIT); `between` runs after each of them (to let the workers catch up).
 */
async function offerFromChild(
  databaseUrl: string,
  rate: number,
  reportConcurrency: number,
  offerings: string[][],
  between: () => Promise<void>,
  processes: (offerer: ChildProcess) => ProcessGroups,
): Promise<{ report: OffererReport; cpu: CpuUse }> {
  const jobs = offerings.reduce((sum, ids) => sum + ids.length, 0);
  const child = forkTs("bench/children/offerer.ts", {
    DATABASE_URL: databaseUrl,
    RATE: String(rate),
    MAX_SECONDS: String(120 + Math.ceil(jobs / 10)),
    REPORT_CONCURRENCY: String(reportConcurrency),
  });
  const reports: OffererReport[] = [];
  const groups = processes(child);
  let lastStarted: CpuReading | undefined;
  try {
    return await new Promise<{ report: OffererReport; cpu: CpuUse }>((resolve, reject) => {
      const offerNext = () => {
        lastStarted = readCpu(groups);
        child.send({ type: "offer", jobIds: offerings[reports.length] ?? [] } satisfies OffererCommand);
      };
      child.once("exit", (code) => reject(new Error(`offerer exited (${code})`)));
      child.on("message", (message: { type: string }) => {
        if (message.type === "ready") return offerNext();
        if (message.type !== "done") return;
        const finished = readCpu(groups);
        const report = message as OffererReport;
        reports.push(report);
        if (report.failures.length > 0 || reports.length === offerings.length) {
          return resolve({ report, cpu: cpuBetween(lastStarted ?? finished, finished) });
        }
        between().then(offerNext, reject);
      });
    });
  } finally {
    await stopProcess(child);
  }
}

/**
 * Workers running and warm (the warm-up goes through JobService here); the measured terminal updates
 * are offered at a fixed rate (open loop) by JobService in a child process; the receiver notes each
 * arrival per webhook-id.
 */
export async function runLatency(
  settings: BenchSettings,
  receiver: ReceiverProcess,
  workers: number,
  rate: number,
): Promise<LatencyResult> {
  const jobs = Math.min(settings.n, rate * settings.latencySeconds);
  return withScratchDatabase(
    settings.adminUrl,
    "latency",
    async ({ url, database }) => {
      const tenant = await createTenant(database, "bench");
      // The offering process warms up too (its connections, prepared statements and JIT): two seconds at the rate.
      const offererWarmUp = Math.min(rate * 2, 4_000);
      const ids = await seedOpenJobs(database, tenant.tenantId, receiver.url, WARM_UP_JOBS + offererWarmUp + jobs);
      const jobService = new JobService({
        database,
        urlPolicy: new UrlPolicy({ allowInsecure: true }),
        deliveryPolicies: deliveryPolicies(configWith({})),
        jobTimeoutMs: 3_600_000,
      });
      const complete = (jobId: string) =>
        jobService.updateProject(jobId, 1, { status: "completed", videoUrl: `https://cdn.example.com/videos/${jobId}/1.mp4` });
      const succeeded = async () =>
        (await database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where status = 'succeeded'"))[0]?.n ?? 0;

      const processes = Array.from({ length: workers }, () => spawnWorker(workerEnv(url, settings), settings.workerRuntime));
      try {
        // Warm-up: proves the workers listen and claim, and warms their code and prepared statements.
        await Promise.all(ids.slice(0, WARM_UP_JOBS).map(complete));
        await pollUntil("warm-up deliveries", async () => ((await succeeded()) >= WARM_UP_JOBS ? true : undefined), 60_000);
        await receiver.report();
        receiver.track(true);

        const measured = ids.slice(WARM_UP_JOBS + offererWarmUp);
        const warmedUp = WARM_UP_JOBS + offererWarmUp;
        const { report, cpu } = await offerFromChild(
          url,
          rate,
          settings.reportConcurrency,
          [ids.slice(WARM_UP_JOBS, warmedUp), measured],
          async () => {
            await pollUntil("offerer warm-up deliveries", async () => ((await succeeded()) >= warmedUp ? true : undefined), 120_000);
          },
          (offerer) => ({
            postgres: postgresPids,
            offerer: () => [offerer.pid],
            workers: () => processes.map((child) => child.pid),
            receiver: () => [receiver.pid],
          }),
        );
        if (report.failures.length > 0) throw new Error(`terminal updates failed: ${report.failures[0]}`);
        const offeredMs = Math.max(...report.timings.map(([, , committedAt]) => committedAt)) - report.startedAt;
        await pollUntil(
          "latency deliveries to succeed",
          async () => ((await succeeded()) >= ids.length ? true : undefined),
          60_000 + measured.length * 10,
        );
        receiver.track(false);
        const { arrivals } = await receiver.report();
        const issued = new Map(report.timings.map(([jobId, issuedAt]) => [jobId, issuedAt]));
        const committed = new Map(report.timings.map(([jobId, , committedAt]) => [jobId, committedAt]));
        const lateStarts = report.lateStarts;

        const jobOfDelivery = new Map(
          (await database.query<{ id: string; job_id: string }>("select id, job_id from webhook_outbox.webhook_deliveries")).map((row) => [
            row.id,
            row.job_id,
          ]),
        );
        const fromCommit: number[] = [];
        const series: Array<[number, number]> = [];
        const fromIssue: number[] = [];
        let arrivedBeforeCommitReturned = 0;
        const firstArrival = new Map<string, number>();
        for (const [deliveryId, arrivedAt] of arrivals) {
          if (!firstArrival.has(deliveryId)) firstArrival.set(deliveryId, arrivedAt);
        }
        for (const [deliveryId, arrivedAt] of firstArrival) {
          const jobId = jobOfDelivery.get(deliveryId);
          const committedAt = jobId === undefined ? undefined : committed.get(jobId);
          const issuedAt = jobId === undefined ? undefined : issued.get(jobId);
          if (committedAt === undefined || issuedAt === undefined) continue;
          // Arrival can precede the caller seeing its commit return (NOTIFY fires at commit): count that as 0.
          if (arrivedAt < committedAt) arrivedBeforeCommitReturned++;
          fromCommit.push(Math.max(0, arrivedAt - committedAt));
          if (process.env.BENCH_LATENCY_SERIES) series.push([committedAt - report.startedAt, arrivedAt - committedAt]);
          fromIssue.push(arrivedAt - issuedAt);
        }
        // BENCH_LATENCY_SERIES=1: commit → arrival per half second of the offering, to tell a warm-up or a backlog from noise.
        if (process.env.BENCH_LATENCY_SERIES) {
          const buckets = new Map<number, number[]>();
          for (const [at, ms] of series) buckets.set(Math.floor(at / 500), [...(buckets.get(Math.floor(at / 500)) ?? []), ms]);
          for (const [b, v] of [...buckets].sort((x, y) => x[0] - y[0])) console.log(`t=${b / 2}s n=${v.length} p50=${percentile(v, 50).toFixed(1)} max=${percentile(v, 100).toFixed(1)}`);
        }
        if (fromCommit.length < measured.length) throw new Error(`only ${fromCommit.length} of ${measured.length} arrivals matched`);
        return {
          workers,
          offeredPerSecond: rate,
          achievedPerSecond: (measured.length * 1000) / offeredMs,
          jobs: measured.length,
          p50: percentile(fromCommit, 50),
          p95: percentile(fromCommit, 95),
          p99: percentile(fromCommit, 99),
          max: percentile(fromCommit, 100),
          issuedP50: percentile(fromIssue, 50),
          issuedP99: percentile(fromIssue, 99),
          lateStarts,
          arrivedBeforeCommitReturned,
          cpu,
        };
      } finally {
        receiver.track(false);
        await Promise.all(processes.map((child) => stopProcess(child)));
      }
    },
    { poolSize: 20 },
  );
}
