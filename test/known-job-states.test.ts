import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobService, ProjectUpdate } from "../src/jobs/job-service.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { countingDatabase } from "./support/counting-database.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";
import { deliveriesOf } from "./support/queries.js";

/*
 * A report on a job this process has just written (created it, or applied its last report) plans
 * its write from the job as written: no read. The write's version guard still decides: a job moved
 * by anyone else since is read again, and nothing of it is lost.
 */

let testDb: TestDatabase;
let tenant: CreatedTenant;

beforeAll(async () => {
  testDb = await createTestDatabase();
  tenant = await createTenant(testDb.database, "known-jobs");
});

afterAll(async () => {
  await testDb?.drop();
});

async function newJob(service: JobService, projectCount = 1): Promise<string> {
  const job = await service.create({
    tenantId: tenant.tenantId,
    apiFlavor: "nouvel",
    prompt: "a known job",
    projectCount,
    webhookUrl: "http://127.0.0.1:9/hook",
  });
  return job.id;
}

/** The job has exactly one webhook row, the completed job's with `completedProjects`. */
async function expectOneWebhook(jobId: string, completedProjects: number): Promise<void> {
  const deliveries = await deliveriesOf(testDb.database, jobId);
  expect(deliveries).toHaveLength(1);
  expect(deliveries[0]?.payload).toMatchObject({ jobId, status: "completed", completedProjects });
}

const completed: ProjectUpdate = { status: "completed", videoUrl: "https://cdn.example.com/v.mp4" };
const processing: ProjectUpdate = { status: "processing" };

describe("reports on jobs this process has just written", () => {
  it("write without reading the job: after its create, and after its last report", async () => {
    const counts = new Map<string, number>();
    const service = testJobService(countingDatabase(testDb.database, counts));
    const jobId = await newJob(service, 2);

    expect((await service.updateProject(jobId, 0, processing)).status).toBe("processing");
    expect((await service.updateProject(jobId, 0, completed)).status).toBe("processing");
    const view = await service.updateProject(jobId, 1, completed);

    expect(view.status).toBe("completed");
    expect(counts.get("job_read_states")).toBeUndefined();
    expect(counts.get("job_write_reports")).toBe(3);
    await expectOneWebhook(jobId, 2);
  });

  it("read a job another process moved since, and keep what that process wrote", async () => {
    const counts = new Map<string, number>();
    const here = testJobService(countingDatabase(testDb.database, counts));
    const elsewhere = testJobService(testDb.database);
    const jobId = await newJob(here, 2);

    await elsewhere.updateProject(jobId, 0, completed);
    const view = await here.updateProject(jobId, 1, completed);

    expect(view.status).toBe("completed");
    expect(view.projects?.map((project) => project.status) ?? view).toEqual(["completed", "completed"]);
    // The guess went stale: its write changed nothing, and the report read the job and wrote again.
    expect(counts.get("job_write_reports")).toBe(2);
    expect(counts.get("job_read_states")).toBe(1);
    await expectOneWebhook(jobId, 2);
  });

  it("decide on a read what the guess would not write: a repeated or conflicting terminal report", async () => {
    const counts = new Map<string, number>();
    const service = testJobService(countingDatabase(testDb.database, counts));
    const jobId = await newJob(service, 2);
    await service.updateProject(jobId, 0, completed);
    // That report was written from the job as created.
    expect(counts.get("job_read_states")).toBeUndefined();

    await expect(service.updateProject(jobId, 0, { status: "failed" })).rejects.toMatchObject({
      status: 409,
      code: "PROJECT_ALREADY_TERMINAL",
    });
    expect(counts.get("job_read_states")).toBe(1);
    expect((await service.updateProject(jobId, 0, completed)).status).toBe("processing");
    expect(counts.get("job_read_states")).toBe(2);
    expect(counts.get("job_write_reports")).toBe(1);
  });

  it("stamps a guessed write no earlier than the job's last write", async () => {
    const counts = new Map<string, number>();
    const service = testJobService(countingDatabase(testDb.database, counts));
    const jobId = await newJob(service);
    const view = await service.updateProject(jobId, 0, completed);
    // Stamped from the database's clock as the create saw it, not from a read's now().
    expect(counts.get("job_read_states")).toBeUndefined();
    const [row] = await testDb.database.query<{ created_at: Date; updated_at: Date; completed_at: Date }>(
      "select created_at, updated_at, completed_at from webhook_outbox.jobs where id = $1",
      [jobId],
    );
    expect(row?.updated_at.getTime()).toBeGreaterThanOrEqual(row?.created_at.getTime() ?? Infinity);
    expect(row?.completed_at.getTime()).toBe(row?.updated_at.getTime());
    expect(view.status).toBe("completed");
  });
});
