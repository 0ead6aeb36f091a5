import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

// The jobs surface's payload fields, as SPEC.md lists them after the Nouvel document.
const JOB_FIELDS = ["event", "jobId", "status", "totalProjects", "completedProjects", "failedProjects", "projects", "createdAt", "completedAt"];
const PROJECT_FIELDS = ["projectId", "index", "status", "videoUrl", "error"];

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // The Nouvel document's header names and its three-attempt schedule, shortened for the test.
  harness = await startHarness(testDb, { WEBHOOK_HEADER_PREFIX: "X-Nouvel-", WEBHOOK_RETRY_DELAYS: [0, 50, 50] });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

describe("the jobs surface's wire contract (the Nouvel document)", () => {
  it("sends a partial job's payload field by field, 3 attempts with X-Nouvel- headers, then fails", async () => {
    const receiver = await Receiver.start(status(500));
    try {
      const created = await harness.api.post("/api/v1/generate", { prompt: "two takes", projectCount: 2, webhookUrl: receiver.url });
      const jobId: string = created.body.jobId;
      await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, { status: "completed", videoUrl: "https://cdn.example.com/0.mp4" });
      await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/1`, {
        status: "failed",
        error: { code: "UNSAFE_CONTENT", message: "blocked" },
      });

      const requests = await receiver.waitForRequests(3);
      const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
      expect(requests.map((r) => r.headers["x-nouvel-attempt"])).toEqual(["1", "2", "3"]);
      const key = Buffer.from(harness.tenant.signingSecret.slice("whsec_".length), "base64");
      for (const request of requests) {
        expect(request.headers["x-nouvel-signature"]).toBe(`sha256=${createHmac("sha256", key).update(request.body).digest("hex")}`);
        expect(request.headers["x-webhook-signature"]).toBeUndefined();
        expect(request.headers["webhook-id"]).toBe(delivery.id);
      }

      const payload = JSON.parse(requests[0]?.body ?? "{}");
      expect(Object.keys(payload).sort()).toEqual([...JOB_FIELDS].sort());
      for (const project of payload.projects) expect(Object.keys(project).sort()).toEqual([...PROJECT_FIELDS].sort());
      expect(payload).toMatchObject({ event: "job.completed", jobId, status: "partial", totalProjects: 2, completedProjects: 1, failedProjects: 1 });
      expect(payload.projects).toEqual([
        { projectId: created.body.projects[0].projectId, index: 0, status: "completed", videoUrl: "https://cdn.example.com/0.mp4", error: null },
        { projectId: created.body.projects[1].projectId, index: 1, status: "failed", videoUrl: null, error: { code: "UNSAFE_CONTENT", message: "blocked" } },
      ]);
      expect(new Date(payload.createdAt).toISOString()).toBe(payload.createdAt);
      expect(new Date(payload.completedAt).toISOString()).toBe(payload.completedAt);

      expect((await attemptsOf(testDb.database, delivery.id)).map((a) => a.outcome)).toEqual(["retry", "retry", "failed"]);
      expect(receiver.requests).toHaveLength(3);
    } finally {
      await receiver.close();
    }
  });
});
