import type { DestinationStream } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { rotateSigningSecret } from "../src/tenants/key-lifecycle.js";
import { jobs } from "../src/db/schema.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { ApiClient, eventually, INTERNAL_TOKEN, testConfig } from "./support/harness.js";
import { spawnCli } from "./support/processes.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver, status, type Responder } from "./support/receiver.js";

/** Every line the logger writes, as written. */
class CapturedLog implements DestinationStream {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  get text(): string {
    return this.lines.join("");
  }
}

function expectNoneOf(text: string, secrets: string[]): void {
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(8);
    expect(text, `a log line contains ${secret.slice(0, 10)}…`).not.toContain(secret);
  }
}

describe("the logger", () => {
  const apiKey = "wo_AbCdEfGh1234567890abcdefghijklmnopqrstuvwxy";
  const signingSecret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
  const signature = `v1,${Buffer.alloc(32, 9).toString("base64")}`;
  const hexSignature = `sha256=${"ab".repeat(32)}`;
  const token = "internal-token-value-42";
  const databasePassword = "hunter2-db-password";

  it("redacts credentials by field name and by shape, in objects, messages and errors", () => {
    const log = new CapturedLog();
    const logger = createLogger("trace", log);
    logger.info({ apiKey, signingSecret, token }, "flat fields");
    logger.info({ tenant: { apiKey, signingSecret, secrets: [signingSecret] } }, "nested fields");
    logger.info(
      {
        headers: { authorization: `Bearer ${apiKey}`, "webhook-signature": signature, "x-webhook-signature": hexSignature },
        req: { headers: { authorization: `Bearer ${token}` } },
      },
      "headers",
    );
    logger.info({ outgoing: { headers: { "X-Nouvel-Signature": hexSignature, "webhook-signature": `${signature} ${signature}` } } }, "renamed header");
    logger.error({ err: new Error(`Failed query: insert into signing_secrets params: ${signingSecret},${apiKey}`) }, "query failed");
    logger.warn(`retrying with Bearer ${token} against postgres://app:${databasePassword}@db:5432/app`);
    logger.info({ config: { INTERNAL_API_TOKEN: token, DATABASE_URL: `postgres://app:${databasePassword}@db/app` } }, "config");

    expect(log.lines).toHaveLength(7);
    expectNoneOf(log.text, [apiKey, signingSecret, signature.slice(3), hexSignature.slice(7), token, databasePassword]);
    expect(log.text).toContain("[redacted]");
    // What was removed stays recognisable: the key's visible prefix survives.
    expect(log.text).toContain("wo_AbCdEfGh");
  });
});

describe("the logger, given credentials that have no shape", () => {
  const token = 'plain "internal" token/42';

  it("scrubs them by value: as they are, as JSON escapes them and percent-encoded", () => {
    const log = new CapturedLog();
    const logger = createLogger("info", { destination: log, secrets: [token, undefined, ""] });
    logger.info({ path: `/internal/v1/jobs/${token}` }, "raw");
    logger.info({ path: `/internal/v1/jobs/${encodeURIComponent(token)}` }, "percent-encoded");
    logger.info({ path: `/internal/v1/jobs/${encodeURIComponent(token).toLowerCase()}` }, "lower-case hex");
    logger.info(`said ${token} in the message`);
    logger.info({ nested: { list: [token] } }, "nested");

    expect(log.lines).toHaveLength(5);
    expectNoneOf(log.text, [JSON.stringify(token).slice(1, -1), encodeURIComponent(token), encodeURIComponent(token).toLowerCase()]);
    expect(log.text).not.toContain("internal\\");
    expect(log.text.match(/\[redacted\]/g)).toHaveLength(5);
    // Only the token goes (an unset or empty entry scrubs nothing).
    expect(log.text).toContain('"path":"/internal/v1/jobs/[redacted]"');
  });
});

describe("a failed query's values", () => {
  let testDb: TestDatabase;
  const prompt = "customer-prompt-do-not-log-7f3a";
  const urlToken = "url-query-token-do-not-log-91c2";

  beforeAll(async () => {
    testDb = await createTestDatabase();
  });

  afterAll(async () => {
    await testDb?.drop();
  });

  it("are not logged: the query text, SQLSTATE and constraint are, its parameters and Postgres's detail are not", async () => {
    const log = new CapturedLog();
    const logger = createLogger("trace", log);
    let failure: unknown;
    try {
      // No such tenant: the foreign key refuses, and Postgres's detail quotes the tenant id.
      await testDb.database.db.insert(jobs).values({
        tenantId: "00000000-0000-4000-8000-00000000beef",
        apiFlavor: "nouvel",
        prompt,
        webhookUrl: `https://hooks.example.com/in?token=${urlToken}`,
        deadlineAt: new Date(),
      });
    } catch (error) {
      failure = error;
    }
    // The error as thrown does carry them: what follows is the logger's doing.
    expect(String((failure as Error).message)).toContain(prompt);
    expect(JSON.stringify((failure as { cause?: { detail?: string } }).cause?.detail)).toContain("beef");

    logger.error({ err: failure }, "insert failed");
    logger.error(failure as Error); // no message: pino would use the error's own
    logger.warn({ error: (failure as Error).message }, "the message alone, as a string field");

    expect(log.lines).toHaveLength(3);
    expectNoneOf(log.text, [prompt, urlToken, "00000000-0000-4000-8000-00000000beef"]);
    const line = JSON.parse(log.lines[0] ?? "{}") as { err: { message: string; cause: Record<string, unknown> } };
    expect(line.err.message).toMatch(/^Failed query: insert into "webhook_outbox"."jobs"/);
    expect(line.err.cause).toMatchObject({ code: "23503", constraint: "jobs_tenant_fk", table: "jobs" });
    expect(line.err.cause.detail).toBeUndefined();
    expect(JSON.parse(log.lines[1] ?? "{}").msg).toMatch(/^Failed query: insert into "webhook_outbox"."jobs"/);
  });

  it("keep the names a Postgres error message quotes, and cut the values it quotes", async () => {
    const log = new CapturedLog();
    const logger = createLogger("trace", log);
    const failure = await testDb.database.query("select $1::uuid", [prompt]).catch((error: unknown) => error);
    logger.error({ err: failure }, "cast failed");
    expectNoneOf(log.text, [prompt]);
    const line = JSON.parse(log.lines[0] ?? "{}") as { err: Record<string, unknown> };
    expect(line.err.code).toBe("22P02");
    expect(line.err.message).toBe('invalid input syntax for type uuid: "…"');
  });
});

describe("a running service, handed the internal token and customers' data in odd places", () => {
  let testDb: TestDatabase;
  let service: RunningService;
  let tenant: CreatedTenant;
  const log = new CapturedLog();
  const prompt = "customer-prompt-do-not-log-4b1d";
  const urlToken = "url-query-token-do-not-log-0e77";

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const config = testConfig(testDb.url, { LOG_LEVEL: "trace" });
    const logger = createLogger("trace", { destination: log, secrets: [config.INTERNAL_API_TOKEN] });
    service = await startService({ config, logger, api: true, worker: false, migrate: false });
    tenant = await createTenant(testDb.database, "odd-places");
  });

  afterAll(async () => {
    await service?.stop();
    await testDb?.drop();
  });

  it("never writes the token from a request path or an X-Request-Id", async () => {
    const api = new ApiClient(service.url ?? "", tenant.apiKey);
    const jobId = "00000000-0000-4000-8000-000000000000";
    const paths = [
      `/internal/v1/jobs/${INTERNAL_TOKEN}/projects/0`,
      `/api/v1/jobs/${INTERNAL_TOKEN}`,
      `/${encodeURIComponent(INTERNAL_TOKEN)}`,
      `/%ZZ/${INTERNAL_TOKEN}`, // a path that does not decode is logged as it came
    ];
    for (const path of paths) await api.request("PATCH", path, { status: "processing" }, INTERNAL_TOKEN);
    const echoed = await api.request("PATCH", `/internal/v1/jobs/${jobId}/projects/0`, { status: "processing" }, INTERNAL_TOKEN, {
      "x-request-id": INTERNAL_TOKEN,
    });
    expect(echoed.headers.get("x-request-id")).toBe(INTERNAL_TOKEN); // it was taken as the request id
    await api.request("GET", "/healthz", undefined, INTERNAL_TOKEN, { "x-request-id": INTERNAL_TOKEN });

    expect(log.lines.filter((line) => line.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(paths.length + 2);
    expectNoneOf(log.text, [INTERNAL_TOKEN, encodeURIComponent(INTERNAL_TOKEN)]);
  });

  it("logs a failed insert's SQLSTATE and message, never the prompt or the webhook URL's token", async () => {
    // The insert fails inside Postgres, quoting the row's values in its detail.
    await testDb.database.query(`
      create function refuse_job() returns trigger language plpgsql as $$
      begin raise exception 'refused' using detail = new.prompt || ' ' || new.webhook_url; end $$;
      create trigger refuse_job before insert on webhook_outbox.jobs for each row execute function refuse_job();`);
    try {
      const api = new ApiClient(service.url ?? "", tenant.apiKey);
      const response = await api.post("/api/v1/generate", { prompt, webhookUrl: `http://127.0.0.1:9/in?token=${urlToken}` });
      expect(response.status).toBe(500);
    } finally {
      await testDb.database.query("drop trigger refuse_job on webhook_outbox.jobs; drop function refuse_job();");
    }
    const failure = log.lines.find((line) => line.includes("unhandled error"));
    expect(failure).toBeDefined();
    expect(failure).toContain('"code":"P0001"');
    expect(failure).toContain('"message":"refused"');
    expectNoneOf(log.text, [prompt, urlToken]);
  });
});

describe("the CLI's service", () => {
  let testDb: TestDatabase;

  beforeAll(async () => {
    testDb = await createTestDatabase();
  });

  afterAll(async () => {
    await testDb?.drop();
  });

  it("scrubs INTERNAL_API_TOKEN from its own log lines", async () => {
    const token = "cli-internal-token-value-5c0ffee";
    const child = spawnCli(["api"], {
      DATABASE_URL: testDb.url,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      INTERNAL_API_TOKEN: token,
    });
    try {
      const listening = await child.waitForLog(/API listening/);
      const url = (JSON.parse(listening) as { url: string }).url;
      const response = await fetch(`${url}/internal/v1/jobs/${token}/projects/0`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-request-id": token },
        body: JSON.stringify({ status: "processing" }),
      });
      expect(response.status).toBe(404);
      await child.waitForLog(/"msg":"request"/);
    } finally {
      child.child.kill("SIGTERM");
      await child.exited;
    }
    expect(child.output.join("\n")).toContain("[redacted]");
    expectNoneOf(child.output.join("\n"), [token]);
  });
});

describe("a service's logs, from start to delivered webhooks", () => {
  let testDb: TestDatabase;
  let service: RunningService;
  let tenant: CreatedTenant;
  let api: ApiClient;
  const log = new CapturedLog();
  const seenSignatures: string[] = [];

  /** Echoes the signature headers back in the response body, as a careless receiver might. */
  const echo: Responder = (request, response) => {
    seenSignatures.push(String(request.headers["webhook-signature"]), String(request.headers["x-webhook-signature"]));
    response.writeHead(500, { "content-type": "text/plain" }).end(JSON.stringify(request.headers));
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const config = testConfig(testDb.url, { LOG_LEVEL: "trace", WEBHOOK_RETRY_DELAYS: [0, 10] });
    service = await startService({ config, logger: createLogger("trace", log), api: true, worker: true, migrate: false });
    tenant = await createTenant(testDb.database, "logged");
    api = new ApiClient(service.url ?? "", tenant.apiKey);
  });

  afterAll(async () => {
    await service?.stop();
    await testDb?.drop();
  });

  it("never write an API key, a signing secret, a signature or the internal token", async () => {
    const rotated = await rotateSigningSecret(testDb.database, tenant.tenantId, 3_600_000);
    const receiver = await Receiver.start(echo, echo, status(200));
    try {
      for (const path of ["/api/v1/jobs", "/api/v1/jobs/not-a-uuid", "/api/v1/jobs?limit=0"]) await api.get(path);
      await api.withKey(`${tenant.apiKey}x`).get("/api/v1/jobs");
      await api.request("POST", "/api/v1/generate", "{", tenant.apiKey, { "content-type": "application/json" });
      const job = await api.post("/api/v1/generate", { prompt: "logged", webhookUrl: receiver.url });
      await api.finishJob(job.body.jobId, 1, "completed");
      await eventually(() => finishedDelivery(testDb.database, job.body.jobId, "failed"));
      await api.request("PATCH", `/internal/v1/jobs/${job.body.jobId}/projects/0`, { status: "completed", videoUrl: "https://x.example/v.mp4" }, INTERNAL_TOKEN);
    } finally {
      await receiver.close();
    }

    // The capture is not empty: the attempts and their failures were logged at trace level.
    expect(log.text).toContain("attempt finished");
    expect(seenSignatures.length).toBeGreaterThanOrEqual(4);
    expectNoneOf(log.text, [
      tenant.apiKey,
      tenant.signingSecret,
      rotated.signingSecret,
      INTERNAL_TOKEN,
      ...seenSignatures.flatMap((header) => header.split(" ")).map((entry) => entry.replace(/^(v1,|sha256=)/, "")),
    ]);
  });
});
