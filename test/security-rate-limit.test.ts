import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

const LIMIT = 6;

let testDb: TestDatabase;
let first: Harness;
let second: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // Two API processes on one database; the first also runs the delivery worker.
  first = await startHarness(testDb, { API_RATE_LIMIT: LIMIT }, { worker: true });
  second = await startHarness(testDb, { API_RATE_LIMIT: LIMIT }, { worker: false });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await first?.stop();
  await second?.stop();
  await receiver?.close();
  await testDb?.drop();
});

describe("API_RATE_LIMIT", () => {
  it("is one budget per API key, shared by every API process, then 429 with Retry-After and RateLimit headers", async () => {
    const key = first.tenant.apiKey;
    const viaFirst = first.api.withKey(key);
    const viaSecond = second.api.withKey(key);

    const job = await viaFirst.post("/api/v1/generate", { prompt: "before the limit", webhookUrl: receiver.url });
    expect(job.status).toBe(202);
    expect(job.headers.get("ratelimit-limit")).toBe(String(LIMIT));
    expect(job.headers.get("ratelimit-remaining")).toBe(String(LIMIT - 1));
    expect(job.headers.get("ratelimit-policy")).toBe(`${LIMIT};w=60`);

    const remaining: string[] = [];
    for (let index = 1; index < LIMIT; index++) {
      const response = await (index % 2 === 0 ? viaFirst : viaSecond).get("/api/v1/jobs");
      expect(response.status).toBe(200);
      remaining.push(response.headers.get("ratelimit-remaining") ?? "");
    }
    expect(remaining).toEqual(Array.from({ length: LIMIT - 1 }, (_, index) => String(LIMIT - 2 - index)));

    for (const client of [viaSecond, viaFirst]) {
      const refused = await client.get(`/api/v1/jobs/${job.body.jobId}`);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe("RATE_LIMITED");
      const retryAfter = Number(refused.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(refused.headers.get("ratelimit-remaining")).toBe("0");
      expect(refused.headers.get("ratelimit-reset")).toBe(String(retryAfter));
      expect(refused.headers.get("ratelimit-limit")).toBe(String(LIMIT));
    }
    expect((await viaSecond.post("/api/v1/generate", { prompt: "over the limit" })).status).toBe(429);
    const jobs = await testDb.database.query("select 1 from webhook_outbox.jobs where tenant_id = $1", [first.tenant.tenantId]);
    expect(jobs).toHaveLength(1);
  });

  it("counts each key on its own", async () => {
    const other = await createTenant(testDb.database, "another tenant");
    const response = await second.api.withKey(other.apiKey).get("/api/v1/jobs");
    expect(response.status).toBe(200);
    expect(response.headers.get("ratelimit-remaining")).toBe(String(LIMIT - 1));
  });

  it("never counts internal reports or webhook deliveries", async () => {
    const [job] = await testDb.database.query<{ id: string }>("select id from webhook_outbox.jobs where tenant_id = $1", [first.tenant.tenantId]);
    if (!job) throw new Error("no job");
    const counter = () =>
      testDb.database.query<{ points: number }>("select points from webhook_outbox.api_rate_limits where key = $1", [
        `api:${first.tenant.apiKey.slice(0, 11)}`,
      ]);
    const before = await counter();
    expect(before[0]?.points).toBeGreaterThan(LIMIT);

    await first.api.finishJob(job.id, 1, "completed");
    await eventually(() => finishedDelivery(testDb.database, job.id, "succeeded"));
    expect(receiver.requests).toHaveLength(1);
    expect(await counter()).toEqual(before);
  });

  it("is validated at start", () => {
    expect(loadConfig({ API_RATE_LIMIT: "120" }).API_RATE_LIMIT).toBe(120);
    expect(loadConfig({ API_RATE_LIMIT: "" }).API_RATE_LIMIT).toBeUndefined();
    for (const bad of ["0", "-5", "1.5", "lots"]) {
      expect(() => loadConfig({ API_RATE_LIMIT: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ API_RATE_LIMIT: bad }), bad).toThrow(/API_RATE_LIMIT: must be a whole number/);
    }
  });

  it("is off when API_RATE_LIMIT is unset", async () => {
    const unlimited = await startHarness(testDb, {}, { worker: false });
    try {
      for (let index = 0; index < LIMIT + 2; index++) {
        const response = await unlimited.api.get("/api/v1/jobs");
        expect(response.status).toBe(200);
        expect(response.headers.get("ratelimit-limit")).toBeNull();
      }
    } finally {
      await unlimited.stop();
    }
  });
});
