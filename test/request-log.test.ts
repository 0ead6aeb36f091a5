import { Hono } from "hono";
import type { DestinationStream } from "pino";
import { describe, expect, it } from "vitest";
import { assignRequestId, logRequests } from "../src/http/request-log.js";
import { createLogger } from "../src/logger.js";

class CapturedLog implements DestinationStream {
  readonly lines: Array<Record<string, unknown>> = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
}

const token = "internal-token-do-not-log-5b7e";

function app(log: CapturedLog, level = "info"): Hono {
  const logger = createLogger(level, { destination: log, secrets: [token] }).child({ component: "http" });
  const app = new Hono();
  app.use("*", assignRequestId, logRequests(logger));
  app.get("/healthz", (c) => c.text("ok"));
  app.get("/boom", (c) => c.text("no", 503));
  app.all("*", (c) => c.json({ ok: true }, 201));
  return app;
}

describe("logRequests", () => {
  it("writes one line per request: its id, method, path, status and duration, with the logger's bindings", async () => {
    const log = new CapturedLog();
    const response = await app(log).request("/api/v1/generate", { method: "POST", headers: { "X-Request-Id": "req-42" } });

    expect(response.headers.get("X-Request-Id")).toBe("req-42");
    expect(log.lines).toHaveLength(1);
    const [line] = log.lines;
    expect(line).toMatchObject({ level: 30, component: "http", requestId: "req-42", method: "POST", path: "/api/v1/generate", status: 201, msg: "request" });
    expect(line?.durationMs).toEqual(expect.any(Number));
  });

  it("logs a 5xx at error and probes at debug", async () => {
    const log = new CapturedLog();
    const quiet = app(log);
    await quiet.request("/healthz");
    await quiet.request("/boom");
    expect(log.lines.map((line) => [line.path, line.level])).toEqual([["/boom", 50]]);

    const verbose = new CapturedLog();
    await app(verbose, "debug").request("/healthz");
    expect(verbose.lines.map((line) => [line.path, line.level])).toEqual([["/healthz", 20]]);
  });

  it("scrubs credentials pasted into a path, by shape and by value", async () => {
    const log = new CapturedLog();
    const target = app(log);
    await target.request(`/internal/v1/jobs/${token}`);
    await target.request(`/internal/v1/jobs/${encodeURIComponent(`a ${token}`)}`);
    await target.request("/x/whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

    expect(log.lines.map((line) => line.path)).toEqual([
      "/internal/v1/jobs/[redacted]",
      "/internal/v1/jobs/a [redacted]",
      "/x/whsec_[redacted]",
    ]);
    expect(JSON.stringify(log.lines)).not.toContain("do-not-log");
  });
});
