import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverUser, stopEmbeddedPostgres } from "../src/db/embedded.js";
import { runCli } from "./support/cli.js";
import { freePort } from "./support/ports.js";
import { spawnCli } from "./support/processes.js";

// A newcomer's commands as real processes, with no DATABASE_URL anywhere in their environment: they
// share one embedded PostgreSQL server in EMBEDDED_DATA_DIR, which the first of them starts.
// Starting a server takes a second or more on a busy machine: generous limits, no timing asserted.
const SLOW = { timeout: 120_000 };

let root: string;
let env: Record<string, string>;

async function query<Row>(url: string, text: string): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as Row[];
  } finally {
    await client.end();
  }
}

async function databaseUrl(): Promise<string> {
  const result = await runCli(["database-url"], env);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "wo-embedded-cli-"));
  // As root the server runs as the postgres OS user, which must reach the directory (mkdtemp makes it 0700).
  chmodSync(root, 0o755);
  env = { EMBEDDED_DATA_DIR: join(root, "postgres"), EMBEDDED_PG_PORT: String(await freePort()), HOST: "127.0.0.1", PORT: "0" };
});

afterAll(async () => {
  if (!root) return;
  await stopEmbeddedPostgres(join(root, "postgres"));
  rmSync(root, { recursive: true, force: true });
});

describe("the CLI on the embedded PostgreSQL", () => {
  it("makes, starts and migrates the server on first use: two commands at once on a fresh directory both succeed", SLOW, async () => {
    const [first, second] = await Promise.all([
      runCli(["tenant", "create", "acme", "--json"], env),
      runCli(["tenant", "create", "globex", "--json"], env),
    ]);
    for (const result of [first, second]) {
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}")).toMatchObject({ apiKey: expect.stringMatching(/^wo_/) });
    }
    const url = await databaseUrl();
    expect(url).toMatch(new RegExp(`^postgres://postgres:[0-9a-f]+@127\\.0\\.0\\.1:${env.EMBEDDED_PG_PORT}/postgres$`));
    const tenants = await query<{ name: string }>(url, "select name from webhook_outbox.tenants order by name");
    expect(tenants.map((tenant) => tenant.name)).toEqual(["acme", "globex"]);
  });

  it("prints a connection string that pg (and so psql) connects to", SLOW, async () => {
    const url = await databaseUrl();
    expect(await query(url, "select 1 as one")).toEqual([{ one: 1 }]);
    const [server] = await query<{ directory: string }>(url, "select current_setting('data_directory') as directory");
    expect(server?.directory).toBe(join(root, "postgres", "pgdata"));
  });

  it("serves while another process creates a tenant, prints the next steps, and the generated token opens /internal", SLOW, async () => {
    const serve = spawnCli(["serve"], { ...env, LOG_LEVEL: "info" });
    try {
      const notice = JSON.parse(await serve.waitForLog(/embedded PostgreSQL/, 60_000)) as { msg: string; dataDir: string };
      expect(notice.dataDir).toBe(join(root, "postgres"));
      const tokenFile = join(root, "postgres", "internal-api-token");
      expect(notice.msg).toContain(`data in ${join(root, "postgres")}`);
      expect(notice.msg).toContain('psql "$(npm run -s outbox -- database-url)"');
      expect(notice.msg).toContain("npm run outbox -- tenant create acme");
      expect(notice.msg).toContain(`INTERNAL_API_TOKEN is unset, so a development one was generated into ${tokenFile};`);
      expect(notice.msg).toContain("set WEBHOOK_ALLOW_INSECURE_URLS=true");
      const listening = JSON.parse(await serve.waitForLog(/API listening/)) as { url: string };

      const second = await runCli(["tenant", "create", "initech", "--json"], env);
      expect(second.code, second.stderr).toBe(0);
      const tenant = JSON.parse(second.stdout.trim().split("\n").at(-1) ?? "{}") as { apiKey: string };

      // The tenant made by the other process can use the API of this one: one database.
      const created = await fetch(`${listening.url}/api/v1/generate`, {
        method: "POST",
        headers: { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: "shared", projectCount: 1 }),
      });
      expect(created.status).toBe(202);
      const { jobId } = (await created.json()) as { jobId: string };

      const token = readFileSync(tokenFile, "utf8").trim();
      expect(token).toMatch(/^[0-9a-f]{48}$/);
      expect(statSync(tokenFile).mode & 0o077).toBe(0);
      // The token stays out of the log, which names its file instead.
      expect(serve.output.join("\n")).not.toContain(token);
      const report = (authorization: string) =>
        fetch(`${listening.url}/internal/v1/jobs/${jobId}/projects/0`, {
          method: "PATCH",
          headers: { authorization, "content-type": "application/json" },
          body: JSON.stringify({ status: "completed", videoUrl: "https://cdn.example.com/0.mp4", seed: 1 }),
        });
      expect((await report("Bearer not-the-token")).status).toBe(401);
      expect((await report(`Bearer ${token}`)).status).toBe(200);
    } finally {
      serve.child.kill("SIGTERM");
    }
    expect(await serve.exited).toBe(0);
  });

  it("runs api and worker as processes of their own on the same server", SLOW, async () => {
    const worker = spawnCli(["worker"], { ...env, LOG_LEVEL: "info" });
    const api = spawnCli(["api"], { ...env, LOG_LEVEL: "info" });
    try {
      await worker.waitForLog(/worker started/, 60_000);
      const listening = JSON.parse(await api.waitForLog(/API listening/, 60_000)) as { url: string };
      expect((await fetch(`${listening.url}/readyz`)).status).toBe(200);
    } finally {
      worker.child.kill("SIGTERM");
      api.child.kill("SIGTERM");
    }
    expect([await worker.exited, await api.exited]).toEqual([0, 0]);
  });

  it("keeps running after the processes that used it, stops on `embedded stop`, and its data survives a restart", SLOW, async () => {
    const status = await runCli(["embedded", "status"], env);
    expect(status.stdout).toMatch(new RegExp(`^running: pid \\d+, 127\\.0\\.0\\.1:${env.EMBEDDED_PG_PORT}, data in `));

    const stop = await runCli(["embedded", "stop"], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain("stopped the embedded PostgreSQL");
    expect((await runCli(["embedded", "status"], env)).stdout).toMatch(/^not running;/);
    expect((await runCli(["embedded", "stop"], env)).stdout).toMatch(/^not running/);

    // The next command starts it again, on the same cluster.
    const url = await databaseUrl();
    const tenants = await query<{ name: string }>(url, "select name from webhook_outbox.tenants order by name");
    expect(tenants.map((tenant) => tenant.name)).toEqual(["acme", "globex", "initech"]);
  });

  it("names the port when another server holds it", SLOW, async () => {
    const other = { ...env, EMBEDDED_DATA_DIR: join(root, "other") };
    const result = await runCli(["database-url"], other);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^port ${env.EMBEDDED_PG_PORT} on 127\\.0\\.0\\.1 is taken by another server .*: set EMBEDDED_PG_PORT to a free port$`)),
    ]);
  });
});

describe.runIf(process.getuid?.() === 0)("as root", () => {
  it("runs the server as the postgres OS user, and says what to do in one line when there is none", () => {
    expect(serverUser()).toMatchObject({ uid: expect.any(Number) });
    expect(statSync(join(root, "postgres", "pgdata")).uid).toBe(serverUser()?.uid);
    expect(() => serverUser("wo_no_such_user")).toThrow(
      /^running as root, and PostgreSQL will not run as root: the embedded server runs as the "wo_no_such_user" OS user, which does not exist; create it \(useradd/,
    );
  });
});
