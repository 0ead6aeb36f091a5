import pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UrlPolicy } from "../src/delivery/url-policy.js";
import { createOutbox, type Outbox, type OutboxWorkerHandle } from "../src/library/index.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";
import { attemptsOf } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

/*
 * The SQL API, webhook_outbox.enqueue(...), called as any language or psql would: in the caller's
 * transaction, on connections whose search_path knows nothing of webhook_outbox.
 */

let testDb: TestDatabase;
let pool: pg.Pool;
let outbox: Outbox;
let worker: OutboxWorkerHandle;
let receiver: Receiver;
let tenant: { tenantId: string; signingSecret: string };

const ENQUEUE = `select webhook_outbox.enqueue(tenant_id => $1, url => $2, event_type => $3, payload => $4::jsonb,
                                               idempotency_key => $5) as id`;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // The application's connections: a search_path of its own.
  pool = new pg.Pool({ connectionString: testDb.url, max: 4, options: "-c search_path=pg_catalog" });
  outbox = createOutbox({ pool, allowInsecureUrls: true, policy: { retryDelaysMs: [0, 5_000], timeoutMs: 4_000 } });
  await outbox.migrate();
  tenant = await outbox.createTenant("sql");
  receiver = await Receiver.start();
  worker = outbox.worker({ pollIntervalMs: 600_000 });
  await worker.start();
});

afterAll(async () => {
  await worker?.stop();
  await outbox?.close();
  await pool?.end();
  await receiver?.close();
  await testDb?.drop();
});

async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>, end: "commit" | "rollback" = "commit"): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const result = await work(client);
    await client.query(end);
    return result;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

async function sqlError(work: (client: pg.PoolClient) => Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = (await transaction(work).then(
    () => undefined,
    (caught: unknown) => caught,
  )) as { code: string; message: string } | undefined;
  if (!error) throw new Error("expected the statement to fail");
  return { code: error.code, message: error.message };
}

const deliveriesKeyed = (key: string) =>
  testDb.database.query<{ id: string; max_attempts: number; retry_delays_ms: number[]; timeout_ms: number; job_id: string | null }>(
    "select id, max_attempts, retry_delays_ms, timeout_ms, job_id from webhook_outbox.webhook_deliveries where idempotency_key = $1",
    [key],
  );

describe("webhook_outbox.enqueue", () => {
  it("writes nothing when the caller's transaction rolls back", async () => {
    const id = await transaction(async (client) => (await client.query(ENQUEUE, [tenant.tenantId, receiver.url, "sql.test", '{"n":0}', "sql-rolled-back"])).rows[0].id, "rollback");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await deliveriesKeyed("sql-rolled-back")).toEqual([]);
  });

  it("delivers at the commit under the policy migrate() wrote, signed and recorded", async () => {
    const before = receiver.requests.length;
    const id: string = await transaction(async (client) => (await client.query(ENQUEUE, [tenant.tenantId, receiver.url, "invoice.sent", '{"invoice": 9}', "sql-committed"])).rows[0].id);
    const [request] = (await receiver.waitForRequests(before + 1)).slice(before);
    if (!request) throw new Error("no request");
    expect(request.headers["webhook-id"]).toBe(id);
    const body = new Webhook(tenant.signingSecret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    });
    expect(body).toEqual({ invoice: 9 });
    expect(await deliveriesKeyed("sql-committed")).toEqual([{ id, max_attempts: 2, retry_delays_ms: [0, 5_000], timeout_ms: 4_000, job_id: null }]);
    const attempts = await eventually(async () => {
      const rows = await attemptsOf(testDb.database, id);
      return rows.length > 0 ? rows : undefined;
    });
    expect(attempts.map((attempt) => attempt.outcome)).toEqual(["succeeded"]);
  });

  it("returns the same delivery for the same idempotency key, a new one without a key", async () => {
    const run = (key: string | null) =>
      transaction(async (client) => (await client.query(ENQUEUE, [tenant.tenantId, receiver.url, "sql.key", "{}", key])).rows[0].id as string);
    const first = await run("sql-key");
    expect(await run("sql-key")).toBe(first);
    expect(await deliveriesKeyed("sql-key")).toHaveLength(1);
    expect(await run(null)).not.toBe(await run(null));
  });

  it("enqueues with positional arguments too, the key left out", async () => {
    const id = await transaction(async (client) => (await client.query("select webhook_outbox.enqueue($1, $2, 'sql.positional', '[1]')", [tenant.tenantId, receiver.url])).rows[0].enqueue);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("webhook_outbox.enqueue refusals", () => {
  it("names an unknown tenant with foreign_key_violation, writing nothing", async () => {
    const error = await sqlError((client) => client.query(ENQUEUE, ["00000000-0000-4000-8000-000000000000", receiver.url, "e", "{}", "sql-unknown"]));
    expect(error).toEqual({ code: "23503", message: "webhook_outbox.enqueue: no tenant has the id 00000000-0000-4000-8000-000000000000" });
    expect(await deliveriesKeyed("sql-unknown")).toEqual([]);
  });

  it("refuses nulls, empty or long event types and keys, and an oversized payload", async () => {
    const cases: Array<[unknown[], string, RegExp]> = [
      [[tenant.tenantId, null, "e", "{}", null], "22004", /must not be null/],
      [[tenant.tenantId, receiver.url, "e", null, null], "22004", /must not be null/],
      [[tenant.tenantId, receiver.url, "", "{}", null], "22023", /event_type must be 1 to 255/],
      [[tenant.tenantId, receiver.url, "e".repeat(256), "{}", null], "22023", /event_type must be 1 to 255/],
      [[tenant.tenantId, receiver.url, "e", "{}", ""], "22023", /idempotency_key must be 1 to 255/],
      [[tenant.tenantId, receiver.url, "e", JSON.stringify({ big: "x".repeat(1_048_576) }), null], "22023", /more than the 1048576 allowed/],
    ];
    for (const [params, code, message] of cases) {
      const error = await sqlError((client) => client.query(ENQUEUE, params));
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
    }
  });

  it("refuses, with invalid_parameter_value, what the production URL policy refuses once settings say so", async () => {
    const refused = [
      "http://hooks.example.com/in",
      "https://10.0.0.1/in",
      "https://[::ffff:127.0.0.1]/in",
      "https://user:pw@hooks.example.com/in",
      `https://hooks.example.com/${"a".repeat(2048)}`,
      "hooks.example.com/in",
    ];
    for (const url of refused) {
      const error = await sqlError(async (client) => {
        await client.query("update webhook_outbox.settings set allow_insecure_urls = false");
        return client.query(ENQUEUE, [tenant.tenantId, url, "e", "{}", null]);
      });
      expect(error.code, url).toBe("22023");
      expect(error.message, url).toMatch(/^webhook_outbox\.enqueue: webhook URL rejected: /);
    }
  });
});

describe("webhook_outbox.url_refusal against the TypeScript URL policy", () => {
  const strict = new UrlPolicy({ allowInsecure: false });
  const refusedBoth = [
    "http://hooks.example.com/",
    "ftp://hooks.example.com/",
    "https://127.0.0.1/",
    "https://10.1.2.3:8443/x",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://224.0.0.1/",
    "https://[::1]/",
    "https://[fc00::1]/",
    "https://[fe80::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::10.0.0.1]/",
    "https://localhost/",
    "https://api.localhost/",
    "https://u:p@hooks.example.com/",
    "https://hooks.example.com/#frag",
    "https://0x7f.1/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://127.1/",
  ];
  const acceptedBoth = [
    "https://hooks.example.com/in?x=1",
    "https://hooks.example.com:8443/in",
    "https://8.8.8.8/",
    "https://[2606:4700:4700::1111]/",
    "https://[::ffff:8.8.8.8]/",
    "https://cafe.be/",
    "https://hooks.example.com./",
  ];

  const sqlVerdicts = async (urls: string[]) =>
    (
      await pool.query<{ refusal: string | null }>(
        "select webhook_outbox.url_refusal(u, false, '{}', (select blocked_cidrs from webhook_outbox.settings)) as refusal from unnest($1::text[]) with ordinality x(u, n) order by n",
        [urls],
      )
    ).rows.map((row) => row.refusal);
  const tsRefuses = (url: string) => {
    try {
      strict.parse(url);
      return false;
    } catch {
      return true;
    }
  };

  it("refuses what the policy refuses: schemes, non-public literals in every notation, credentials", async () => {
    expect(refusedBoth.filter((url) => !tsRefuses(url)), "TypeScript accepts").toEqual([]);
    const verdicts = await sqlVerdicts(refusedBoth);
    expect(refusedBoth.filter((_, at) => verdicts[at] === null), "SQL accepts").toEqual([]);
  });

  it("accepts what the policy accepts: public hosts and literals", async () => {
    expect(acceptedBoth.filter(tsRefuses), "TypeScript refuses").toEqual([]);
    expect(await sqlVerdicts(acceptedBoth)).toEqual(acceptedBoth.map(() => null));
  });

  it("admits a range WEBHOOK_ALLOWED_CIDRS names", async () => {
    const [row] = (
      await pool.query("select webhook_outbox.url_refusal('https://10.20.1.2/', false, '{10.20.0.0/16}', (select blocked_cidrs from webhook_outbox.settings)) as refusal")
    ).rows;
    expect(row.refusal).toBeNull();
  });
});
