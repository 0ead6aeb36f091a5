import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWith, type Config } from "../src/config.js";
import { openDatabase } from "../src/db/client.js";
import { stopEmbeddedPostgres } from "../src/db/embedded.js";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { ApiClient, eventually, INTERNAL_TOKEN } from "./support/harness.js";
import { freePort } from "./support/ports.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

// The core flow with no DATABASE_URL: the embedded PostgreSQL in a fresh directory, made, started and migrated at start.
let dataDir: string;
let config: Config;
let service: RunningService;
let tenant: CreatedTenant;
let api: ApiClient;
let receiver: Receiver;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "wo-embedded-"));
  // As root the server runs as the postgres OS user, which must reach the directory (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  config = configWith({
    DATABASE_URL: undefined,
    EMBEDDED_DATA_DIR: join(dataDir, "postgres"),
    EMBEDDED_PG_PORT: await freePort(),
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
  if (!dataDir) return;
  await stopEmbeddedPostgres(join(dataDir, "postgres"));
  rmSync(dataDir, { recursive: true, force: true });
});

describe("the embedded PostgreSQL (no DATABASE_URL)", () => {
  it("says at start that it is embedded, where, and what to do next", () => {
    expect(service.embedded).toMatchObject({ dataDir: join(dataDir, "postgres"), created: true, started: true });
    const notice = logLines.find((line) => String(line.msg).startsWith("embedded PostgreSQL"));
    expect(notice).toMatchObject({ dataDir: join(dataDir, "postgres"), created: true });
    expect(String(notice?.msg)).toMatch(/^embedded PostgreSQL 1\d\.\d+ \(DATABASE_URL is unset\): data in /);
    expect(String(notice?.msg)).toContain("INTERNAL_API_TOKEN is set");
    // Set in this configuration, so not suggested.
    expect(String(notice?.msg)).toContain("http:// and private addresses allowed (WEBHOOK_ALLOW_INSECURE_URLS=true)");
    expect(String(notice?.msg)).toContain("npm run outbox -- embedded stop");
  });

  it("is a real server: a second handle (another process would do the same) sees the same rows, with LISTEN/NOTIFY across connections", async () => {
    const other = await openDatabase({ databaseUrl: service.embedded?.url, poolSize: 2 });
    try {
      const [row] = await other.query<{ name: string }>("select name from webhook_outbox.tenants where id = $1", [tenant.tenantId]);
      expect(row?.name).toBe("embedded");
      let heard = 0;
      const unlisten = await other.listen("wo_embedded_probe", () => heard++);
      const before = heard;
      await service.database.query("select pg_notify('wo_embedded_probe', '')");
      await eventually(async () => (heard > before ? true : undefined));
      await unlisten();
    } finally {
      await other.close();
    }
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

  it("retries and records every attempt", async () => {
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

  it("is ready: the migrations it ran are current", async () => {
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
  });
});

describe("INTERNAL_API_TOKEN unset", () => {
  const report = (url: string | undefined, jobId: string, token: string) =>
    fetch(`${url}/internal/v1/jobs/${jobId}/projects/0`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ status: "completed", videoUrl: "https://cdn.example.com/0.mp4", seed: 1 }),
    });

  it("on the embedded server: a development token is made once, kept in the data directory, and opens /internal", async () => {
    const tokenFile = join(dataDir, "postgres", "internal-api-token");
    const quiet = createLogger("silent");
    const first = await startService({ config: { ...config, INTERNAL_API_TOKEN: undefined }, logger: quiet, api: true, worker: false, migrate: false });
    const token = readFileSync(tokenFile, "utf8").trim();
    await first.stop();
    const second = await startService({ config: { ...config, INTERNAL_API_TOKEN: undefined }, logger: quiet, api: true, worker: false, migrate: false });
    try {
      expect(readFileSync(tokenFile, "utf8").trim()).toBe(token);
      const created = await api.post("/api/v1/generate", { prompt: "token" });
      expect((await report(second.url, created.body.jobId, "wrong")).status).toBe(401);
      expect((await report(second.url, created.body.jobId, token)).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  it("with a DATABASE_URL (production): no token is made and /internal stays disabled", async () => {
    const production = await startService({
      config: { ...config, DATABASE_URL: service.embedded?.url, INTERNAL_API_TOKEN: undefined },
      logger: createLogger("silent"),
      api: true,
      worker: false,
      migrate: false,
    });
    try {
      expect(production.embedded).toBeUndefined();
      const created = await api.post("/api/v1/generate", { prompt: "production" });
      const token = readFileSync(join(dataDir, "postgres", "internal-api-token"), "utf8").trim();
      const refused = await report(production.url, created.body.jobId, token);
      expect(refused.status).toBe(404);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toContain("INTERNAL_API_TOKEN is not set");
    } finally {
      await production.stop();
    }
  });
});
