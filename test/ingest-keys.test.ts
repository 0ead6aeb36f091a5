import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Database, Db } from "../src/db/client.js";
import { createApp } from "../src/http/app.js";
import { createLogger } from "../src/logger.js";
import { createApiKey, type CreatedApiKey } from "../src/tenants/key-lifecycle.js";
import { runCli } from "./support/cli.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { ApiClient, eventually, INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";
import { testJobService } from "./support/job-service.js";

/*
 * A create takes the tenant of a key seen valid from the process's cache (no lookup) and its own
 * statement checks the key; every other route looks the key up. A key revoked from anywhere is
 * refused from the next request on, however often the process has seen it valid.
 */

// A CLI call starts a process that compiles TypeScript: seconds, not milliseconds, on a busy machine.
vi.setConfig({ testTimeout: 120_000 });

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function jobsWithPrompt(prompt: string): Promise<number> {
  const [row] = await testDb.database.query<{ count: string }>(
    "select count(*) from webhook_outbox.jobs j join webhook_outbox.job_projects p on p.job_id = j.id where j.prompt = $1",
    [prompt],
  );
  return Number(row?.count);
}

/** A fresh key of the harness tenant, seen valid by the service: two creates and a read with it. */
async function cachedKey(label: string): Promise<{ key: CreatedApiKey; client: ApiClient }> {
  const key = await createApiKey(testDb.database, harness.tenant.tenantId);
  const client = harness.api.withKey(key.apiKey);
  for (const n of [1, 2]) expect((await client.post("/api/v1/generate", { prompt: `${label} before ${n}` })).status).toBe(202);
  expect((await client.get("/api/v1/jobs")).status).toBe(200);
  return { key, client };
}

async function expectRefusedEverywhere(client: ApiClient, label: string): Promise<void> {
  const create = await client.post("/api/v1/generate", { prompt: `${label} after`, projectCount: 2 });
  expect(create.status).toBe(401);
  expect(create.body).toEqual({ error: { code: "UNAUTHORIZED", message: "invalid or revoked API key" } });
  const veo = await client.post("/v1/veo/generate", { prompt: `${label} after (veo)` });
  expect(veo.status).toBe(401);
  expect(veo.body.error.code).toBe("UNAUTHORIZED");
  expect((await client.get("/api/v1/jobs")).status).toBe(401);
  // Again, now that the refusal has been seen: still refused, still nothing written.
  expect((await client.post("/api/v1/generate", { prompt: `${label} after` })).status).toBe(401);
  expect(await jobsWithPrompt(`${label} after`)).toBe(0);
  expect(await jobsWithPrompt(`${label} after (veo)`)).toBe(0);
  expect(await jobsWithPrompt(`${label} before 2`)).toBe(1);
}

describe("API keys on the ingest path", () => {
  it("cost a create no lookup once seen valid, while every read looks the key up", async () => {
    let lookups = 0;
    const counted: Db = new Proxy(testDb.database.db, {
      get(target, property, receiver) {
        if (property === "select") lookups++;
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const database: Database = { ...testDb.database, db: counted };
    const app = createApp({
      database,
      jobService: testJobService(database),
      logger: createLogger("silent"),
      internalApiToken: INTERNAL_TOKEN,
      webhookHeaderPrefix: harness.config.WEBHOOK_HEADER_PREFIX,
    });
    const server = await new Promise<ServerType>((resolve) => {
      const listening: ServerType = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(listening));
    });
    try {
      const client = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, harness.tenant.apiKey);
      const created = [];
      for (let n = 0; n < 5; n++) {
        const response = await client.post("/api/v1/generate", { prompt: `counted ${n}` });
        expect(response.status).toBe(202);
        created.push(response.body.jobId as string);
      }
      expect((await client.post("/v1/veo/generate", { prompt: "counted veo" })).status).toBe(202);
      // The first create looked the key up; the other five took it from the cache.
      expect(lookups).toBe(1);

      for (const jobId of created.slice(0, 3)) expect((await client.get(`/api/v1/jobs/${jobId}`)).status).toBe(200);
      // Each read: one lookup of the key (then the read's own query of the job).
      expect(lookups).toBe(1 + 3 * 2);

      const unknown = client.withKey("wo_thiskeywasnevermadebyanyone");
      for (let n = 0; n < 2; n++) expect((await unknown.post("/api/v1/generate", { prompt: "counted unknown" })).status).toBe(401);
      // Unknown keys are not cached: each attempt is looked up again.
      expect(lookups).toBe(1 + 3 * 2 + 2);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("refuses a key the service has cached from the request after `tenant revoke-key` (another process)", async () => {
    const { key, client } = await cachedKey("cli");
    const revoked = await runCli(["tenant", "revoke-key", key.prefix], { DATABASE_URL: testDb.url });
    expect(revoked.code, revoked.stderr).toBe(0);
    await expectRefusedEverywhere(client, "cli");
    // The tenant's other key still works.
    expect((await harness.api.post("/api/v1/generate", { prompt: "cli other key" })).status).toBe(202);
  });

  it("refuses a key the service has cached from the request after a revocation written in SQL", async () => {
    const { key, client } = await cachedKey("sql");
    await testDb.database.query("update webhook_outbox.api_keys set revoked_at = now() where prefix = $1", [key.prefix]);
    await expectRefusedEverywhere(client, "sql");
  });

  it("refuses a create that meets a revocation still being written, once that revocation commits", async () => {
    const { key, client } = await cachedKey("racing");
    const revoker = new pg.Client({ connectionString: testDb.url });
    await revoker.connect();
    try {
      await revoker.query("begin");
      await revoker.query("update webhook_outbox.api_keys set revoked_at = now() where prefix = $1", [key.prefix]);
      const create = client.post("/api/v1/generate", { prompt: "racing after" });
      // The create's statement waits for the revoking transaction's lock on the key row.
      await eventually(
        async () => {
          const [row] = await testDb.database.query<{ waiting: string }>(
            `select count(*) as waiting from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock' and query like '%unnest%'`,
          );
          return Number(row?.waiting) > 0 ? true : undefined;
        },
        20_000,
        "the create to wait on the key row",
      );
      await revoker.query("commit");
      const refused = await create;
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe("UNAUTHORIZED");
      expect(await jobsWithPrompt("racing after")).toBe(0);
    } finally {
      await revoker.end();
    }
  });
});
