/**
 * npm run bench — the webhook job on webhook-outbox, on graphile-worker and on pg-boss, and the
 * HTTP-only and DB-only ceilings, side by side in one run on this machine. Prints one table and
 * writes the same figures as JSON to bench/results/latest.json. Needs DATABASE_URL (a server it may
 * create databases on; every scenario gets a fresh one, dropped after). Sizes and knobs: see
 * bench/lib/settings.ts and the README's Performance section.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { CpuUse } from "./lib/cpu.js";
import { dropOpenScratchDatabases } from "./lib/database.js";
import { ReceiverProcess, ROOT, buildDist, killAllChildren } from "./lib/processes.js";
import { renderTable, throughputRow, type Row } from "./lib/report.js";
import { readSettings, wants, type BenchSettings } from "./lib/settings.js";
import { combinedCeiling, poolRounds, ratio, roundOrder, type Pooled, type ThroughputRound } from "./lib/stats.js";
import { runGraphileWorker, runPgBoss, type BaselineResult } from "./scenarios/baselines.js";
import { runDbCeiling, runHttpCeiling, type CeilingResult } from "./scenarios/ceilings.js";
import { runClaim, type ClaimResult } from "./scenarios/claim.js";
import {
  runDestinations,
  poolDestinations,
  DESTINATION_HOSTS,
  HANGING_HOSTS,
  WITH_HANGING,
  WITHOUT_HANGING,
  type DestinationsResult,
} from "./scenarios/destinations.js";
import { runDrain, type DrainResult } from "./scenarios/drain.js";
import { runIngest, type IngestResult } from "./scenarios/ingest.js";
import { runLatency, type LatencyResult } from "./scenarios/latency.js";

const RESULTS_DIR = join(ROOT, "bench", "results");
const log = (message: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

function packageVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string };
  return manifest.version;
}

async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ server_version: string }>("show server_version")).rows[0]?.server_version ?? "?";
  } finally {
    await client.end();
  }
}

/** The BENCH_* variables in force, as a command line that reproduces the run. */
function commandLine(): string {
  const variables = Object.entries(process.env)
    .filter(([name]) => name.startsWith("BENCH_"))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}=${value}`);
  return [...variables, "npm run bench"].join(" ");
}

interface Results {
  http?: CeilingResult;
  db?: CeilingResult;
  /** Each pools its rounds (BENCH_ROUNDS). */
  drains: Array<Pooled<DrainResult>>;
  /** The one-destination drain with the per-destination cap lifted. */
  uncapped?: Pooled<DrainResult>;
  destinations: DestinationsResult[];
  ingest?: IngestResult;
  latencies: LatencyResult[];
  baselines: Array<Pooled<BaselineResult>>;
  claim: ClaimResult[];
  errors: Array<{ scenario: string; message: string }>;
}

/**
 * The one-destination throughput runs, ours and the baselines, in BENCH_ROUNDS rounds, every other
 * round in reverse order (ours, …, pg-boss; pg-boss, …, ours; …): the machine's speed drifts over
 * minutes, so each system meets the slow and the fast stretches alike. Each figure pools its rounds.
 */
async function runThroughputRounds(
  settings: BenchSettings,
  receiver: ReceiverProcess,
  results: Results,
  attempt: (scenario: string, work: () => Promise<void>) => Promise<void>,
): Promise<void> {
  // Each run's rounds, keyed by the run.
  const drains = new Map<number, DrainResult[]>();
  const uncapped: DrainResult[] = [];
  const baselines = new Map<string, BaselineResult[]>();
  const into = <K, T>(rounds: Map<K, T[]>, key: K, result: T): void => void rounds.set(key, [...(rounds.get(key) ?? []), result]);
  const runs: Array<{ scenario: string; run: () => Promise<void> }> = [];
  for (const workers of settings.workerCounts) {
    if (wants(settings, "drain")) {
      runs.push({ scenario: `drain, ${workers} worker process(es)`, run: async () => into(drains, workers, await runDrain(settings, receiver, workers)) });
    }
  }
  if (wants(settings, "uncapped")) {
    runs.push({
      scenario: "drain, cap lifted",
      run: async () => void uncapped.push(await runDrain(settings, receiver, 1, "one destination, cap lifted", { DESTINATION_CONCURRENCY: "10000" })),
    });
  }
  // Each baseline runs on as many worker processes as each of our drains did.
  for (const processes of settings.workerCounts) {
    if (wants(settings, "graphile")) {
      runs.push({
        scenario: `graphile-worker, ${processes} process(es)`,
        run: async () => into(baselines, `graphile ${processes}`, await runGraphileWorker(settings, receiver, processes)),
      });
    }
    if (wants(settings, "pgboss")) {
      for (const batch of settings.pgBossBatchSizes) {
        runs.push({
          scenario: `pg-boss batch ${batch}, ${processes} process(es)`,
          run: async () => into(baselines, `pgboss ${batch} ${processes}`, await runPgBoss(settings, receiver, batch, processes)),
        });
      }
    }
  }
  for (let round = 0; round < settings.throughputRounds; round++) {
    for (const { scenario, run } of roundOrder(runs, round)) await attempt(`${scenario}, round ${round + 1} of ${settings.throughputRounds}`, run);
  }
  // In the order of the runs above, whatever order the rounds ran them in.
  const pooled = <T extends ThroughputRound>(runs: Iterable<T[]>) =>
    [...runs].map((rounds) => poolRounds(rounds)).filter((each): each is Pooled<T> => each !== undefined);
  results.drains.push(...pooled(drains.values()));
  results.baselines.push(...pooled(baselines.values()));
  [results.uncapped] = pooled([uncapped]);
}

async function runAll(settings: BenchSettings, receiver: ReceiverProcess): Promise<Results> {
  const results: Results = { drains: [], destinations: [], latencies: [], baselines: [], claim: [], errors: [] };
  const attempt = async (scenario: string, work: () => Promise<void>) => {
    log(`${scenario}: start`);
    try {
      await work();
      log(`${scenario}: done`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      results.errors.push({ scenario, message });
      log(`${scenario}: FAILED: ${message}`);
    }
  };
  if (wants(settings, "http")) await attempt("HTTP-only ceiling", async () => void (results.http = await runHttpCeiling(settings, receiver)));
  if (wants(settings, "db")) await attempt("DB-only ceiling", async () => void (results.db = await runDbCeiling(settings, receiver.url)));
  await runThroughputRounds(settings, receiver, results, attempt);
  if (wants(settings, "destinations")) {
    const many = await ReceiverProcess.start({ hosts: DESTINATION_HOSTS, hang: HANGING_HOSTS });
    try {
      const answering = DESTINATION_HOSTS.filter((host) => !HANGING_HOSTS.includes(host));
      const withHanging = () =>
        attempt("200 destinations, 5 hanging", async () => {
          results.destinations.push(await runDestinations(settings, many, WITH_HANGING, DESTINATION_HOSTS, HANGING_HOSTS));
        });
      const withoutHanging = () =>
        attempt("195 destinations, none hanging", async () => {
          results.destinations.push(await runDestinations(settings, many, WITHOUT_HANGING, answering, []));
        });
      // Alternating (ABBA…), so that the machine's drift over the minutes falls on both alike.
      for (let round = 0; round < settings.destinationRounds; round++) {
        for (const run of roundOrder([withHanging, withoutHanging], round)) await run();
      }
    } finally {
      await many.stop();
    }
  }
  if (wants(settings, "ingest")) {
    await attempt("API ingest", async () => {
      // dist/ was built at the start of the run (the ingest's api process is the built one).
      results.ingest = await runIngest({ adminUrl: settings.adminUrl, seconds: 10, clients: 64, build: false });
    });
  }
  if (wants(settings, "latency")) {
    for (const rate of settings.latencyRates) {
      await attempt(`latency at ${rate}/s`, async () => void results.latencies.push(await runLatency(settings, receiver, settings.latencyWorkers, rate)));
    }
  }
  if (wants(settings, "claim")) {
    for (const rows of settings.claimRows) {
      await attempt(`claim at ${rows} rows`, async () => void results.claim.push(await runClaim(settings, rows, receiver.url, log)));
    }
  }
  return results;
}

/** "machine 96% busy; cores: postgres 1.15, offerer 0.35, …" while the updates were offered. */
function cpuNote({ machineBusy, cores }: CpuUse): string {
  const groups = Object.entries(cores).map(([name, used]) => `${name} ${used.toFixed(2)}`);
  const machine = machineBusy === undefined ? "CPU" : `machine ${Math.round(machineBusy * 100)}% busy`;
  return groups.length > 0 ? `${machine}; cores: ${groups.join(", ")}` : machine;
}

/** "2 rounds: 5,102, 5,380/s" */
function roundsNote({ rounds, roundRates }: { rounds: number; roundRates: number[] }): string {
  return `${rounds} round${rounds > 1 ? "s" : ""}: ${roundRates.map((rate) => Math.round(rate).toLocaleString("en-US")).join(", ")}/s`;
}

function tableRows(settings: BenchSettings, results: Results, ours: number | undefined): Row[] {
  const rows: Row[] = [];
  const combined = results.http && results.db ? combinedCeiling(results.http.perSecond, results.db.perSecond) : undefined;
  if (results.http) rows.push(throughputRow("HTTP-only ceiling (no database)", results.http.perSecond, ours, `${results.http.parallelism} in flight, undici keep-alive`));
  if (results.db) rows.push(throughputRow("DB-only ceiling (claimDue + recordAttempts)", results.db.perSecond, ours, `${results.db.parallelism} loops × batch ${settings.batchSize}`));
  if (combined !== undefined) rows.push(throughputRow("combined ceiling 1/(1/HTTP + 1/DB)", combined, ours));
  const changed = (values: Record<string, string>) => {
    const entries = Object.entries(values);
    return entries.length === 0 ? "defaults" : entries.map(([name, value]) => `${name}=${value}`).join(" ");
  };
  for (const drain of [...results.drains, ...(results.uncapped ? [results.uncapped] : [])]) {
    rows.push(
      throughputRow(`webhook-outbox drain, ${drain.label}, ${drain.workers} worker${drain.workers > 1 ? "s" : ""}`, drain.perSecond, ours,
        `backlog created through the HTTP API; ${settings.workerRuntime}, ${changed(drain.changed)}; ${roundsNote(drain)}; peak RSS ${drain.peakRssMiB?.toFixed(0) ?? "?"} MiB`),
    );
  }
  const single = results.drains.find((drain) => drain.workers === 1);
  if (single && results.uncapped) {
    rows.push({ scenario: "one destination: capped ÷ cap lifted", figure: ratio(single.perSecond, results.uncapped.perSecond), unit: "×" });
  }
  const pooled = [WITH_HANGING, WITHOUT_HANGING].map((label) => poolDestinations(results.destinations.filter((each) => each.label === label)));
  for (const each of pooled) {
    if (!each) continue;
    const hanging =
      each.maxOpenPerHanging === undefined
        ? ""
        : `; each hanging one held at most ${each.maxOpenPerHanging} open (cap ${each.cap}), at least ${each.hangingUntouched} of their rows pending with no attempt spent`;
    rows.push({
      scenario: `${each.label}: answering destinations drained`,
      figure: each.perSecond,
      unit: "/s",
      notes: `${each.rounds} × ${each.healthyDeliveries} deliveries (rounds: ${each.roundRates.map((rate) => rate.toFixed(0)).join(", ")}/s), 1 worker, ${changed(each.changed)}${hanging}`,
    });
  }
  const [withHanging, withoutHanging] = pooled;
  if (withHanging && withoutHanging) {
    rows.push({ scenario: "answering destinations: with 5 hanging ÷ without", figure: ratio(withHanging.perSecond, withoutHanging.perSecond), unit: "×" });
  }
  // A baseline is compared with our drain on as many worker processes (else with our best).
  for (const baseline of results.baselines) {
    const peer = results.drains.find((drain) => drain.workers === baseline.processes)?.perSecond ?? ours;
    const processes = `${baseline.processes} process${baseline.processes > 1 ? "es" : ""}`;
    rows.push(throughputRow(`${baseline.system}, ${processes}`, baseline.perSecond, peer, `${baseline.settings}; ${roundsNote(baseline)}`));
  }
  if (results.ingest) {
    const i = results.ingest;
    rows.push({
      scenario: "API ingest: create + complete requests through HTTP",
      figure: i.requestsPerSecond,
      unit: "req/s",
      notes: `built api process, defaults; 64 keep-alive clients in their own process; p50 ${i.p50Ms.toFixed(1)} ms, p99 ${i.p99Ms.toFixed(1)} ms; ${i.failures} failures`,
    });
    rows.push({ scenario: "  HTTP-only ceiling (same Hono stack, no database)", figure: i.httpOnlyCeilingPerSecond, unit: "req/s", notes: `p99 ${i.httpOnlyP99Ms.toFixed(1)} ms` });
    rows.push({
      scenario: "  single-row INSERT commit ceiling (10 connections)",
      figure: i.insertCeilingPerSecond,
      unit: "/s",
      notes: `mean of just before (${Math.round(i.insertCeilingBeforeAfter[0])}) and just after (${Math.round(i.insertCeilingBeforeAfter[1])}) the API's load`,
    });
    rows.push({ scenario: "  API ingest ÷ INSERT commit ceiling", figure: i.ofInsertCeiling, unit: "×" });
  }
  for (const l of results.latencies) {
    const at = `latency at ${l.offeredPerSecond}/s, commit → arrival`;
    rows.push({ scenario: `${at} p50`, figure: l.p50, unit: "ms", notes: `${l.jobs} updates offered (achieved ${Math.round(l.achievedPerSecond)}/s, ${l.lateStarts} late)` });
    rows.push({ scenario: `${at} p95`, figure: l.p95, unit: "ms", notes: cpuNote(l.cpu) });
    rows.push({
      scenario: `${at} p99`,
      figure: l.p99,
      unit: "ms",
      notes: `max ${l.max.toFixed(1)} ms; issued → arrival p99 ${l.issuedP99.toFixed(1)} ms; ${l.arrivedBeforeCommitReturned} arrived before their commit returned (0 ms)`,
    });
  }
  for (const claim of results.claim) {
    rows.push({
      scenario: `claim query at ${claim.rows.toLocaleString("en-US")} rows`,
      figure: claim.medianMs,
      unit: "ms",
      notes: `median of ${claim.runs}, p95 ${claim.p95Ms.toFixed(2)} ms; ${claim.dueRows} due; claim_idx in plan: ${claim.customPlanUsesClaimIndex ? "yes" : "NO"} (generic: ${claim.genericPlanUsesClaimIndex ? "yes" : "NO"})`,
    });
  }
  const [smallest, largest] = [results.claim[0], results.claim[results.claim.length - 1]];
  if (smallest && largest && largest !== smallest) {
    rows.push({ scenario: `claim time ${largest.rows.toLocaleString("en-US")} ÷ ${smallest.rows.toLocaleString("en-US")} rows`, figure: ratio(largest.medianMs, smallest.medianMs), unit: "×" });
  }
  const peaks = results.drains.map((drain) => drain.peakRssMiB).filter((value): value is number => value !== undefined);
  if (peaks.length > 0) rows.push({ scenario: "worker peak RSS (VmHWM) during drains", figure: Math.max(...peaks), unit: "MiB" });
  return rows;
}

async function main(): Promise<number> {
  const settings = readSettings();
  const startedAt = new Date();
  const hardStop = setTimeout(() => {
    log(`still running after BENCH_MAX_SECONDS=${settings.maxSeconds}; stopping`);
    killAllChildren();
    void dropOpenScratchDatabases().finally(() => process.exit(1));
  }, settings.maxSeconds * 1000);
  hardStop.unref();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping children and dropping scratch databases`);
      killAllChildren();
      void dropOpenScratchDatabases().finally(() => process.exit(130));
    });
  }

  // The ingest scenario always runs the built api process; the others do with BENCH_WORKER_RUNTIME=dist.
  const runsDist = settings.workerRuntime === "dist" && (["drain", "uncapped", "destinations", "latency"] as const).some((name) => wants(settings, name));
  if (runsDist || wants(settings, "ingest")) {
    log("building dist/");
    buildDist();
  }
  const receiver = await ReceiverProcess.start();
  let results: Results;
  try {
    results = await runAll(settings, receiver);
  } finally {
    await receiver.stop();
  }

  const best = results.drains.reduce<DrainResult | undefined>((top, drain) => (!top || drain.perSecond > top.perSecond ? drain : top), undefined);
  const ours = best?.perSecond;
  const combined = results.http && results.db ? combinedCeiling(results.http.perSecond, results.db.perSecond) : undefined;
  /** The best figure of a baseline over its process counts: best against best. */
  const bestOf = (prefix: string, exact = false) => {
    const figures = results.baselines
      .filter((baseline) => (exact ? baseline.system === prefix : baseline.system.startsWith(prefix)))
      .map((baseline) => baseline.perSecond);
    return figures.length > 0 ? Math.max(...figures) : undefined;
  };
  const rows = tableRows(settings, results, ours);

  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: commandLine(),
    machine: {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? "?",
      memoryMiB: Math.round(totalmem() / 1024 / 1024),
      node: process.version,
      postgres: await postgresVersion(settings.adminUrl),
      graphileWorker: packageVersion("graphile-worker"),
      pgBoss: packageVersion("pg-boss"),
    },
    settings: { ...settings, adminUrl: undefined, only: settings.only ? [...settings.only] : undefined },
    ours: { bestDrainPerSecond: ours, workers: best?.workers },
    ratios: {
      graphileWorker: ratio(ours, bestOf("graphile-worker")),
      pgBossBatch100: ratio(ours, bestOf("pg-boss batch 100", true)),
      pgBossBest: ratio(ours, bestOf("pg-boss")),
      http: ratio(ours, results.http?.perSecond),
      db: ratio(ours, results.db?.perSecond),
      combined: ratio(ours, combined),
      claim10MOver10k:
        results.claim.length > 1 ? ratio(results.claim[results.claim.length - 1]?.medianMs, results.claim[0]?.medianMs) : undefined,
    },
    ceilings: { http: results.http, db: results.db, combined },
    drains: results.drains,
    uncapped: results.uncapped,
    destinations: results.destinations,
    ingest: results.ingest,
    latencies: results.latencies,
    baselines: results.baselines,
    claim: results.claim,
    errors: results.errors,
    table: rows,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, "latest.json");
  // NaN is not JSON: write it as null.
  writeFileSync(path, `${JSON.stringify(json, (_key, value: unknown) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}\n`);

  console.log(`\n${json.command}`);
  console.log(`webhook-outbox benchmark — N=${settings.n}, ${availableParallelism()} CPUs, Node ${process.version}, Postgres ${json.machine.postgres}`);
  console.log(`ours = best webhook-outbox drain (${ours === undefined ? "none" : `${Math.round(ours)}/s with ${best?.workers} worker(s)`}); a baseline row is divided into our drain on as many processes\n`);
  console.log(renderTable(rows));
  for (const claim of results.claim) {
    console.log(`\nclaim plan at ${claim.rows.toLocaleString("en-US")} rows (EXPLAIN ANALYZE, BUFFERS; lines on webhook_deliveries):`);
    for (const line of claim.planExcerpt) console.log(`  ${line}`);
  }
  for (const error of results.errors) console.log(`\nFAILED ${error.scenario}: ${error.message}`);
  console.log(`\nJSON: ${path}`);
  return results.errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(error);
    killAllChildren();
    await dropOpenScratchDatabases();
    process.exit(1);
  },
);
