import { Agent } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { postOnce, postTargetOf } from "../src/delivery/post-once.js";
import { hang, ok, Receiver } from "./support/receiver.js";

/*
 * One connection only, held by a request the receiver never answers: a second request waits in
 * undici's queue and never reaches a socket, so postOnce has no controller to abort it with yet.
 */
let receiver: Receiver;
let agent: Agent;

beforeAll(async () => {
  receiver = await Receiver.start(hang, ok);
});

afterEach(async () => {
  await agent?.destroy();
});

afterAll(async () => {
  await receiver?.close();
});

const post = (timeoutMs: number, signal?: AbortSignal) =>
  postOnce(agent, { target: postTargetOf(new URL(receiver.url)), headers: {}, body: "{}", timeoutMs, readCapBytes: 1024, signal });

/**
 * The held request has timed out and freed the one connection. Requests go out on it in order,
 * so once a later request is answered, the queued one would have arrived before it if it was sent.
 */
async function expectOnlyTheHolderWasSent(before: number): Promise<void> {
  expect(await post(5_000)).toMatchObject({ kind: "answered", status: 200 });
  expect(receiver.requests.length - before).toBe(2);
}

describe("postOnce before its request reaches a socket", () => {
  it("times out on time and never sends the request afterwards", async () => {
    agent = new Agent({ connections: 1, pipelining: 1 });
    const before = receiver.requests.length;
    const holder = post(300);
    const queued = await post(50);
    expect(queued).toEqual({ kind: "timed-out" });
    await holder;
    await expectOnlyTheHolderWasSent(before);
  });

  it("ends at once when the caller aborts, and never sends the request afterwards", async () => {
    agent = new Agent({ connections: 1, pipelining: 1 });
    receiver.respondWith(hang, ok);
    const before = receiver.requests.length;
    const holder = post(300);
    const shutdown = new AbortController();
    const queued = post(60_000, shutdown.signal);
    shutdown.abort();
    expect(await queued).toEqual({ kind: "aborted" });
    await holder;
    await expectOnlyTheHolderWasSent(before);
  });
});
