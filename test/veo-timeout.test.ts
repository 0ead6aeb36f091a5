import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

const SEED_TIMEOUT = (
  JSON.parse(readFileSync(new URL("./fixtures/veo3-seed-payloads.json", import.meta.url), "utf8")) as {
    timeout: Record<string, unknown>;
  }
).timeout;

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // A deadline that passes at once; the sweeper, not the backend, ends the generation.
  harness = await startHarness(testDb, { JOB_TIMEOUT: 0, JOB_SWEEP_INTERVAL_MS: 50 });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

describe("a Veo3 generation past its deadline", () => {
  it("is failed by the sweeper and sends the seed's Timeout payload", async () => {
    const created = await harness.api.post("/v1/veo/generate", { prompt: "too slow", callback_url: receiver.url, seed: 11 });
    const id: string = created.body.generation_id;
    const [request] = await receiver.waitForRequests(1);
    const payload = JSON.parse(request?.body ?? "{}") as Record<string, unknown>;
    expect(Object.keys(payload).sort()).toEqual(Object.keys(SEED_TIMEOUT).sort());
    expect(payload).toMatchObject({
      generation_id: id,
      status: "failed",
      prompt: "too slow",
      video_url: null,
      seed: 11,
      error: SEED_TIMEOUT.error,
    });
    expect(payload.completed_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
    await eventually(() => finishedDelivery(testDb.database, id, "succeeded"));
    expect((await harness.api.get(`/v1/veo/generations/${id}`)).body).toEqual(payload);
  });
});
