/**
 * Offers terminal updates at a fixed rate (open loop) through JobService.updateProject, in its
 * own process so the bench's bookkeeping never delays a commit or its timestamp.
 * IPC in: { type: "offer", jobIds }. IPC out: { type: "done", ... } with per-job timestamps.
 * Env: DATABASE_URL, RATE (updates per second), MAX_SECONDS, REPORT_CONCURRENCY (the service's, default 2).
 */
import { loadConfig } from "../../src/config.js";
import { openDatabase } from "../../src/db/client.js";
import { UrlPolicy } from "../../src/delivery/url-policy.js";
import { JobService } from "../../src/jobs/job-service.js";
import { deliveryPolicies } from "../../src/jobs/delivery-policies.js";
import { exitWhenOrphaned } from "../lib/post.js";

/** Each command is one offering at the rate, answered by one report; a warm-up is simply an offering whose report is ignored. */
export type OffererCommand = { type: "offer"; jobIds: string[] };
export interface OffererReport {
  type: "done";
  /** [jobId, issued at, commit returned at], epoch ms with sub-ms precision. */
  timings: Array<[string, number, number]>;
  startedAt: number;
  lateStarts: number;
  failures: string[];
}

const MAX_IN_FLIGHT = 256;
const LATE_MS = 10;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const rate = Number(process.env.RATE);
exitWhenOrphaned(Number(process.env.MAX_SECONDS ?? 600));
const database = await openDatabase({ databaseUrl: process.env.DATABASE_URL, poolSize: 20 });
const config = loadConfig({ REPORT_CONCURRENCY: process.env.REPORT_CONCURRENCY });
const jobService = new JobService({
  database,
  reportConcurrency: config.REPORT_CONCURRENCY,
  urlPolicy: new UrlPolicy({ allowInsecure: true }),
  deliveryPolicies: deliveryPolicies(config),
  jobTimeoutMs: 3_600_000,
});

async function offer(jobIds: string[]): Promise<OffererReport> {
  const timings: Array<[string, number, number]> = [];
  const failures: string[] = [];
  let inFlight = 0;
  let lateStarts = 0;
  let next = 0;
  const startedAt = now();
  while (next < jobIds.length && failures.length === 0) {
    const due = Math.min(jobIds.length, Math.floor(((now() - startedAt) * rate) / 1000) + 1);
    while (next < due && inFlight < MAX_IN_FLIGHT) {
      const issuedAt = now();
      if (issuedAt - (startedAt + (next * 1000) / rate) > LATE_MS) lateStarts++;
      const jobId = jobIds[next++] as string;
      inFlight++;
      jobService
        .updateProject(jobId, 1, { status: "completed", videoUrl: `https://cdn.example.com/videos/${jobId}/1.mp4` })
        .then(
          () => void timings.push([jobId, issuedAt, now()]),
          (error: unknown) => void failures.push(error instanceof Error ? error.message : String(error)),
        )
        .finally(() => inFlight--);
    }
    await sleep(1);
  }
  while (inFlight > 0) await sleep(5);
  return { type: "done", timings, startedAt, lateStarts, failures };
}

process.on("message", (command: OffererCommand) => {
  if (command.type !== "offer") return;
  void offer(command.jobIds).then((report) => {
    process.send?.(report);
  });
});
process.send?.({ type: "ready" });
