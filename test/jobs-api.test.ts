import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";
import { deliveriesOf, finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb);
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

async function createJob(projectCount = 1, webhookUrl: string | undefined = receiver.url): Promise<string> {
  const created = await harness.api.post("/api/v1/generate", { prompt: "a job", projectCount, webhookUrl });
  expect(created.status).toBe(202);
  return created.body.jobId;
}

describe("project reports and the outbox transaction", () => {
  it("accepts a repeated terminal report and sends nothing new", async () => {
    const jobId = await createJob();
    const report = { status: "completed", videoUrl: "https://cdn.example.com/v.mp4" };
    const first = await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, report);
    expect(first.status).toBe(200);
    expect(first.body.status).toBe("completed");
    await eventually(() => finishedDelivery(testDb.database, jobId, "succeeded"));
    const again = await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, report);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe("completed");
    expect(again.body.completedAt).toBe(first.body.completedAt);
    expect(await deliveriesOf(testDb.database, jobId)).toHaveLength(1);
    const sent = receiver.requests.filter((r) => JSON.parse(r.body).jobId === jobId);
    expect(sent).toHaveLength(1);
  });

  it("refuses a different status for a terminal project", async () => {
    const jobId = await createJob();
    await harness.api.finishJob(jobId, 1, "completed");
    const response = await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, {
      status: "failed",
      error: { code: "LATE" },
    });
    expect(response.status).toBe(409);
    expect(response.body.error.code).toBe("PROJECT_ALREADY_TERMINAL");
  });

  it("serialises concurrent reports on one job: none lost, one delivery", async () => {
    const projectCount = 20;
    const jobId = await createJob(projectCount);
    const reports = Array.from({ length: projectCount }, (_, index) =>
      harness.api.internalPatch(
        `/internal/v1/jobs/${jobId}/projects/${index}`,
        index % 4 === 0
          ? { status: "failed", error: { code: "UNSAFE_CONTENT", message: "no" } }
          : { status: "completed", videoUrl: `https://cdn.example.com/${index}.mp4` },
      ),
    );
    const responses = await Promise.all(reports);
    expect(responses.map((r) => r.status)).toEqual(Array(projectCount).fill(200));
    // Exactly one response saw the terminal transition; the others saw the job still processing.
    expect(responses.filter((r) => r.body.status === "partial")).toHaveLength(1);

    const job = await harness.api.get(`/api/v1/jobs/${jobId}`);
    expect(job.body.status).toBe("partial");
    expect(job.body.completedProjects).toBe(15);
    expect(job.body.failedProjects).toBe(5);
    const deliveries = await deliveriesOf(testDb.database, jobId);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.payload).toMatchObject({ status: "partial", completedProjects: 15, failedProjects: 5 });
    expect((deliveries[0]?.payload.projects as unknown[]).length).toBe(projectCount);
  });

  it("stores the terminal payload with the delivery", async () => {
    const jobId = await createJob();
    await harness.api.finishJob(jobId, 1, "failed");
    const [delivery] = await deliveriesOf(testDb.database, jobId);
    expect(delivery?.payload).toMatchObject({ status: "failed", failedProjects: 1 });
    expect((delivery?.payload.projects as Array<{ error: unknown }>)[0]?.error).toEqual({
      code: "UNSAFE_CONTENT",
      message: "blocked by the safety filter",
    });
  });

  it("needs a videoUrl for a completed project, and knows its projects", async () => {
    const jobId = await createJob(2);
    const missing = await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, { status: "completed" });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe("VALIDATION_FAILED");
    const outOfRange = await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/5`, { status: "processing" });
    expect(outOfRange.status).toBe(404);
    expect(outOfRange.body.error.code).toBe("PROJECT_NOT_FOUND");
  });

  it("guards the internal routes with the internal token", async () => {
    const jobId = await createJob();
    const withApiKey = await harness.api.request("PATCH", `/internal/v1/jobs/${jobId}/projects/0`, { status: "processing" }, harness.tenant.apiKey);
    expect(withApiKey.status).toBe(401);
    const withToken = await harness.api.request("PATCH", `/internal/v1/jobs/${jobId}/projects/0`, { status: "processing" }, INTERNAL_TOKEN);
    expect(withToken.status).toBe(200);
  });
});

describe("tenant isolation", () => {
  it("hides another tenant's jobs", async () => {
    const jobId = await createJob();
    const other = await createTenant(testDb.database, "other");
    const otherApi = harness.api.withKey(other.apiKey);
    const response = await otherApi.get(`/api/v1/jobs/${jobId}`);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("JOB_NOT_FOUND");
    const list = await otherApi.get("/api/v1/jobs");
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([]);
  });

  it("rejects missing and unknown API keys", async () => {
    const none = await harness.api.request("GET", "/api/v1/jobs", undefined, "");
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe("UNAUTHORIZED");
    const wrong = await harness.api.withKey("wo_notARealKeyAtAll000000000000000000000000000").get("/api/v1/jobs");
    expect(wrong.status).toBe(401);
  });
});

describe("bad requests", () => {
  const cases: Array<[string, unknown, string]> = [
    ["missing prompt", { projectCount: 1 }, "VALIDATION_FAILED"],
    ["empty prompt", { prompt: "  " }, "VALIDATION_FAILED"],
    ["too many projects", { prompt: "x", projectCount: 21 }, "VALIDATION_FAILED"],
    ["zero projects", { prompt: "x", projectCount: 0 }, "VALIDATION_FAILED"],
    ["fractional projects", { prompt: "x", projectCount: 1.5 }, "VALIDATION_FAILED"],
    ["unknown field", { prompt: "x", colour: "blue" }, "VALIDATION_FAILED"],
    ["http webhook", { prompt: "x", webhookUrl: "ftp://example.com/hook" }, "WEBHOOK_URL_REJECTED"],
    ["not a URL", { prompt: "x", webhookUrl: "not a url" }, "WEBHOOK_URL_REJECTED"],
    ["credentials in URL", { prompt: "x", webhookUrl: "https://user:pw@example.com/hook" }, "WEBHOOK_URL_REJECTED"],
  ];
  it.each(cases)("rejects %s with 400 and a code", async (_name, body, code) => {
    const before = await testDb.database.query<{ n: string }>("select count(*) as n from webhook_outbox.jobs");
    const response = await harness.api.post("/api/v1/generate", body);
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe(code);
    expect(response.body.error.message).toEqual(expect.any(String));
    const after = await testDb.database.query<{ n: string }>("select count(*) as n from webhook_outbox.jobs");
    expect(after[0]?.n).toBe(before[0]?.n);
  });

  it("rejects malformed JSON with INVALID_JSON", async () => {
    const response = await harness.api.post("/api/v1/generate", '{"prompt": ');
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("INVALID_JSON");
  });

  it("rejects a body that is not JSON with 415", async () => {
    const response = await harness.api.request("POST", "/api/v1/generate", "prompt=x", harness.tenant.apiKey, {
      "content-type": "text/plain",
    });
    expect(response.status).toBe(415);
    expect(response.body.error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers 404 for a malformed job id", async () => {
    const response = await harness.api.get("/api/v1/jobs/not-a-uuid");
    expect(response.status).toBe(404);
  });

  it("rejects a bad list query and a forged cursor", async () => {
    expect((await harness.api.get("/api/v1/jobs?limit=0")).status).toBe(400);
    expect((await harness.api.get("/api/v1/jobs?status=done")).status).toBe(400);
    const forged = await harness.api.get("/api/v1/jobs?cursor=bm9wZQ");
    expect(forged.status).toBe(400);
    expect(forged.body.error.code).toBe("INVALID_CURSOR");
  });
});

describe("listing jobs", () => {
  it("pages through every job once, newest first, with filters", async () => {
    const tenant = await createTenant(testDb.database, "lister");
    const api = harness.api.withKey(tenant.apiKey);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const created = await api.post("/api/v1/generate", { prompt: `job ${i}` });
      ids.push(created.body.jobId);
    }
    await api.finishJob(ids[0] ?? "", 1, "completed");

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { data: Array<{ jobId: string }>; nextCursor: string | null } } = await api.get(
        `/api/v1/jobs?limit=3${cursor ? `&cursor=${cursor}` : ""}`,
      );
      seen.push(...page.body.data.map((job) => job.jobId));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const completed = await api.get("/api/v1/jobs?status=completed");
    expect(completed.body.data.map((job: { jobId: string }) => job.jobId)).toEqual([ids[0]]);
    const future = await api.get(`/api/v1/jobs?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    expect(future.body.data).toEqual([]);
  });
});
