import { connect, createServer, Socket, type AddressInfo, type Server } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  HttpSender,
  MAX_RESPONSE_HEADER_BYTES,
  MAX_RESPONSE_HEADER_COUNT,
  PARSER_READ_BYTES,
} from "../src/delivery/http-sender.js";
import { classifyAttempt } from "../src/delivery/outcome.js";
import { UrlPolicy } from "../src/delivery/url-policy.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, finishedDelivery } from "./support/queries.js";

/**
 * A receiver on a bare TCP socket: every connection gets `answer` byte for byte the moment its
 * request starts arriving, then the socket is ended. An HTTP server library would tidy a hostile
 * answer; this one sends what a hostile peer sends.
 */
class RawReceiver {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(answer: Buffer): Promise<RawReceiver> {
    const server = createServer();
    const receiver = new RawReceiver(server);
    server.on("connection", (socket) => {
      receiver.sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => receiver.sockets.delete(socket));
      socket.once("data", () => socket.end(answer));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function answerWith(headerLines: string[]): Buffer {
  return Buffer.from(`HTTP/1.1 200 OK\r\n${headerLines.join("")}content-length: 2\r\nconnection: close\r\n\r\nok`);
}

const numbered = (count: number) => Array.from({ length: count }, (_, index) => `x-header-${index}: v\r\n`);
/** The smallest header there is: a one-letter name, an empty value (one byte of undici's header count). */
const tiny = (count: number) => Array.from({ length: count }, () => "a:\r\n");

describe("the sender, answered by a hostile receiver", () => {
  const sender = new HttpSender(new UrlPolicy({ allowInsecure: true }));
  const receivers: RawReceiver[] = [];
  const send = (url: string) => sender.send({ url, body: "{}", headers: {}, timeoutMs: 30_000, connectTimeoutMs: 5_000 });

  async function receiver(answer: Buffer): Promise<RawReceiver> {
    const started = await RawReceiver.start(answer);
    receivers.push(started);
    return started;
  }

  afterAll(async () => {
    await sender.close();
    for (const started of receivers) await started.close();
  });

  it("fails an answer of 10,000 headers at once with a clear error, retried like a bad answer", async () => {
    for (const lines of [numbered(10_000), tiny(10_000)]) {
      const hostile = await receiver(answerWith(lines));
      const result = await send(hostile.url);
      // The header cap, not the 30 s attempt timeout, ended it.
      expect(result.error).toEqual({ kind: "other", message: `response headers larger than ${MAX_RESPONSE_HEADER_BYTES} bytes` });
      expect(result.responseStatus).toBeNull();
      expect(classifyAttempt(result).disposition).toBe("retryable");
    }
  });

  it("fails an answer of more header fields than the count cap, however small they are", async () => {
    const many = await receiver(answerWith(numbered(MAX_RESPONSE_HEADER_COUNT + 1)));
    const result = await send(many.url);
    expect(result.error).toEqual({ kind: "other", message: `more than ${MAX_RESPONSE_HEADER_COUNT} response header fields` });
    expect(classifyAttempt(result).disposition).toBe("retryable");

    // A generous but ordinary answer is still an answer.
    const ordinary = await receiver(answerWith(numbered(MAX_RESPONSE_HEADER_COUNT - 10)));
    const answered = await send(ordinary.url);
    expect(answered).toMatchObject({ responseStatus: 200, responseBodyExcerpt: "ok", error: null });
  });

  it("stops parsing within a short read of the header cap, for 64 hostile answers at once", async () => {
    // 100,000 one-byte headers: 400 KB on the wire, far past the cap in undici's count.
    const hostile = await receiver(answerWith(tiny(100_000)));
    const readByClient = new Map<Socket, number>();
    const read = Socket.prototype.read;
    Socket.prototype.read = function (this: Socket, size?: number) {
      const chunk = read.call(this, size) as Buffer | string | null;
      // The sender's sockets are the ones whose far end is the receiver.
      if (chunk !== null && this.remotePort === hostile.port) readByClient.set(this, (readByClient.get(this) ?? 0) + chunk.length);
      return chunk;
    };
    let results;
    try {
      results = await Promise.all(Array.from({ length: 64 }, () => send(hostile.url)));
    } finally {
      Socket.prototype.read = read;
    }
    for (const result of results) expect(result.error?.message).toBe(`response headers larger than ${MAX_RESPONSE_HEADER_BYTES} bytes`);
    expect(readByClient.size).toBe(64);
    // Every header costs 4 bytes on the wire and 1 of the cap; past it, at most one short read more.
    const bound = "HTTP/1.1 200 OK\r\n".length + 4 * MAX_RESPONSE_HEADER_BYTES + PARSER_READ_BYTES;
    for (const bytes of readByClient.values()) expect(bytes).toBeLessThanOrEqual(bound);
  });
});

describe("a delivery to a receiver that answers 10,000 headers", () => {
  let testDb: TestDatabase;
  let harness: Harness;
  let hostile: RawReceiver;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0, 10] });
    hostile = await RawReceiver.start(answerWith(numbered(10_000)));
  });

  afterAll(async () => {
    await harness?.stop();
    await hostile?.close();
    await testDb?.drop();
  });

  it("records each attempt as failed with the clear error and retries it on schedule", async () => {
    const created = await harness.api.post("/api/v1/generate", { prompt: "hostile headers", webhookUrl: hostile.url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts.map((attempt) => attempt.outcome)).toEqual(["retry", "failed"]);
    for (const attempt of attempts) {
      expect(attempt).toMatchObject({
        error_kind: "other",
        error_message: `response headers larger than ${MAX_RESPONSE_HEADER_BYTES} bytes`,
        response_status: null,
      });
    }
    // The API answered throughout.
    expect((await fetch(`${harness.service.url}/healthz`)).status).toBe(200);
  });
});

describe("the HTTP server, given a slow client", () => {
  let testDb: TestDatabase;
  let harness: Harness;
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const timeouts = { HTTP_HEADERS_TIMEOUT_MS: 300, HTTP_REQUEST_TIMEOUT_MS: 500, HTTP_KEEP_ALIVE_TIMEOUT_MS: 300 };
  /** Far longer than any of the timeouts above, far shorter than Node's defaults (60 s, 300 s). */
  const GENEROUS_MS = 10_000;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    harness = await startHarness(testDb, timeouts, { worker: false });
  });

  afterEach(() => {
    for (const timer of timers.splice(0)) clearInterval(timer);
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  afterAll(async () => {
    await harness?.stop();
    await testDb?.drop();
  });

  /** Opens a raw connection; resolves with what the server sent once it closes the connection. */
  async function open(boundMs = GENEROUS_MS): Promise<{ socket: Socket; closed: Promise<{ received: string; afterMs: number }> }> {
    const port = Number(new URL(harness.service.url ?? "").port);
    const socket = connect(port, "127.0.0.1");
    sockets.push(socket);
    socket.on("error", () => undefined);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const started = performance.now();
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const closed = new Promise<{ received: string; afterMs: number }>((resolve, reject) => {
      const bound = setTimeout(() => reject(new Error(`still open after ${boundMs} ms`)), boundMs);
      socket.once("close", () => {
        clearTimeout(bound);
        resolve({ received, afterMs: performance.now() - started });
      });
    });
    return { socket, closed };
  }

  /** Writes `text` one byte every 100 ms until it is sent or the connection closes. */
  function trickle(socket: Socket, text: string): void {
    let next = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || next >= text.length) return clearInterval(timer);
      socket.write(text[next++] ?? "");
    }, 100);
    timers.push(timer);
  }

  it("drops a request body sent a byte per 100 ms after HTTP_REQUEST_TIMEOUT_MS, with 408", async () => {
    const { socket, closed } = await open();
    const body = JSON.stringify({ prompt: "x".repeat(1_000) });
    socket.write(
      "POST /api/v1/generate HTTP/1.1\r\nHost: localhost\r\n" +
        `Authorization: Bearer ${harness.tenant.apiKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    trickle(socket, body); // 100 s to send in full
    const { received } = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    const jobs = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs");
    expect(jobs[0]?.n).toBe(0);
  });

  it("drops a header block sent a byte per 100 ms after HTTP_HEADERS_TIMEOUT_MS, with 408", async () => {
    const { socket, closed } = await open();
    socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    trickle(socket, `X-Slow: ${"a".repeat(1_000)}\r\n\r\n`);
    expect((await closed).received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("closes an idle kept-alive connection after HTTP_KEEP_ALIVE_TIMEOUT_MS", async () => {
    // Node's own keep-alive timeout is 5 s: closed well before it, the configured one applied.
    const { socket, closed } = await open(4_000);
    socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
    const { received } = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
  });
});
