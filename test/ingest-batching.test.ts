import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryOn, type Database, type Query } from "../src/db/client.js";
import { ApiKeyRejectedError } from "../src/errors.js";
import { JobCreates } from "../src/jobs/job-creates.js";
import { KnownJobStates } from "../src/jobs/known-job-states.js";
import type { JobService, NewJob } from "../src/jobs/job-service.js";
import { createApiKey } from "../src/tenants/key-lifecycle.js";
import { hashApiKey } from "../src/tenants/credentials.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { countingDatabase } from "./support/counting-database.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";

/*
 * Creates that arrive while the process's create statements are busy share the next statement.
 * With one statement in flight, a burst made in one tick goes out as the first create alone, then
 * everything that queued behind it: two statements, whatever the burst's size.
 */

let testDb: TestDatabase;
let tenant: CreatedTenant;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenant = await createTenant(testDb.database, "ingest");
});

afterAll(async () => {
  await testDb?.drop();
});

const serviceCounting = (counts: Map<string, number>): JobService =>
  testJobService(countingDatabase(testDb.database, counts), { createConcurrency: 1, jobTimeoutMs: 600_000 });

const newJob = (prompt: string, extra: Partial<NewJob> = {}): NewJob => ({
  tenantId: tenant.tenantId,
  apiKeyHash: hashApiKey(tenant.apiKey),
  apiFlavor: "nouvel",
  prompt,
  projectCount: 1,
  ...extra,
});

interface StoredJob {
  id: string;
  tenant_id: string;
  prompt: string;
  status: string;
  webhook_url: string | null;
  created_at: Date;
  deadline_at: Date;
  transaction: string;
  deadline_ms: number;
}

async function storedJobs(prompts: string[]): Promise<StoredJob[]> {
  return testDb.database.query<StoredJob>(
    `select id, tenant_id, prompt, status, webhook_url, created_at, deadline_at, xmin::text as transaction,
            extract(epoch from deadline_at - updated_at) * 1000 as deadline_ms
     from webhook_outbox.jobs where prompt = any($1::text[])`,
    [prompts],
  );
}

async function storedProjects(jobId: string): Promise<Array<{ id: string; index: number; status: string; seed: string | null }>> {
  return testDb.database.query("select id, index, status, seed from webhook_outbox.job_projects where job_id = $1 order by index", [jobId]);
}

describe("create batching", () => {
  it("writes a burst of 40 creates in two statements, each job with its projects and its own answer", async () => {
    const counts = new Map<string, number>();
    const service = serviceCounting(counts);
    const inputs = Array.from({ length: 40 }, (_, i) =>
      newJob(`burst ${i}`, { projectCount: (i % 3) + 1, webhookUrl: i % 2 ? `http://127.0.0.1:9/hook/${i}` : undefined, seed: i % 5 ? i : undefined }),
    );

    const views = await Promise.all(inputs.map((input) => service.create(input)));

    expect(counts.get("job_insert")).toBe(2);
    const stored = await storedJobs(inputs.map((input) => input.prompt));
    expect(stored).toHaveLength(40);
    // Two statements, two transactions: the first create alone, the other 39 together.
    expect(new Set(stored.map((job) => job.transaction)).size).toBe(2);
    for (const [i, view] of views.entries()) {
      const input = inputs[i] as NewJob;
      const row = stored.find((job) => job.id === view.id);
      expect(row, input.prompt).toBeDefined();
      expect(view).toMatchObject({
        tenantId: tenant.tenantId,
        apiFlavor: "nouvel",
        prompt: input.prompt,
        status: "queued",
        webhookUrl: input.webhookUrl ?? null,
        completedAt: null,
      });
      expect(row?.prompt).toBe(input.prompt);
      expect(row?.webhook_url).toBe(input.webhookUrl ?? null);
      expect(view.createdAt.toISOString()).toBe(row?.created_at.toISOString());
      expect(view.deadlineAt.toISOString()).toBe(row?.deadline_at.toISOString());
      expect(row?.deadline_ms).toBeCloseTo(600_000, 0);
      const projects = await storedProjects(view.id);
      expect(projects.map((project) => project.index)).toEqual(Array.from({ length: input.projectCount }, (_, index) => index));
      expect(view.projects).toEqual(
        projects.map((project) => ({
          id: project.id,
          index: project.index,
          status: "queued",
          videoUrl: null,
          seed: input.seed ?? null,
          errorCode: null,
          errorMessage: null,
        })),
      );
    }
  });

  it("sends the next statement as soon as one answers, before that one's creates are answered", async () => {
    const events: string[] = [];
    const query: Query = (text, params, name) => {
      if (name === "job_insert") events.push("statement sent");
      return testDb.database.query(text, params, name);
    };
    const creates = new JobCreates({ query, concurrency: 1, jobTimeoutMs: 600_000, known: new KnownJobStates(0) });
    const insert = (prompt: string) => ({
      ...newJob(prompt),
      apiKeyHash: hashApiKey(tenant.apiKey),
      webhookUrl: null,
      seed: null,
      idempotencyKey: null,
      requestHash: null,
    });

    await Promise.all(
      ["release first", "release second", "release third"].map((prompt) => creates.create(insert(prompt)).then(() => events.push(`${prompt} answered`))),
    );

    // The first create went alone; the two that queued behind it left before it was answered.
    expect(events).toEqual(["statement sent", "statement sent", "release first answered", "release second answered", "release third answered"]);
  });

  it("sends a lone create at once, in a statement of its own", async () => {
    const counts = new Map<string, number>();
    const service = serviceCounting(counts);
    await service.create(newJob("alone 1"));
    await service.create(newJob("alone 2"));
    expect(counts.get("job_insert")).toBe(2);
    expect(new Set((await storedJobs(["alone 1", "alone 2"])).map((job) => job.transaction)).size).toBe(2);
  });

  it("fails only the bad creates of a shared statement, and writes nothing of them", async () => {
    const counts = new Map<string, number>();
    const service = serviceCounting(counts);
    const good = ["shared good 0", "shared good 1", "shared good 2"];

    const results = await Promise.allSettled([
      service.create(newJob("shared blocker")),
      service.create(newJob(good[0] as string, { projectCount: 2 })),
      // Postgres refuses NUL in text: the shared statement fails on this one's prompt.
      service.create(newJob("shared bad \u0000 prompt")),
      service.create(newJob(good[1] as string)),
      // No such tenant (a trusted caller, no key to check): the foreign key fails the statement.
      service.create(newJob("shared bad tenant", { tenantId: "00000000-0000-4000-8000-000000000000", apiKeyHash: undefined })),
      service.create(newJob(good[2] as string)),
    ]);

    expect(results.map((result) => result.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: "22021" });
    expect((results[4] as PromiseRejectedResult).reason).toMatchObject({ code: "23503" });
    // The blocker, the failed shared statement, then each of its five alone.
    expect(counts.get("job_insert")).toBe(7);
    const stored = await storedJobs([...good, "shared bad tenant"]);
    expect(stored.map((job) => job.prompt).sort()).toEqual(good);
    const [{ count }] = (await testDb.database.query<{ count: string }>("select count(*) from webhook_outbox.jobs where prompt like 'shared bad%'")) as [
      { count: string },
    ];
    expect(count).toBe("0");
    for (const job of stored) expect((await storedProjects(job.id)).length).toBe(job.prompt === good[0] ? 2 : 1);
  });

  it("fails every create of a shared statement whose outcome is unknown, and writes none twice", async () => {
    // The database commits the shared statement, then the answer is lost, as when the connection
    // drops after the commit: the creates cannot know their jobs exist, and must not write them again.
    let statements = 0;
    const lostAnswer: Database = {
      ...testDb.database,
      async query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]> {
        const rows = await testDb.database.query<Row>(text, params, name);
        if (name === "job_insert" && ++statements === 2) throw new Error("Connection terminated unexpectedly");
        return rows;
      },
    };
    const service = testJobService(lostAnswer, { createConcurrency: 1 });
    const prompts = Array.from({ length: 5 }, (_, i) => `lost answer ${i}`);

    const results = await Promise.allSettled(prompts.map((prompt) => service.create(newJob(prompt))));

    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected", "rejected"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ message: "Connection terminated unexpectedly" });
    expect(statements).toBe(2);
    const stored = await storedJobs(prompts);
    expect(stored.map((job) => job.prompt).sort()).toEqual(prompts);
  });

  it("refuses a create whose key is revoked or another tenant's, alone and writing nothing, in a shared statement", async () => {
    const other = await createTenant(testDb.database, "ingest other");
    const doomed = await createApiKey(testDb.database, tenant.tenantId);
    await testDb.database.query("update webhook_outbox.api_keys set revoked_at = now() where prefix = $1", [doomed.prefix]);
    const counts = new Map<string, number>();
    const service = serviceCounting(counts);

    const results = await Promise.allSettled([
      service.create(newJob("keyed blocker")),
      service.create(newJob("keyed good 0")),
      service.create(newJob("keyed revoked", { apiKeyHash: hashApiKey(doomed.apiKey) })),
      service.create(newJob("keyed other tenant's key", { apiKeyHash: hashApiKey(other.apiKey) })),
      service.create(newJob("keyed unknown key", { apiKeyHash: hashApiKey("wo_nosuchkeyatall") })),
      service.create(newJob("keyed good 1")),
    ]);

    expect(results.map((result) => result.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected", "rejected", "fulfilled"]);
    for (const at of [2, 3, 4]) expect((results[at] as PromiseRejectedResult).reason).toBeInstanceOf(ApiKeyRejectedError);
    // A refused key fails nothing else: the five after the blocker still shared one statement.
    expect(counts.get("job_insert")).toBe(2);
    const stored = await storedJobs(["keyed good 0", "keyed good 1", "keyed revoked", "keyed other tenant's key", "keyed unknown key"]);
    expect(stored.map((job) => job.prompt).sort()).toEqual(["keyed good 0", "keyed good 1"]);
  });
});

describe("the create statement's plan", () => {
  it("is planned once and reused whatever the batch's size (a generic plan)", async () => {
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      const service = testJobService({ ...testDb.database, query: queryOn(client) }, { createConcurrency: 1 });
      for (let round = 0; round < 12; round++) {
        await Promise.all(Array.from({ length: 2 + (round % 4) * 5 }, (_, i) => service.create(newJob(`planned ${round}.${i}`))));
      }
      const [plans] = (await client.query<{ generic_plans: string; custom_plans: string }>(
        "select generic_plans, custom_plans from pg_prepared_statements where name = 'job_insert'",
      )).rows;
      // Postgres tries five custom plans before it compares; from then on the generic one serves.
      expect(Number(plans?.custom_plans)).toBeLessThanOrEqual(5);
      expect(Number(plans?.generic_plans)).toBeGreaterThan(10);
    } finally {
      await client.end();
    }
  });
});
