import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { startHarness, type ApiClient, type ApiResponse, type Harness } from "./support/harness.js";

/*
 * Idempotency-Key on the create routes: one job per (tenant, key) within 24 h, the original answer
 * for a repeat, 409 for another request under the key; concurrent duplicates, in one API process
 * or two, make one job.
 */

let testDb: TestDatabase;
let harness: Harness;
/** A second API process on the same database: its creates share no batch with the first's. */
let other: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
  other = await startHarness(testDb, {}, { worker: false, tenant: harness.tenant });
});

afterAll(async () => {
  await harness?.stop();
  await other?.stop();
  await testDb?.drop();
});

async function fresh(): Promise<{ tenant: CreatedTenant; api: ApiClient }> {
  const tenant = await createTenant(testDb.database, `idem-${Math.random().toString(36).slice(2, 8)}`);
  return { tenant, api: harness.api.withKey(tenant.apiKey) };
}

function create(api: ApiClient, key: string | undefined, body: unknown, path = "/api/v1/generate"): Promise<ApiResponse> {
  return api.request("POST", path, body, api.apiKey, key === undefined ? {} : { "idempotency-key": key });
}

async function jobCount(tenantId: string): Promise<number> {
  const [row] = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs where tenant_id = $1", [
    tenantId,
  ]);
  return row?.n ?? -1;
}

describe("Idempotency-Key on POST /api/v1/generate", () => {
  it("answers a repeat with the original response, the same job, and makes no second job, even after the job moved on", async () => {
    const { tenant, api } = await fresh();
    const body = { prompt: "once", projectCount: 2 };
    const first = await create(api, "order-1", body);
    expect(first.status).toBe(202);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    // The job moves on; the repeated request still gets the answer the first one got.
    await api.internalPatch(`/internal/v1/jobs/${first.body.jobId}/projects/0`, { status: "processing" });
    const again = await create(api, "order-1", { projectCount: 2, prompt: "once" });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await jobCount(tenant.tenantId)).toBe(1);
    // Without a key, every create is a job of its own.
    await create(api, undefined, body);
    await create(api, undefined, body);
    expect(await jobCount(tenant.tenantId)).toBe(3);
  });

  it("refuses the key with another body, or on the other route: 409 IDEMPOTENCY_KEY_REUSED, nothing written", async () => {
    const { tenant, api } = await fresh();
    expect((await create(api, "k-1", { prompt: "first" })).status).toBe(202);
    const changed = await create(api, "k-1", { prompt: "second" });
    expect(changed.status).toBe(409);
    expect(changed.body.error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    const otherRoute = await create(api, "k-1", { prompt: "first" }, "/v1/veo/generate");
    expect(otherRoute.status).toBe(409);
    expect(await jobCount(tenant.tenantId)).toBe(1);
  });

  it("keys are per tenant", async () => {
    const a = await fresh();
    const b = await fresh();
    const first = await create(a.api, "shared-key", { prompt: "a" });
    const second = await create(b.api, "shared-key", { prompt: "b" });
    expect(second.status).toBe(202);
    expect(second.body.jobId).not.toBe(first.body.jobId);
  });

  it("concurrent creates with one key make one job, in one API process and across two", async () => {
    const { tenant, api } = await fresh();
    const body = { prompt: "racing", projectCount: 3 };
    const otherApi = other.api.withKey(tenant.apiKey);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => create(i % 2 === 0 ? api : otherApi, "race-1", body)),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(12).fill(202));
    const jobIds = new Set(answers.map((answer) => answer.body.jobId));
    expect(jobIds.size).toBe(1);
    for (const answer of answers) expect(answer.body).toEqual(answers[0]?.body);
    expect(answers.filter((answer) => answer.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    expect(await jobCount(tenant.tenantId)).toBe(1);
    const [projects] = await testDb.database.query<{ n: number }>(
      "select count(*)::int as n from webhook_outbox.job_projects where job_id = $1",
      [[...jobIds][0]],
    );
    expect(projects?.n).toBe(3);
  });

  it("refuses a bad key with a 400 and writes nothing", async () => {
    const { tenant, api } = await fresh();
    for (const key of ["x".repeat(256), "tab\there", "é-accent"]) {
      const refused = await create(api, key, { prompt: "bad key" });
      expect(refused.status, key).toBe(400);
      expect(refused.body.error.message).toContain("idempotency-key");
    }
    expect(await jobCount(tenant.tenantId)).toBe(0);
    expect((await create(api, "x".repeat(255), { prompt: "longest key" })).status).toBe(202);
  });

  it("a key older than 24 h no longer answers: it makes a new job, and expired keys are pruned", async () => {
    const { tenant, api } = await fresh();
    const first = await create(api, "old-key", { prompt: "yesterday" });
    await testDb.database.query(
      "update webhook_outbox.idempotency_keys set created_at = now() - interval '25 hours' where tenant_id = $1",
      [tenant.tenantId],
    );
    const later = await create(api, "old-key", { prompt: "today" });
    expect(later.status).toBe(202);
    expect(later.body.jobId).not.toBe(first.body.jobId);
    // The key now belongs to the new job.
    expect((await create(api, "old-key", { prompt: "today" })).body.jobId).toBe(later.body.jobId);

    const stale = await create(api, "stale-key", { prompt: "prune me" });
    expect(stale.status).toBe(202);
    await testDb.database.query(
      "update webhook_outbox.idempotency_keys set created_at = now() - interval '25 hours' where tenant_id = $1 and key = 'stale-key'",
      [tenant.tenantId],
    );
    expect(await harness.service.jobService.pruneIdempotencyKeys()).toBeGreaterThanOrEqual(1);
    const keys = await testDb.database.query<{ key: string }>(
      "select key from webhook_outbox.idempotency_keys where tenant_id = $1 order by key",
      [tenant.tenantId],
    );
    expect(keys.map((k) => k.key)).toEqual(["old-key"]);
  });
});

describe("Idempotency-Key on POST /v1/veo/generate", () => {
  it("answers a repeat with the same generation and seed", async () => {
    const { tenant, api } = await fresh();
    const first = await create(api, "veo-1", { prompt: "a cat" }, "/v1/veo/generate");
    const again = await create(api, "veo-1", { prompt: "a cat" }, "/v1/veo/generate");
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await jobCount(tenant.tenantId)).toBe(1);
  });
});
