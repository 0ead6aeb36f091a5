import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpSender, RESPONSE_EXCERPT_BYTES, truncateUtf8 } from "../src/delivery/http-sender.js";
import { UrlPolicy } from "../src/delivery/url-policy.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";
import { Receiver, status, type ReceivedRequest } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;
const receivers: Receiver[] = [];

async function receiver(...responders: Parameters<typeof Receiver.start>): Promise<Receiver> {
  const started = await Receiver.start(...responders);
  receivers.push(started);
  return started;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  // Local receivers are http on 127.0.0.1, so this file runs with insecure URLs allowed: it tests
  // what the sender does with a hostile answer, not the address policy.
  harness = await startHarness(testDb);
});

afterAll(async () => {
  await harness?.stop();
  for (const started of receivers) await started.close();
  await testDb?.drop();
});

describe("redirects", () => {
  it.each([301, 302, 307, 308])("records a %i towards a private address as `redirect` and never follows it", async (code) => {
    const internal = await receiver();
    const redirecting = await receiver(status(code, { location: internal.url }));
    const created = await harness.api.post("/api/v1/generate", { prompt: "redirect", webhookUrl: redirecting.url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");

    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ outcome: "failed", error_kind: "redirect", response_status: code });
    expect(redirecting.requests).toHaveLength(1);
    expect(internal.requests).toHaveLength(0);
  });
});

/** Streams 16 KiB chunks until the client goes away: a receiver that would never finish its answer. */
function endless(_request: ReceivedRequest, response: ServerResponse): void {
  response.writeHead(200, { "content-type": "text/plain" });
  const chunk = Buffer.alloc(16 * 1024, "x");
  const pump = () => {
    while (!response.destroyed && response.write(chunk));
    if (!response.destroyed) response.once("drain", pump);
  };
  response.on("error", () => undefined);
  pump();
}

describe("receiver answers", () => {
  const sender = new HttpSender(new UrlPolicy({ allowInsecure: true }));
  afterAll(() => sender.close());
  const send = (url: string) =>
    sender.send({ url, body: "{}", headers: {}, timeoutMs: 15_000, connectTimeoutMs: 5_000 });

  it("stops reading an endless body at the 64 KiB cap instead of waiting for the timeout", async () => {
    const flood = await receiver(endless);
    const result = await send(flood.url);
    expect(result.error).toBeNull();
    expect(result.responseStatus).toBe(200);
    expect(Buffer.byteLength(result.responseBodyExcerpt ?? "")).toBe(RESPONSE_EXCERPT_BYTES);
  });

  it("keeps a 1 KiB excerpt of a large body, never splitting a UTF-8 character", async () => {
    const body = "é".repeat(300_000);
    const large = await receiver(status(500, { "content-type": "text/plain; charset=utf-8" }, body));
    const result = await send(large.url);
    expect(result.responseStatus).toBe(500);
    const excerpt = result.responseBodyExcerpt ?? "";
    expect(Buffer.byteLength(excerpt)).toBeLessThanOrEqual(RESPONSE_EXCERPT_BYTES);
    expect(excerpt).toBe("é".repeat(RESPONSE_EXCERPT_BYTES / 2));
    expect(excerpt).not.toContain("\uFFFD");
  });

  it("stores at most 1 KiB of the answer in the attempt row", async () => {
    const noisy = await receiver(status(200, {}, `${"€".repeat(2_000)}\u0000tail`));
    const created = await harness.api.post("/api/v1/generate", { prompt: "noisy", webhookUrl: noisy.url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "succeeded"));
    const [attempt] = await attemptsOf(testDb.database, delivery.id);
    const stored = attempt?.response_body_excerpt ?? "";
    expect(Buffer.byteLength(stored)).toBeLessThanOrEqual(RESPONSE_EXCERPT_BYTES);
    expect(stored).toBe("€".repeat(Math.floor(RESPONSE_EXCERPT_BYTES / 3)));
  });

  it("ends an answer that trickles in forever at the attempt timeout", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const trickle = await receiver((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain" });
      response.on("error", () => undefined);
      const timer = setInterval(() => (response.destroyed ? clearInterval(timer) : response.write(".")), 20);
      timers.add(timer);
    });
    try {
      const result = await sender.send({ url: trickle.url, body: "{}", headers: {}, timeoutMs: 300, connectTimeoutMs: 5_000 });
      expect(result.error?.kind).toBe("timeout");
      expect(result.responseStatus).toBeNull();
    } finally {
      for (const timer of timers) clearInterval(timer);
    }
  });

  it("truncates on a character boundary and drops NUL bytes", () => {
    expect(truncateUtf8(Buffer.from("ab\u0000c"), 10)).toBe("abc");
    expect(truncateUtf8(Buffer.from("a€"), 3)).toBe("a");
  });
});
