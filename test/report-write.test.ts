import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/db/client.js";
import type { JobService } from "../src/jobs/job-service.js";
import { OUTBOX_CHANNEL } from "../src/outbox/enqueue.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";
import { eventually } from "./support/harness.js";
import { deliveriesOf } from "./support/queries.js";

/*
 * The report path reads a job without a lock and writes project, job and webhook row in one
 * statement that applies only if the job row has not moved. These tests drive JobService directly
 * against the test database, so they can move the job between the read and the write.
 */

let testDb: TestDatabase;
let tenant: CreatedTenant;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenant = await createTenant(testDb.database, "reports");
});

afterAll(async () => {
  await testDb?.drop();
});

const jobService = (database: Database): JobService => testJobService(database);

async function newJob(projectCount = 1): Promise<string> {
  const job = await jobService(testDb.database).create({
    tenantId: tenant.tenantId,
    apiFlavor: "nouvel",
    prompt: "a report",
    projectCount,
    webhookUrl: "http://127.0.0.1:9/hook",
  });
  return job.id;
}

/** The test database, except that each unlocked read of job state is followed by `interleave` (another writer). */
function interleavedDatabase(reads: string[], interleave: (jobId: string, round: number) => Promise<void>): Database {
  const database = testDb.database;
  return {
    ...database,
    async query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]> {
      const rows = await database.query<Row>(text, params, name);
      if (name === "job_read_states") {
        for (const jobId of params?.[0] as string[]) {
          reads.push(jobId);
          await interleave(jobId, reads.length);
        }
      }
      return rows;
    },
  };
}

const touchJob = async (jobId: string) => {
  await testDb.database.query("update webhook_outbox.jobs set updated_at = now() where id = $1", [jobId]);
};

describe("the report write", () => {
  it("lands through the job's row lock when the job moves between every read and write", async () => {
    const jobId = await newJob();
    const reads: string[] = [];
    const view = await jobService(interleavedDatabase(reads, touchJob)).updateProject(jobId, 0, {
      status: "completed",
      videoUrl: "https://cdn.example.com/v.mp4",
    });
    // Three unlocked rounds lost to the other writer, then one read under the lock (not through `query`).
    expect(reads).toEqual([jobId, jobId, jobId]);
    expect(view.status).toBe("completed");
    const deliveries = await deliveriesOf(testDb.database, jobId);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.payload).toMatchObject({ status: "completed", completedProjects: 1 });
  });

  it("applies nothing read before another report made the job's last other project terminal", async () => {
    const jobId = await newJob(2);
    const reads: string[] = [];
    // Between our first read and our write, project 1 completes (as its own report would write it).
    const completeOther = async (id: string, round: number) => {
      if (round !== 1) return;
      await testDb.database.query(
        "update webhook_outbox.job_projects set status = 'completed', updated_at = now() where job_id = $1 and index = 1",
        [id],
      );
      await touchJob(id);
    };
    const view = await jobService(interleavedDatabase(reads, completeOther)).updateProject(jobId, 0, { status: "completed" });
    // A write from the stale read would have settled the job as processing and lost its webhook.
    expect(reads).toHaveLength(2);
    expect(view.status).toBe("completed");
    const [job] = await testDb.database.query<{ status: string }>("select status from webhook_outbox.jobs where id = $1", [jobId]);
    expect(job?.status).toBe("completed");
    const deliveries = await deliveriesOf(testDb.database, jobId);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.payload).toMatchObject({ status: "completed", completedProjects: 2 });
  });

  it("writes nothing of a report whose project vanished after its read, and answers 404", async () => {
    const jobId = await newJob();
    const removeProject = async (id: string, round: number) => {
      if (round === 1) await testDb.database.query("delete from webhook_outbox.job_projects where job_id = $1", [id]);
    };
    const report = jobService(interleavedDatabase([], removeProject)).updateProject(jobId, 0, { status: "completed" });
    await expect(report).rejects.toMatchObject({ status: 404, code: "PROJECT_NOT_FOUND" });
    // The job row must not have been settled on its own: a report writes all of itself or nothing.
    const [job] = await testDb.database.query<{ status: string; completed_at: Date | null }>(
      "select status, completed_at from webhook_outbox.jobs where id = $1",
      [jobId],
    );
    expect(job).toMatchObject({ status: "queued", completed_at: null });
    expect(await deliveriesOf(testDb.database, jobId)).toHaveLength(0);
  });

  it("stamps the job row and the frozen payload with the same instant", async () => {
    const jobId = await newJob();
    const view = await jobService(testDb.database).updateProject(jobId, 0, { status: "failed", error: { code: "UNSAFE_CONTENT" } });
    const [job] = await testDb.database.query<{ completed_at: Date; updated_at: Date }>(
      "select completed_at, updated_at from webhook_outbox.jobs where id = $1",
      [jobId],
    );
    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery?.payload.completedAt).toBe(job?.completed_at.toISOString());
    expect(view.completedAt?.toISOString()).toBe(job?.completed_at.toISOString());
    expect(job?.updated_at.toISOString()).toBe(job?.completed_at.toISOString());
  });

  it("notifies the workers when the terminal report commits", async () => {
    const jobId = await newJob();
    let notifications = 0;
    const unlisten = await testDb.database.listen(OUTBOX_CHANNEL, () => notifications++);
    try {
      await jobService(testDb.database).updateProject(jobId, 0, { status: "completed" });
      await eventually(async () => (notifications > 0 ? true : undefined));
    } finally {
      await unlisten();
    }
  });
});
