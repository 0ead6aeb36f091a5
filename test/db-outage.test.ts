import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";
import { TcpProxy } from "../bench/lib/tcp-proxy.js";

let testDb: TestDatabase;
let proxy: TcpProxy;
let harness: Harness;
let receiver: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  proxy = await TcpProxy.start(testDb.url);
  // The service reaches Postgres only through the proxy; the test's own assertions go direct.
  harness = await startHarness({ ...testDb, url: proxy.rewrite(testDb.url) }, { WORKER_POLL_INTERVAL_MS: 100 });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await proxy?.close();
  await receiver?.close();
  await testDb?.drop();
});

async function readyStatus(): Promise<number> {
  return (await fetch(`${harness.service.url}/readyz`)).status;
}

describe("a cut database connection", () => {
  it("answers 503 while cut, recovers on its own, and loses or doubles nothing in flight", async () => {
    let answer: (() => void) | undefined;
    receiver.respondWith((_request, response) => {
      answer = () => response.writeHead(200).end("ok");
    });
    const created = await harness.api.post("/api/v1/generate", { prompt: "outage", webhookUrl: receiver.url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    await receiver.waitForRequests(1);

    // Cut the link while the attempt is in flight: its result cannot be recorded yet.
    proxy.cut();
    expect(await readyStatus()).toBe(503);
    const duringOutage = await harness.api.get(`/api/v1/jobs/${created.body.jobId}`);
    expect(duringOutage.status).toBe(503);
    expect(duringOutage.body.error.code).toBe("DATABASE_UNAVAILABLE");
    answer?.();
    // Give the worker time to try (and fail) to record; the outcome is held in memory meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 300));

    proxy.restore();
    await eventually(async () => ((await readyStatus()) === 200 ? true : undefined));
    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "succeeded"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((a) => a.outcome)).toEqual(["succeeded"]);
    expect(receiver.requests).toHaveLength(1);

    // The LISTEN connection came back too: a new enqueue is delivered.
    receiver.respondWith((_request, response) => response.writeHead(200).end("ok"));
    const after = await harness.api.post("/api/v1/generate", { prompt: "after", webhookUrl: receiver.url });
    await harness.api.finishJob(after.body.jobId, 1, "completed");
    await eventually(() => finishedDelivery(testDb.database, after.body.jobId, "succeeded"));
    expect(receiver.requests).toHaveLength(2);
  });
});
