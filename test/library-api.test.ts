import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createOutbox,
  InvalidArgumentError,
  InvalidPayloadError,
  UnknownTenantError,
  UrlRejectedError,
  type Outbox,
  type OutboxWorkerHandle,
} from "../src/library/index.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";
import { attemptsOf } from "./support/queries.js";
import { Receiver } from "./support/receiver.js";

/*
 * The TypeScript API against a real database and a real receiver: enqueue in the caller's
 * transaction (pg client, pg pool, drizzle transaction), what a rollback and a commit do, the
 * idempotency key, and the refusals that leave the caller's transaction usable.
 */

let testDb: TestDatabase;
let outbox: Outbox;
let worker: OutboxWorkerHandle;
let receiver: Receiver;
let pool: pg.Pool;
let tenant: { tenantId: string; signingSecret: string };

beforeAll(async () => {
  testDb = await createTestDatabase();
  pool = new pg.Pool({ connectionString: testDb.url, max: 4 });
  outbox = createOutbox({ pool, allowInsecureUrls: true });
  await outbox.migrate();
  tenant = await outbox.createTenant("library");
  receiver = await Receiver.start();
  // No polling worth the name: a delivery that arrives was woken by the NOTIFY of its commit.
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

async function deliveriesByKey(key: string): Promise<Array<{ id: string; status: string; job_id: string | null }>> {
  return testDb.database.query("select id, status, job_id from webhook_outbox.webhook_deliveries where idempotency_key = $1", [key]);
}

async function inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>, end: "commit" | "rollback" = "commit"): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const result = await work(client);
    await client.query(end);
    return result;
  } finally {
    client.release();
  }
}

function verify(request: { body: string; headers: Record<string, unknown> }): unknown {
  return new Webhook(tenant.signingSecret).verify(request.body, {
    "webhook-id": String(request.headers["webhook-id"]),
    "webhook-timestamp": String(request.headers["webhook-timestamp"]),
    "webhook-signature": String(request.headers["webhook-signature"]),
  });
}

describe("enqueue in a pg transaction", () => {
  it("writes nothing when the transaction rolls back", async () => {
    const { deliveryId } = await inTransaction(
      (client) => outbox.enqueue(client, { tenantId: tenant.tenantId, url: receiver.url, eventType: "order.paid", payload: { n: 0 }, idempotencyKey: "rolled-back" }),
      "rollback",
    );
    expect(deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await deliveriesByKey("rolled-back")).toEqual([]);
  });

  it("delivers once the transaction commits, signed with the tenant's secret, woken by the commit", async () => {
    const before = receiver.requests.length;
    const { deliveryId, created } = await inTransaction(async (client) => {
      const enqueued = await outbox.enqueue(client, {
        tenantId: tenant.tenantId,
        url: receiver.url,
        eventType: "order.paid",
        payload: { orderId: 42, lines: [{ sku: "a", qty: 2 }], note: "émoji 🎉" },
        idempotencyKey: "order-42-paid",
      });
      // Not visible to anyone before the commit: the worker cannot have it yet.
      const [outside] = await testDb.database.query<{ n: number }>(
        "select count(*)::int as n from webhook_outbox.webhook_deliveries where id = $1",
        [enqueued.deliveryId],
      );
      expect(outside?.n).toBe(0);
      return enqueued;
    });
    expect(created).toBe(true);
    const [request] = (await receiver.waitForRequests(before + 1)).slice(before);
    if (!request) throw new Error("no request");
    expect(request.headers["webhook-id"]).toBe(deliveryId);
    expect(verify(request)).toEqual({ orderId: 42, lines: [{ sku: "a", qty: 2 }], note: "émoji 🎉" });
    const attempts = await eventually(async () => {
      const rows = await attemptsOf(testDb.database, deliveryId);
      return rows.length > 0 ? rows : undefined;
    });
    expect(attempts.map((attempt) => [attempt.attempt_number, attempt.outcome, attempt.response_status])).toEqual([[1, "succeeded", 200]]);
    expect(await deliveriesByKey("order-42-paid")).toEqual([{ id: deliveryId, status: "succeeded", job_id: null }]);
  });

  it("returns the same delivery for the same idempotency key and sends nothing more", async () => {
    const input = { tenantId: tenant.tenantId, url: receiver.url, eventType: "order.shipped", payload: { orderId: 7 }, idempotencyKey: "order-7-shipped" };
    const first = await inTransaction((client) => outbox.enqueue(client, input));
    // Again in the same transaction, in another one, and with another payload: one delivery.
    const [again, inOne] = await inTransaction(async (client) => [
      await outbox.enqueue(client, { ...input, payload: { orderId: 7, changed: true } }),
      await outbox.enqueue(client, input),
    ]);
    expect(again).toEqual({ deliveryId: first.deliveryId, created: false });
    expect(inOne).toEqual({ deliveryId: first.deliveryId, created: false });
    const delivered = await eventually(async () => {
      const [row] = await deliveriesByKey("order-7-shipped");
      return row?.status === "succeeded" ? row : undefined;
    });
    expect(delivered.id).toBe(first.deliveryId);
    expect(receiver.requests.filter((request) => request.headers["webhook-id"] === first.deliveryId)).toHaveLength(1);
    expect(await deliveriesByKey("order-7-shipped")).toHaveLength(1);
  });

  it("keeps one delivery per key when two transactions enqueue it at once", async () => {
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query("begin");
      await b.query("begin");
      const input = { tenantId: tenant.tenantId, url: receiver.url, eventType: "race", payload: {}, idempotencyKey: "raced" };
      const first = await outbox.enqueue(a, input);
      // b's insert waits on a's uncommitted row, then finds it committed.
      const second = outbox.enqueue(b, input);
      await a.query("commit");
      expect(await second).toEqual({ deliveryId: first.deliveryId, created: false });
      await b.query("commit");
    } finally {
      a.release();
      b.release();
    }
    expect(await deliveriesByKey("raced")).toHaveLength(1);
  });

  it("takes another key of the same tenant, and the same key of another tenant, as new deliveries", async () => {
    const other = await outbox.createTenant("another");
    const base = { url: receiver.url, eventType: "scoped", payload: {} };
    const mine = await outbox.enqueue(pool, { ...base, tenantId: tenant.tenantId, idempotencyKey: "scoped-1" });
    const theirs = await outbox.enqueue(pool, { ...base, tenantId: other.tenantId, idempotencyKey: "scoped-1" });
    const keyless = [await outbox.enqueue(pool, { ...base, tenantId: tenant.tenantId }), await outbox.enqueue(pool, { ...base, tenantId: tenant.tenantId })];
    expect(new Set([mine.deliveryId, theirs.deliveryId, ...keyless.map((k) => k.deliveryId)]).size).toBe(4);
    expect([mine, theirs, ...keyless].every((enqueued) => enqueued.created)).toBe(true);
  });
});

describe("enqueue from a pool and a drizzle transaction", () => {
  it("runs in a transaction of its own on a pool", async () => {
    const { deliveryId } = await outbox.enqueue(pool, { tenantId: tenant.tenantId, url: receiver.url, eventType: "pooled", payload: [1, 2], idempotencyKey: "pooled" });
    expect((await deliveriesByKey("pooled")).map((row) => row.id)).toEqual([deliveryId]);
  });

  it("joins a drizzle transaction: rolled back with it, committed with it", async () => {
    const app = drizzle(pool);
    await expect(
      app.transaction(async (tx) => {
        await outbox.enqueue(tx, { tenantId: tenant.tenantId, url: receiver.url, eventType: "drizzle", payload: {}, idempotencyKey: "drizzle-rolled-back" });
        throw new Error("the application changes its mind");
      }),
    ).rejects.toThrow("changes its mind");
    expect(await deliveriesByKey("drizzle-rolled-back")).toEqual([]);
    const { deliveryId } = await app.transaction((tx) =>
      outbox.enqueue(tx, { tenantId: tenant.tenantId, url: receiver.url, eventType: "drizzle", payload: {}, idempotencyKey: "drizzle-committed" }),
    );
    expect((await deliveriesByKey("drizzle-committed")).map((row) => row.id)).toEqual([deliveryId]);
  });
});

describe("a worker with a retention", () => {
  it("deletes finished deliveries older than retentionMs, and keeps the rest", async () => {
    const old = await outbox.enqueue(pool, { tenantId: tenant.tenantId, url: receiver.url, eventType: "old", payload: {}, idempotencyKey: "retained-old" });
    const recent = await outbox.enqueue(pool, { tenantId: tenant.tenantId, url: receiver.url, eventType: "recent", payload: {}, idempotencyKey: "retained-recent" });
    await eventually(async () => {
      const rows = await testDb.database.query<{ n: number }>(
        "select count(*)::int as n from webhook_outbox.webhook_deliveries where id = any($1::uuid[]) and status = 'succeeded'",
        [[old.deliveryId, recent.deliveryId]],
      );
      return rows[0]?.n === 2 ? true : undefined;
    });
    await testDb.database.query("update webhook_outbox.webhook_deliveries set finished_at = now() - interval '2 days' where id = $1", [old.deliveryId]);
    const pruner = outbox.worker({ retentionMs: 86_400_000, pollIntervalMs: 600_000 });
    await pruner.start();
    try {
      await eventually(async () => ((await deliveriesByKey("retained-old")).length === 0 ? true : undefined));
      expect(await attemptsOf(testDb.database, old.deliveryId)).toEqual([]);
      expect((await deliveriesByKey("retained-recent")).map((row) => row.id)).toEqual([recent.deliveryId]);
    } finally {
      await pruner.stop();
    }
  });
});

describe("refusals", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = { back: cyclic };
  const payloads: Array<[string, unknown, RegExp]> = [
    ["undefined", undefined, /payload is undefined/],
    ["an undefined property", { a: 1, b: undefined }, /payload\.b is undefined/],
    ["a function", { f: () => 1 }, /payload\.f is a function/],
    ["a BigInt", { amount: 10n }, /payload\.amount is a BigInt/],
    ["a symbol", [Symbol("s")], /payload\[0\] is a symbol/],
    ["a cycle", cyclic, /payload\.self\.back refers back/],
    ["NaN", { n: Number.NaN }, /payload\.n is NaN/],
    ["Infinity", [1, Number.POSITIVE_INFINITY], /payload\[1\] is Infinity/],
    ["a Date", { at: new Date(0) }, /payload\.at is a Date/],
    ["a Map", new Map(), /payload is a Map/],
    ["a NUL in a string", { text: "a\u0000b" }, /payload\.text contains U\+0000/],
    ["a NUL in a key", { "a\u0000": 1 }, /a key of payload contains U\+0000/],
    ["an unpaired surrogate", { text: "\ud83d" }, /payload\.text contains an unpaired/],
    ["a sparse array", [1, , 3], /payload\[1\] is undefined/], // eslint-disable-line no-sparse-arrays -- the hole is the point
    ["too large a payload", { big: "x".repeat(1_048_577) }, /more than the 1048576 allowed/],
  ];
  const valid = () => ({ tenantId: tenant.tenantId, url: receiver.url, eventType: "refused", payload: {} as unknown });

  /** The refusal comes before any statement: the caller's transaction goes on and commits what else it wrote. */
  async function expectRefusedInUsableTransaction(input: Parameters<Outbox["enqueue"]>[1], type: new (...args: never[]) => Error, message: RegExp) {
    await inTransaction(async (client) => {
      await client.query("create temporary table if not exists witness (n int) on commit drop");
      const error = await outbox.enqueue(client, input).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
      await client.query("insert into witness values (1)");
      expect((await client.query("select count(*)::int as n from witness")).rows).toEqual([{ n: 1 }]);
    });
  }

  for (const [what, payload, message] of payloads) {
    it(`refuses ${what} as a payload, writing nothing`, async () => {
      await expectRefusedInUsableTransaction({ ...valid(), payload }, InvalidPayloadError, message);
    });
  }

  it("refuses an unknown tenant, a malformed tenant id, and writes nothing", async () => {
    await expectRefusedInUsableTransaction({ ...valid(), tenantId: "00000000-0000-4000-8000-000000000000" }, UnknownTenantError, /no tenant/);
    await expectRefusedInUsableTransaction({ ...valid(), tenantId: "acme" }, UnknownTenantError, /no tenant/);
    const [count] = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where event_type = 'refused'");
    expect(count?.n).toBe(0);
  });

  it("refuses event types and idempotency keys Postgres could not store, or too long", async () => {
    await expectRefusedInUsableTransaction({ ...valid(), eventType: "" }, InvalidArgumentError, /eventType must not be empty/);
    await expectRefusedInUsableTransaction({ ...valid(), eventType: "e".repeat(256) }, InvalidArgumentError, /at most 255/);
    await expectRefusedInUsableTransaction({ ...valid(), idempotencyKey: "k\u0000" }, InvalidArgumentError, /idempotencyKey contains U\+0000/);
    await expectRefusedInUsableTransaction({ ...valid(), idempotencyKey: "" }, InvalidArgumentError, /idempotencyKey must not be empty/);
  });

  it("refuses URLs the production policy refuses: http, private and loopback literals, credentials, over 2048 characters", async () => {
    const strict = createOutbox({ pool });
    const refused: Array<[string, RegExp]> = [
      ["http://hooks.example.com/in", /scheme must be https/],
      ["https://10.1.2.3/in", /private/],
      ["https://[::ffff:127.0.0.1]/in", /loopback/],
      ["https://0x7f.1/in", /loopback/],
      ["https://user:pw@hooks.example.com/in", /credentials/],
      ["https://localhost/in", /loopback name/],
      [`https://hooks.example.com/${"a".repeat(2048)}`, /longer than 2048/],
      ["https://hooks.example.com/in\u0000", /control character/],
      ["https://hooks.example.com/a b", /whitespace/],
      ["hooks.example.com/in", /not an absolute URL/],
    ];
    for (const [url, message] of refused) {
      const error = await strict.enqueue(pool, { ...valid(), url }).catch((caught: unknown) => caught);
      expect(error, url).toBeInstanceOf(UrlRejectedError);
      expect((error as Error).message, url).toMatch(message);
    }
    // The same outbox takes a public https URL (its addresses are vetted before each attempt); rolled
    // back, so no worker tries to reach it.
    const accepted = await inTransaction((client) => strict.enqueue(client, { ...valid(), url: "https://hooks.example.com/in" }), "rollback");
    expect(accepted.created).toBe(true);
    await strict.close();
  });
});
