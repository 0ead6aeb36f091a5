import { STATEMENT_CONCURRENCY } from "../../src/jobs/natural-batcher.js";
import { WORKER_DEFAULTS } from "../../src/outbox/worker/options.js";
import type { WorkerRuntime } from "./processes.js";

/** Every knob of `npm run bench`, read once from the environment. */

function integer(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

function integerList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  return raw.split(",").map((part) => {
    const value = Number(part.trim());
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a comma list of positive integers, got ${JSON.stringify(raw)}`);
    return value;
  });
}

function share(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!(value >= 0 && value <= 1)) throw new Error(`${name} must be within 0..1, got ${JSON.stringify(raw)}`);
  return value;
}

function workerRuntime(): WorkerRuntime {
  const raw = process.env.BENCH_WORKER_RUNTIME ?? "tsx";
  if (raw !== "tsx" && raw !== "dist") throw new Error(`BENCH_WORKER_RUNTIME must be tsx or dist, got ${JSON.stringify(raw)}`);
  return raw;
}

export interface BenchSettings {
  adminUrl: string;
  /** Deliveries per throughput scenario. */
  n: number;
  /** Deliveries each throughput scenario's workers drain first, unmeasured, to warm up. */
  warmup: number;
  /** Worker process counts to drain with, one drain per entry. */
  workerCounts: number[];
  /** How the worker runs: tsx from src/ (default) or compiled dist/. */
  workerRuntime: WorkerRuntime;
  /** Worker processes running during the latency scenario. */
  latencyWorkers: number;
  /**
   * Worker variables changed from the product's defaults (BENCH_WORKER_ENV="NAME=value,…"); printed
   * beside every figure they touch. Empty by default: the bench measures what users run.
   */
  workerEnv: Record<string, string>;
  /** graphile-worker's concurrency: the same as our worker's default. */
  concurrency: number;
  /** In-flight requests of the HTTP-only ceiling. */
  httpConcurrency: number;
  /** The DB-only ceiling's and the claim test's batch: our worker's default. */
  batchSize: number;
  /** Latency scenario: offered terminal updates per second (one scenario run per rate), for how long. */
  latencyRates: number[];
  latencySeconds: number;
  /** REPORT_CONCURRENCY of the process offering the latency scenario's updates. */
  reportConcurrency: number;
  /** Row counts of webhook_deliveries at which the claim is timed. */
  claimRows: number[];
  claimPendingShare: number;
  claimRuns: number;
  /** Concurrent claim-and-record loops of the DB-only ceiling. */
  dbLoops: number;
  pgBossBatchSizes: number[];
  pgBossWorkers: number;
  /** Rounds of the two destinations drains, in the order with, without, without, with, … */
  destinationRounds: number;
  /**
   * Rounds of the one-destination throughput runs (our drains, the cap lifted, the baselines), in
   * their order and then reversed, alternately: each figure pools its rounds.
   */
  throughputRounds: number;
  /** Scenarios to run; all by default. */
  only: Set<string> | undefined;
  /** A hard stop for the whole run, in seconds. */
  maxSeconds: number;
}

export const SCENARIOS = ["http", "db", "drain", "uncapped", "destinations", "ingest", "latency", "claim", "graphile", "pgboss"] as const;

function variables(name: string): Record<string, string> {
  const raw = process.env[name] ?? "";
  const entries = raw.split(",").map((part) => part.trim()).filter(Boolean);
  return Object.fromEntries(
    entries.map((entry) => {
      const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(entry);
      if (!match) throw new Error(`${name} must be a comma list of NAME=value, got ${JSON.stringify(raw)}`);
      return [match[1], match[2]];
    }),
  );
}

export function readSettings(): BenchSettings {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error("npm run bench needs DATABASE_URL (a Postgres server it may create databases on)");
  const concurrency = integer("BENCH_CONCURRENCY", WORKER_DEFAULTS.concurrency);
  const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map((s) => s.trim())) : undefined;
  for (const name of only ?? []) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`BENCH_ONLY: unknown scenario ${name} (know ${SCENARIOS.join(", ")})`);
  }
  return {
    adminUrl,
    n: integer("BENCH_N", 20_000, 10),
    warmup: integer("BENCH_WARMUP", 2_000, 0),
    workerCounts: integerList("BENCH_WORKERS", [1, 2]),
    workerRuntime: workerRuntime(),
    latencyWorkers: integer("BENCH_LATENCY_WORKERS", 1),
    workerEnv: variables("BENCH_WORKER_ENV"),
    concurrency,
    httpConcurrency: integer("BENCH_HTTP_CONCURRENCY", 128),
    batchSize: integer("BENCH_BATCH_SIZE", WORKER_DEFAULTS.batchSize),
    latencyRates: integerList("BENCH_LATENCY_RATE", [1000, 500]),
    latencySeconds: integer("BENCH_LATENCY_SECONDS", 10),
    reportConcurrency: integer("BENCH_REPORT_CONCURRENCY", STATEMENT_CONCURRENCY),
    claimRows: integerList("BENCH_CLAIM_ROWS", [10_000, 10_000_000]),
    claimPendingShare: share("BENCH_CLAIM_PENDING_SHARE", 0.01),
    claimRuns: integer("BENCH_CLAIM_RUNS", 200),
    dbLoops: integer("BENCH_DB_LOOPS", 2),
    pgBossBatchSizes: integerList("BENCH_PGBOSS_BATCH", [100, 1000]),
    pgBossWorkers: integer("BENCH_PGBOSS_WORKERS", 10),
    destinationRounds: integer("BENCH_DESTINATION_ROUNDS", 2),
    throughputRounds: integer("BENCH_ROUNDS", 2),
    only,
    maxSeconds: integer("BENCH_MAX_SECONDS", 3600),
  };
}

export const wants = (settings: BenchSettings, scenario: (typeof SCENARIOS)[number]): boolean =>
  settings.only === undefined || settings.only.has(scenario);
