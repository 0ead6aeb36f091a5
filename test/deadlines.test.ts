import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../src/db/client.js";
import type { JobService } from "../src/jobs/job-service.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { testJobService } from "./support/job-service.js";
import { deliveriesOf } from "./support/queries.js";

let testDb: TestDatabase;
const extraHandles: Database[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  for (const handle of extraHandles) await handle.close();
  await testDb?.drop();
});

async function serviceOn(database: Database, jobTimeoutMs: number): Promise<JobService> {
  return testJobService(database, { jobTimeoutMs });
}

describe("the deadline sweeper", () => {
  it("fails overdue jobs with TIMEOUT and enqueues each webhook once, even with two sweepers at once", async () => {
    const tenant = await createTenant(testDb.database, "sweep");
    const creator = await serviceOn(testDb.database, 0);
    const jobIds: string[] = [];
    for (let i = 0; i < 30; i++) {
      const job = await creator.create({
        tenantId: tenant.tenantId,
        apiFlavor: i % 2 === 0 ? "nouvel" : "veo3",
        prompt: `slow ${i}`,
        projectCount: i % 2 === 0 ? 2 : 1,
        webhookUrl: "http://127.0.0.1:9/hook",
      });
      jobIds.push(job.id);
    }
    // One project of the first job finished in time: that job ends partial.
    await creator.updateProject(jobIds[0] ?? "", 0, { status: "completed", videoUrl: "https://cdn.example.com/a.mp4" });
    const notYetDue = await (await serviceOn(testDb.database, 3_600_000)).create({
      tenantId: tenant.tenantId,
      apiFlavor: "nouvel",
      prompt: "has time",
      projectCount: 1,
    });

    // Two sweepers on two separate connection pools, racing over the same overdue jobs.
    const otherHandle = await openDatabase({ databaseUrl: testDb.url, poolSize: 2 });
    extraHandles.push(otherHandle);
    const [a, b] = await Promise.all([
      (await serviceOn(testDb.database, 0)).failOverdue(10),
      (await serviceOn(otherHandle, 0)).failOverdue(10),
    ]);
    let total = a + b;
    const sweeper = await serviceOn(testDb.database, 0);
    for (let swept = 1; swept > 0; total += swept) swept = await sweeper.failOverdue(10);
    expect(total).toBe(30);

    for (const [i, jobId] of jobIds.entries()) {
      const deliveries = await deliveriesOf(testDb.database, jobId);
      expect(deliveries).toHaveLength(1);
      const payload = deliveries[0]?.payload ?? {};
      if (i === 0) expect(payload).toMatchObject({ status: "partial", completedProjects: 1, failedProjects: 1 });
      else if (i % 2 === 0) expect(payload).toMatchObject({ status: "failed", failedProjects: 2 });
      else expect(payload).toMatchObject({ status: "failed", error: { message: "TIMEOUT", details: {} } });
    }
    const projects = await testDb.database.query<{ error_code: string | null; status: string }>(
      "select p.status, p.error_code from webhook_outbox.job_projects p where p.job_id = any($1::uuid[]) and p.status <> 'completed'",
      [jobIds],
    );
    expect(projects.every((p) => p.status === "failed" && p.error_code === "TIMEOUT")).toBe(true);

    const untouched = await creator.get(tenant.tenantId, notYetDue.id);
    expect(untouched.status).toBe("queued");
  });
});
