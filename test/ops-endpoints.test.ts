import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { openDatabase, type Database } from "../src/db/client.js";
import { runMigrations } from "../src/db/migrate.js";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { testConfig } from "./support/harness.js";

// A database of our own that starts empty: the readiness check must see the migrations arrive.
type ErrorJson = { error: { code: string; message: string } };

const adminUrl = inject("adminDatabaseUrl");
const name = `wo_test_${randomBytes(6).toString("hex")}`;
const journal = JSON.parse(readFileSync(new URL("../migrations/meta/_journal.json", import.meta.url), "utf8"));
const NEWEST_MIGRATION: string = journal.entries.at(-1).tag;
let url: string;
let database: Database;
let service: RunningService;
const logLines: Array<Record<string, unknown>> = [];

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

beforeAll(async () => {
  await admin(`create database ${name}`);
  const parsed = new URL(adminUrl);
  parsed.pathname = `/${name}`;
  url = parsed.toString();
  database = await openDatabase({ databaseUrl: url, poolSize: 2 });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const config = testConfig(url, { LOG_LEVEL: "debug" });
  service = await startService({ config, logger: createLogger("debug", sink), api: true, worker: false, migrate: false });
});

afterAll(async () => {
  await service?.stop();
  await database?.close();
  await admin(`drop database if exists ${name} with (force)`);
});

describe("/healthz and /readyz", () => {
  it("is live but not ready before migrations, and ready after them", async () => {
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const before = await fetch(`${service.url}/readyz`);
    expect(before.status).toBe(503);
    expect(((await before.json()) as ErrorJson).error).toMatchObject({ code: "MIGRATIONS_PENDING" });

    await runMigrations(database);
    const after = await fetch(`${service.url}/readyz`);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ status: "ready", migration: NEWEST_MIGRATION });
  });

  it("is not ready when the applied migrations are older than the newest this build ships", async () => {
    await database.query("update webhook_outbox.__drizzle_migrations set created_at = created_at - 1");
    const stale = await fetch(`${service.url}/readyz`);
    expect(stale.status).toBe(503);
    expect(((await stale.json()) as ErrorJson).error.code).toBe("MIGRATIONS_PENDING");
    await database.query("update webhook_outbox.__drizzle_migrations set created_at = created_at + 1");
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
  });

  it("is not ready when the database does not answer", async () => {
    const down = await startService({
      config: testConfig(url.replace(/:\d+\//, ":1/")),
      logger: createLogger("silent"),
      api: true,
      worker: false,
      migrate: false,
    });
    try {
      expect((await fetch(`${down.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${down.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as ErrorJson).error.code).toBe("DATABASE_UNAVAILABLE");
    } finally {
      await down.stop();
    }
  });
});

describe("request ids", () => {
  it("echoes a caller's X-Request-Id and logs the request under it", async () => {
    const response = await fetch(`${service.url}/api/v1/jobs`, { headers: { "x-request-id": "trace-abc-123" } });
    expect(response.status).toBe(401);
    expect(response.headers.get("x-request-id")).toBe("trace-abc-123");
    expect(logLines).toContainEqual(
      expect.objectContaining({ msg: "request", requestId: "trace-abc-123", method: "GET", path: "/api/v1/jobs", status: 401 }),
    );
  });

  it("makes up an id when none (or a malformed one) is sent, a different one per request", async () => {
    const first = await fetch(`${service.url}/healthz`, { headers: { "x-request-id": "bad id\twith spaces" } });
    const second = await fetch(`${service.url}/healthz`);
    const ids = [first.headers.get("x-request-id"), second.headers.get("x-request-id")];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(logLines.filter((line) => line.msg === "request" && ids.includes(line.requestId as string))).toHaveLength(2);
  });
});
