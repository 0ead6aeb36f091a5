import type { DestinationStream } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { rotateSigningSecret } from "../src/tenants/key-lifecycle.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { ApiClient, eventually, INTERNAL_TOKEN, testConfig } from "./support/harness.js";
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
