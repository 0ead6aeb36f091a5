import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryOn, type Database, type Query } from "../src/db/client.js";
import type { JobService, ProjectUpdate } from "../src/jobs/job-service.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { countingDatabase } from "./support/counting-database.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";
import { deliveriesOf } from "./support/queries.js";

/*
 * Reports that arrive while the process's report statements are busy share the next read and the
 * next write. With one statement in flight, a burst of reports made in one tick goes out as the
 * first report alone, then everything that queued behind it: two writes, whatever the burst's size.
 */

let testDb: TestDatabase;
let tenant: CreatedTenant;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenant = await createTenant(testDb.database, "batching");
});

afterAll(async () => {
  await testDb?.drop();
});

const jobService = (database: Database = testDb.database): JobService => testJobService(database, { reportConcurrency: 1 });

async function newJob(projectCount = 1): Promise<string> {
  const job = await jobService().create({
    tenantId: tenant.tenantId,
    apiFlavor: "nouvel",
    prompt: "a batched report",
    projectCount,
    webhookUrl: "http://127.0.0.1:9/hook",
  });
  return job.id;
}

const completed: ProjectUpdate = { status: "completed", videoUrl: "https://cdn.example.com/v.mp4" };

async function jobStatus(jobId: string): Promise<string | undefined> {
  const [row] = await testDb.database.query<{ status: string }>("select status from webhook_outbox.jobs where id = $1", [jobId]);
  return row?.status;
}

describe("report batching", () => {
  it("writes a burst of reports on different jobs in two statements, each job with its own webhook", async () => {
    const jobIds = await Promise.all(Array.from({ length: 20 }, () => newJob()));
    const counts = new Map<string, number>();
    const service = jobService(countingDatabase(testDb.database, counts));

    const views = await Promise.all(jobIds.map((jobId) => service.updateProject(jobId, 0, completed)));

    expect(views.map((view) => view.status)).toEqual(jobIds.map(() => "completed"));
    expect(counts.get("job_read_states")).toBe(2);
    expect(counts.get("job_write_reports")).toBe(2);
    for (const jobId of jobIds) {
      const deliveries = await deliveriesOf(testDb.database, jobId);
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]?.payload).toMatchObject({ jobId, status: "completed", completedProjects: 1 });
    }
  });

  it("never puts two reports on one job into one statement, so the last one still settles the job", async () => {
    const blocker = await newJob();
    const jobId = await newJob(3);
    const service = jobService();

    // The blocker's report takes the one slot; the three reports on one job queue behind it together.
    await Promise.all([
      service.updateProject(blocker, 0, completed),
      ...[0, 1, 2].map((index) => service.updateProject(jobId, index, completed)),
    ]);

    // Had two of them shared a statement, each would have computed the job from a read that saw the
    // other project still processing: both projects written, the job left processing, no webhook.
    expect(await jobStatus(jobId)).toBe("completed");
    const deliveries = await deliveriesOf(testDb.database, jobId);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.payload).toMatchObject({ status: "completed", completedProjects: 3 });
  });

  it("fails only the bad report of a batch and writes nothing of it", async () => {
    const blocker = await newJob();
    const good = await Promise.all([newJob(), newJob(), newJob()]);
    const bad = await newJob();
    const service = jobService();

    const results = await Promise.allSettled([
      service.updateProject(blocker, 0, completed),
      service.updateProject(good[0] as string, 0, completed),
      // Out of the seed column's range: the shared write statement fails on it.
      service.updateProject(bad, 0, { status: "completed", seed: 1e20 }),
      service.updateProject(good[1] as string, 0, completed),
      service.updateProject("00000000-0000-4000-8000-000000000000", 0, completed),
      service.updateProject(good[2] as string, 0, completed),
    ]);

    expect(results.map((result) => result.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect((results[4] as PromiseRejectedResult).reason).toMatchObject({ status: 404 });
    for (const jobId of good) expect(await jobStatus(jobId)).toBe("completed");
    expect(await jobStatus(bad)).toBe("queued");
    const [project] = await testDb.database.query<{ status: string }>("select status from webhook_outbox.job_projects where job_id = $1", [bad]);
    expect(project?.status).toBe("queued");
    expect(await deliveriesOf(testDb.database, bad)).toHaveLength(0);
  });

  it("sends the next round as soon as one has written, before that round's reports are answered", async () => {
    const jobIds = await Promise.all([newJob(), newJob(), newJob()]);
    const events: string[] = [];
    const database = testDb.database;
    const service = jobService({
      ...database,
      query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]> {
        if (name === "job_read_states") events.push("round sent");
        return database.query<Row>(text, params, name);
      },
    });

    await Promise.all(jobIds.map((jobId, at) => service.updateProject(jobId, 0, completed).then(() => events.push(`report ${at} answered`))));

    // The first report went alone; the two that queued behind it left before it was answered.
    expect(events).toEqual(["round sent", "round sent", "report 0 answered", "report 1 answered", "report 2 answered"]);
  });
});

describe("the report read's plan", () => {
  it("is planned once and reused whatever the batch's size (a generic plan), reaching jobs by primary key", async () => {
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      let readText: string | undefined;
      const onClient = queryOn(client);
      const query: Query = (text, params, name) => {
        if (name === "job_read_states") readText = text;
        return onClient(text, params, name);
      };
      // Tables of a service's size (any plan of a tiny table scans it whole, and costs the same
      // whatever the batch): 5,000 finished jobs, analyzed.
      await client.query(
        `with j as (
           insert into webhook_outbox.jobs (tenant_id, api_flavor, prompt, status, deadline_at, completed_at)
           select $1, 'nouvel', 'finished', 'completed', now(), now() from generate_series(1, 5000)
           returning id
         )
         insert into webhook_outbox.job_projects (job_id, index, status, video_url)
         select id, 0, 'completed', 'https://cdn.example.com/v.mp4' from j`,
        [tenant.tenantId],
      );
      await client.query("analyze webhook_outbox.jobs, webhook_outbox.job_projects");
      // A process that remembers no job reads every job it reports on (as one that did not create it).
      const service = testJobService({ ...testDb.database, query }, { reportConcurrency: 1, knownJobs: 0 });
      for (let round = 0; round < 12; round++) {
        const jobIds = await Promise.all(Array.from({ length: 1 + (round % 3) * 4 }, () => newJob()));
        await Promise.all(jobIds.map((jobId) => service.updateProject(jobId, 0, completed)));
      }
      const [plans] = (
        await client.query<{ generic_plans: string; custom_plans: string }>(
          "select generic_plans, custom_plans from pg_prepared_statements where name = 'job_read_states'",
        )
      ).rows;
      // Postgres tries five custom plans before it compares; from then on the generic one serves.
      expect(Number(plans?.custom_plans)).toBeLessThanOrEqual(5);
      expect(Number(plans?.generic_plans)).toBeGreaterThan(5);

      // The generic plan finds the jobs by primary key, however many ids the array holds.
      await client.query("set plan_cache_mode = force_generic_plan");
      await client.query(`prepare read_plan(uuid[]) as ${readText}`);
      const { rows } = await client.query<Record<string, string>>(`explain execute read_plan('{}')`);
      const plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
      expect(plan).toMatch(/Index Scan using jobs_pkey/);
      expect(plan).not.toMatch(/Seq Scan on jobs/);
    } finally {
      await client.end();
    }
  });
});
