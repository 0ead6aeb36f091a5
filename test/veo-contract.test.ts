import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver, type ReceivedRequest } from "./support/receiver.js";

/** The three examples of the seed document's "Payload Structure" tabs, verbatim. */
const SEED = JSON.parse(readFileSync(new URL("./fixtures/veo3-seed-payloads.json", import.meta.url), "utf8")) as Record<
  "completed" | "failed" | "timeout",
  Record<string, unknown>
>;
const SEED_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;

/** What the Express example destructures from req.body (all of it untrusted). */
interface VeoBody {
  status?: string;
  generation_id?: string;
  video_url?: string;
  error?: { message?: string } | null;
}

/**
 * The seed's Express.js example, line for line, on node:http: express.json() parses the body,
 * the handler reads status, generation_id, video_url and error.message, answers 200
 * {"status":"received"}, or 500 {"error":"Internal error"} when its own code throws.
 */
class ExpressStyleHandler {
  readonly videos: Array<{ generationId: string; videoUrl: string }> = [];
  readonly failures: Array<{ generationId: string; errorCode: string }> = [];
  /** processVideo throws this many times before it works, like a receiver with a transient bug. */
  constructor(private throwsLeft = 0) {}

  readonly responder = (request: ReceivedRequest, res: ServerResponse): void => {
    const isJson = String(request.headers["content-type"]).startsWith("application/json");
    const body: VeoBody = isJson ? (JSON.parse(request.body) as VeoBody) : {};
    try {
      const { status, generation_id, video_url, error } = body;
      if (status === "completed") {
        this.processVideo(String(generation_id), String(video_url));
      } else {
        const errorCode = error?.message || "Unknown error";
        this.failures.push({ generationId: String(generation_id), errorCode });
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "received" }));
    } catch {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: "Internal error" }));
    }
  };

  private processVideo(generationId: string, videoUrl: string): void {
    if (this.throwsLeft > 0) {
      this.throwsLeft--;
      throw new Error("video processing failed");
    }
    this.videos.push({ generationId, videoUrl });
  }
}

/** Same keys as the seed example, each value of the same JSON type and format. */
function expectSeedShape(actual: Record<string, unknown>, example: Record<string, unknown>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(example).sort());
  for (const [key, value] of Object.entries(example)) {
    const got = actual[key];
    expect(got === null ? "null" : typeof got, key).toBe(value === null ? "null" : typeof value);
    if (key.endsWith("_at")) expect(got, key).toMatch(SEED_TIMESTAMP);
  }
  expect(actual.status).toBe(example.status);
  if (example.error !== null) {
    expect(Object.keys(actual.error as object).sort()).toEqual(["details", "message"]);
    expect((actual.error as { details: unknown }).details).toEqual({});
  }
}

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { VEO_WEBHOOK_RETRY_DELAYS: [0, 50, 50, 50, 50] });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function generate(body: Record<string, unknown>) {
  const response = await harness.api.post("/v1/veo/generate", body);
  expect(response.status).toBe(202);
  expect(response.body).toEqual({ generation_id: expect.any(String), status: "pending" });
  return response.body.generation_id as string;
}

describe("the Veo3 surface, end to end through a receiver written like the seed's Express example", () => {
  it("delivers a completed generation; the receiver's own exception is retried; status matches the webhook", async () => {
    const handler = new ExpressStyleHandler(1);
    const receiver = await Receiver.start(handler.responder);
    try {
      const id = await generate({ prompt: SEED.completed.prompt, callback_url: receiver.url, seed: 319790131 });

      const pending = await harness.api.get(`/v1/veo/generations/${id}`);
      expect(pending.status).toBe(200);
      expect(pending.body).toMatchObject({ generation_id: id, status: "pending", video_url: null, completed_at: null, error: null });
      await harness.api.internalPatch(`/internal/v1/jobs/${id}/projects/0`, { status: "processing" });
      expect((await harness.api.get(`/v1/veo/generations/${id}`)).body.status).toBe("processing");

      const videoUrl = "https://cdn.example.com/videos/cat.mp4";
      await harness.api.internalPatch(`/internal/v1/jobs/${id}/projects/0`, { status: "completed", videoUrl });
      const [first, second] = await receiver.waitForRequests(2);
      if (!first || !second) throw new Error("expected two requests");

      const payload = JSON.parse(second.body) as Record<string, unknown>;
      expectSeedShape(payload, SEED.completed);
      expect(payload).toMatchObject({
        generation_id: id,
        status: "completed",
        prompt: SEED.completed.prompt,
        video_url: videoUrl,
        seed: 319790131,
        error: null,
      });
      expect(first.body).toBe(second.body);
      expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
      expect([first.headers["x-webhook-attempt"], second.headers["x-webhook-attempt"]]).toEqual(["1", "2"]);
      expect(handler.videos).toEqual([{ generationId: id, videoUrl }]);

      const delivery = await eventually(() => finishedDelivery(testDb.database, id, "succeeded"));
      expect(delivery.id).toBe(first.headers["webhook-id"]);
      const attempts = await attemptsOf(testDb.database, delivery.id);
      expect(attempts.map((a) => [a.attempt_number, a.outcome, a.response_status])).toEqual([
        [1, "retry", 500],
        [2, "succeeded", 200],
      ]);
      expect(attempts[0]?.response_body_excerpt).toBe('{"error":"Internal error"}');
      expect(attempts[1]?.response_body_excerpt).toBe('{"status":"received"}');

      // Polling the status endpoint gives the very body the webhook carried.
      expect((await harness.api.get(`/v1/veo/generations/${id}`)).body).toEqual(payload);
    } finally {
      await receiver.close();
    }
  });

  it.each([
    ["failed", "UNSAFE_CONTENT"],
    ["timeout", "TIMEOUT"],
  ] as const)("delivers a %s generation with error.message %s", async (example, code) => {
    const handler = new ExpressStyleHandler();
    const receiver = await Receiver.start(handler.responder);
    try {
      const id = await generate({ prompt: "a storm at sea", callback_url: receiver.url, seed: 7 });
      await harness.api.internalPatch(`/internal/v1/jobs/${id}/projects/0`, {
        status: "failed",
        error: { code, message: "the backend's words" },
      });
      const [request] = await receiver.waitForRequests(1);
      const payload = JSON.parse(request?.body ?? "{}") as Record<string, unknown>;
      expectSeedShape(payload, SEED[example]);
      expect(payload).toMatchObject({ generation_id: id, status: "failed", video_url: null, seed: 7 });
      expect(payload.error).toEqual({ message: code, details: {} });
      expect(handler.failures).toEqual([{ generationId: id, errorCode: code }]);
      await eventually(() => finishedDelivery(testDb.database, id, "succeeded"));
    } finally {
      await receiver.close();
    }
  });

  it("picks a seed when none is given, as the provider does", async () => {
    const id = await generate({ prompt: "no seed given" });
    const status = await harness.api.get(`/v1/veo/generations/${id}`);
    expect(Number.isInteger(status.body.seed)).toBe(true);
  });

  it("refuses bad input with a JSON error and writes nothing", async () => {
    const before = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs");
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, "VALIDATION_FAILED"],
      [{ prompt: "x", callback_url: "not a url" }, 400, "WEBHOOK_URL_REJECTED"],
      [{ prompt: "x", seed: -1 }, 400, "VALIDATION_FAILED"],
      [{ prompt: "x", webhookUrl: "https://example.com" }, 400, "VALIDATION_FAILED"],
    ];
    for (const [body, status, code] of cases) {
      const response = await harness.api.post("/v1/veo/generate", body);
      expect([response.status, response.body.error?.code]).toEqual([status, code]);
    }
    const after = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs");
    expect(after).toEqual(before);
  });

  it("keeps generations to their tenant and to the Veo3 surface", async () => {
    const id = await generate({ prompt: "mine" });
    const other = await startHarness(testDb, {}, { worker: false });
    try {
      const foreign = await other.api.get(`/v1/veo/generations/${id}`);
      expect([foreign.status, foreign.body.error.code]).toEqual([404, "GENERATION_NOT_FOUND"]);
    } finally {
      await other.stop();
    }
    const nouvel = await harness.api.post("/api/v1/generate", { prompt: "a jobs-surface job" });
    const wrongSurface = await harness.api.get(`/v1/veo/generations/${nouvel.body.jobId}`);
    expect([wrongSurface.status, wrongSurface.body.error.code]).toEqual([404, "GENERATION_NOT_FOUND"]);
    expect((await harness.api.get("/v1/veo/generations/not-a-uuid")).status).toBe(404);
    expect((await harness.api.withKey("wrong").get(`/v1/veo/generations/${id}`)).status).toBe(401);
  });
});
