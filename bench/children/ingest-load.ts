/**
 * The ingest load: CLIENTS keep-alive clients, each creating a job (POST /api/v1/generate) and
 * then completing its project (PATCH /internal/v1/jobs/:id/projects/0), back to back, for
 * WARMUP_SECONDS unmeasured and then SECONDS measured. In its own process, so the load's own CPU
 * never counts against the service's event loop.
 * Env: TARGET_URL, API_KEY, INTERNAL_TOKEN, CLIENTS, SECONDS, WARMUP_SECONDS, WEBHOOK_URL (optional).
 * IPC out: one IngestLoadReport.
 */
import { Pool } from "undici";
import { exitWhenOrphaned, requiredEnv } from "../lib/post.js";
import { percentile } from "../lib/stats.js";

export interface IngestLoadReport {
  type: "done";
  /** Requests answered as expected (202 create, 200 complete) within the measured window. */
  requests: number;
  jobs: number;
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Requests answered with any other status, or not answered; the first few, described. */
  failures: number;
  failureSamples: string[];
}

const target = requiredEnv("TARGET_URL");
const apiKey = requiredEnv("API_KEY");
const internalToken = requiredEnv("INTERNAL_TOKEN");
const clients = Number(requiredEnv("CLIENTS"));
const seconds = Number(requiredEnv("SECONDS"));
const warmUpSeconds = Number(process.env.WARMUP_SECONDS ?? "2");
const webhookUrl = process.env.WEBHOOK_URL || undefined;
exitWhenOrphaned(warmUpSeconds + seconds + 120);

const pool = new Pool(target, { connections: clients, pipelining: 1, keepAliveTimeout: 60_000 });
const createBody = JSON.stringify({ prompt: "a red fox running through fresh snow, cinematic", ...(webhookUrl ? { webhookUrl } : {}) });
const completeBody = JSON.stringify({ status: "completed", videoUrl: "https://cdn.example.com/videos/fox.mp4" });
const createHeaders = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
const completeHeaders = { authorization: `Bearer ${internalToken}`, "content-type": "application/json" };

let measuring = false;
let stopping = false;
const latencies: number[] = [];
let jobs = 0;
let failures = 0;
const failureSamples: string[] = [];

function failed(what: string): void {
  if (!measuring) return;
  failures++;
  if (failureSamples.length < 5) failureSamples.push(what);
}

/** One request; its latency counts when it both started and ended while measuring. */
async function send(method: "POST" | "PATCH", path: string, headers: Record<string, string>, body: string, expected: number) {
  const counted = measuring;
  const started = performance.now();
  const response = await pool.request({ method, path, headers, body });
  const text = await response.body.text();
  const elapsed = performance.now() - started;
  if (response.statusCode !== expected) {
    failed(`${method} ${path}: ${response.statusCode} ${text.slice(0, 200)}`);
    return undefined;
  }
  if (counted && measuring) latencies.push(elapsed);
  return text;
}

async function lane(): Promise<void> {
  while (!stopping) {
    try {
      const created = await send("POST", "/api/v1/generate", createHeaders, createBody, 202);
      if (!created) continue;
      const { jobId } = JSON.parse(created) as { jobId: string };
      const wasMeasuring = measuring;
      const done = await send("PATCH", `/internal/v1/jobs/${jobId}/projects/0`, completeHeaders, completeBody, 200);
      if (done && wasMeasuring && measuring) jobs++;
    } catch (error) {
      failed(error instanceof Error ? error.message : String(error));
    }
  }
}

const lanes = Array.from({ length: clients }, lane);
await new Promise((resolve) => setTimeout(resolve, warmUpSeconds * 1000));
measuring = true;
const started = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
measuring = false;
const elapsedMs = performance.now() - started;
stopping = true;
await Promise.all(lanes);
await pool.close();

const report: IngestLoadReport = {
  type: "done",
  requests: latencies.length,
  jobs,
  elapsedMs,
  p50Ms: percentile(latencies, 50),
  p99Ms: percentile(latencies, 99),
  maxMs: latencies.reduce((max, value) => Math.max(max, value), 0),
  failures,
  failureSamples,
};
process.send?.(report, () => process.exit(0));
