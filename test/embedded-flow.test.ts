import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWith } from "../src/config.js";
import { DataDirInUseError, openDatabase } from "../src/db/client.js";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { ApiClient, eventually, INTERNAL_TOKEN } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

// The core flow with no DATABASE_URL: embedded PGlite in a fresh directory, migrated at start.
let dataDir: string;
let service: RunningService;
let tenant: CreatedTenant;
let api: ApiClient;
let receiver: Receiver;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "wo-embedded-"));
  const config = configWith({
    DATABASE_URL: undefined,
    PGLITE_DIR: join(dataDir, "pglite"),
    PORT: 0,
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    INTERNAL_API_TOKEN: INTERNAL_TOKEN,
    WEBHOOK_ALLOW_INSECURE_URLS: true,
    WEBHOOK_RETRY_DELAYS: [0, 50, 50],
    // Far longer than any wait below: a prompt first attempt proves NOTIFY woke the worker.
    WORKER_POLL_INTERVAL_MS: 60_000,
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  service = await startService({ config, logger: createLogger("info", sink), api: true, worker: true, migrate: true });
  tenant = await createTenant(service.database, "embedded");
  api = new ApiClient(service.url ?? "", tenant.apiKey);
  receiver = await Receiver.start();
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await receiver?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("embedded PGlite (no DATABASE_URL)", () => {
  it("says at start that it is embedded, where, and that it runs one worker woken by LISTEN/NOTIFY", () => {
    expect(service.database.kind).toBe("pglite");
    const notice = logLines.find((line) => String(line.msg).startsWith("embedded PGlite database"));
    expect(notice).toMatchObject({ dataDir: join(dataDir, "pglite"), listenNotify: true });
    expect(String(notice?.msg)).toContain("this process runs the only worker");
    expect(String(notice?.msg)).toContain("DATABASE_URL=postgres://");
  });

  it("creates a job, completes it, delivers it signed, and records the attempt", async () => {
    const created = await api.post("/api/v1/generate", { prompt: "embedded", projectCount: 2, webhookUrl: receiver.url });
    expect(created.status).toBe(202);
    const jobId: string = created.body.jobId;
    await api.finishJob(jobId, 2, "completed");

    const [request] = await receiver.waitForRequests(1, 10_000);
    if (!request) throw new Error("no request");
    const payload = new Webhook(tenant.signingSecret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    }) as Record<string, unknown>;
    expect(payload).toMatchObject({ event: "job.completed", jobId, status: "completed", completedProjects: 2 });

    const delivery = await eventually(() => finishedDelivery(service.database, jobId, "succeeded"));
    expect(delivery.id).toBe(request.headers["webhook-id"]);
    const attempts = await attemptsOf(service.database, delivery.id);
    expect(attempts).toEqual([
      expect.objectContaining({ attempt_number: 1, outcome: "succeeded", response_status: 200, worker_id: service.worker?.workerId }),
    ]);
    const job = await api.get(`/api/v1/jobs/${jobId}`);
    expect(job.body.status).toBe("completed");
  });

  it("retries on the same claim SQL (arrays of secrets and delays included) and records every attempt", async () => {
    const flaky = await Receiver.start(status(503), status(200));
    const created = await api.post("/api/v1/generate", { prompt: "retry", webhookUrl: flaky.url });
    const jobId: string = created.body.jobId;
    await api.finishJob(jobId, 1, "failed");
    const delivery = await eventually(() => finishedDelivery(service.database, jobId, "succeeded"));
    const attempts = await attemptsOf(service.database, delivery.id);
    expect(attempts.map((attempt) => [attempt.attempt_number, attempt.outcome, attempt.response_status])).toEqual([
      [1, "retry", 503],
      [2, "succeeded", 200],
    ]);
    await flaky.close();
  });

  it("refuses a second process-level open of the same directory", async () => {
    await expect(openDatabase({ pgliteDir: join(dataDir, "pglite") })).rejects.toBeInstanceOf(DataDirInUseError);
  });

  it("takes over a directory whose pid file is stale: a dead owner, or its own pid from a previous life", { timeout: 120_000 }, async () => {
    const staleDir = join(dataDir, "stale");
    mkdirSync(staleDir);
    const exited = spawnSync(process.execPath, ["-e", ""]);
    for (const owner of [exited.pid, process.pid]) {
      writeFileSync(join(staleDir, "webhook-outbox.pid"), String(owner));
      const database = await openDatabase({ pgliteDir: staleDir });
      expect(await database.query("select 1 as one")).toEqual([{ one: 1 }]);
      await database.close();
    }
  });

  it("is ready: the migrations it ran are current", async () => {
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
  });
});
