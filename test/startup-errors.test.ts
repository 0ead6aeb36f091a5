import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, ConfigError } from "../src/config.js";
import { describeConnectionFailure } from "../src/db/connection-error.js";
import { runCli } from "./support/cli.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { startHarness } from "./support/harness.js";
import { freePort } from "./support/ports.js";
import { Receiver } from "./support/receiver.js";

// Real CLI processes, each given one broken thing: what a person sees must be one line that names it.

let testDb: TestDatabase;

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  await testDb?.drop();
});

/** The run's server with another database name (or port) in the same URL. */
function urlWith(change: (url: URL) => void): string {
  const url = new URL(testDb.url);
  change(url);
  return url.toString();
}

const COMMANDS: string[][] = [["serve"], ["migrate"], ["api"], ["worker"], ["tenant", "create", "acme"]];

describe("a DATABASE_URL that cannot work: one line on stderr, exit 1, no stack", () => {
  it.each(COMMANDS)("a database that does not exist, for %s", { timeout: 60_000 }, async (...command) => {
    const result = await runCli(command, { DATABASE_URL: urlWith((url) => (url.pathname = "/wo_no_such_database")) });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^cannot connect to PostgreSQL \(DATABASE_URL\): database "wo_no_such_database" does not exist on /),
    ]);
    expect(result.stdout).toBe("");
  });

  it("nothing listening on the port", { timeout: 60_000 }, async () => {
    const port = await freePort();
    for (const command of [["serve"], ["migrate"], ["tenant", "create", "acme"]]) {
      const result = await runCli(command, { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres` });
      expect(result.code, command.join(" ")).toBe(1);
      expect(result.stderr.trim().split("\n")).toEqual([
        `cannot connect to PostgreSQL (DATABASE_URL): connection refused at 127.0.0.1:${port} (is PostgreSQL running there?)`,
      ]);
    }
  });

  it("a role the server does not know", { timeout: 60_000 }, async () => {
    const result = await runCli(["migrate"], {
      DATABASE_URL: urlWith((url) => {
        url.username = "wo_no_such_role";
        url.password = "not-the-password";
      }),
    });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    // Which of the two codes depends on the server's auth method: trust (28000) or a password (28P01).
    expect(lines[0]).toMatch(/^cannot connect to PostgreSQL \(DATABASE_URL\): (password authentication failed for user "wo_no_such_role"|.* does not let user "wo_no_such_role" in: )/);
    expect(lines[0]).not.toContain("not-the-password");
  });

  it("not a postgres:// URL at all, before anything connects", async () => {
    for (const command of [["serve"], ["tenant", "create", "acme"]]) {
      const result = await runCli(command, { DATABASE_URL: "banana" });
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split("\n")).toEqual([
        "configuration error: DATABASE_URL: is not a postgres:// URL: expected postgres://user:password@host:5432/dbname (got hidden)",
      ]);
    }
  });

  it("REQUIRE_DATABASE_URL=true without DATABASE_URL refuses the embedded server in one line", async () => {
    const result = await runCli(["serve"], { REQUIRE_DATABASE_URL: "true" });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^configuration error: DATABASE_URL: not set, and REQUIRE_DATABASE_URL=true/)]);
  });
});

describe("DATABASE_URL validation and the connection failure words (unit)", () => {
  it("accepts postgres:// and postgresql:// URLs and unset, refuses anything else", () => {
    expect(loadConfig({ DATABASE_URL: "postgres://u:p@h:5432/d" }).DATABASE_URL).toBe("postgres://u:p@h:5432/d");
    expect(loadConfig({ DATABASE_URL: "postgresql://h/d" }).DATABASE_URL).toBe("postgresql://h/d");
    expect(loadConfig({ DATABASE_URL: "" }).DATABASE_URL).toBeUndefined();
    for (const bad of ["banana", "mysql://h/d", "http://h/d", "127.0.0.1:5432"]) {
      expect(() => loadConfig({ DATABASE_URL: bad }), bad).toThrow(ConfigError);
    }
  });

  it("names each cause from its code, never the password", () => {
    const url = "postgres://alice:s3cret@db.example:5433/shop";
    const say = (error: object) => describeConnectionFailure(Object.assign(new Error("raw"), error), url);
    expect(say({ code: "3D000" })).toBe('cannot connect to PostgreSQL (DATABASE_URL): database "shop" does not exist on db.example:5433');
    expect(say({ code: "28P01" })).toBe('cannot connect to PostgreSQL (DATABASE_URL): password authentication failed for user "alice" at db.example:5433');
    expect(say({ code: "ENOTFOUND" })).toBe('cannot connect to PostgreSQL (DATABASE_URL): host "db.example" not found');
    // Node's connect to a name with several addresses fails with an AggregateError of them.
    const aggregate = new AggregateError([Object.assign(new Error("a"), { code: "ECONNREFUSED" })], "all failed");
    expect(describeConnectionFailure(aggregate, url)).toBe(
      "cannot connect to PostgreSQL (DATABASE_URL): connection refused at db.example:5433 (is PostgreSQL running there?)",
    );
    for (const code of ["3D000", "28P01", "28000", "ECONNREFUSED", "ENOTFOUND", "ETIMEDOUT", "XX000"]) {
      expect(say({ code })).not.toContain("s3cret");
    }
  });
});

describe("an HTTP port that is taken", () => {
  let blocker: Server;
  let port: number;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await Receiver.start();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    const address = blocker.address();
    port = typeof address === "object" && address ? address.port : 0;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => blocker?.close(() => resolve()));
    await receiver?.close();
  });

  it("stops serve with one line and exit 1, before its worker has claimed anything", { timeout: 60_000 }, async () => {
    // A delivery due now, made by an API-only service: a worker that started would claim it at once.
    const harness = await startHarness(testDb, {}, { worker: false });
    const created = await harness.api.post("/api/v1/generate", { prompt: "port", webhookUrl: receiver.url });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    await harness.stop();

    const result = await runCli(["serve", "--no-migrate"], {
      DATABASE_URL: testDb.url,
      HOST: "127.0.0.1",
      PORT: String(port),
      WEBHOOK_ALLOW_INSECURE_URLS: "true",
      WORKER_POLL_INTERVAL_MS: "10",
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([
      `port ${port} is in use (127.0.0.1:${port}): stop the process that holds it, or set PORT to a free port`,
    ]);

    const deliveries = await testDb.database.query<{ status: string; attempt_count: number; locked_by: string | null }>(
      "select status, attempt_count, locked_by from webhook_outbox.webhook_deliveries where job_id = $1",
      [created.body.jobId],
    );
    expect(deliveries).toEqual([{ status: "pending", attempt_count: 0, locked_by: null }]);
    expect(receiver.requests).toHaveLength(0);
  });
});
