import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as drizzleShop from "../examples/orders-drizzle/orders.js";
import * as pgShop from "../examples/orders-pg/orders.js";
import { createOutbox, type Outbox, type OutboxWorkerHandle } from "../src/library/index.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";
import { attemptsOf } from "./support/queries.js";
import { Receiver, type ReceivedRequest } from "./support/receiver.js";

/*
 * The example applications in examples/: a shop with its own orders table marks an order paid and
 * enqueues `order.paid` in one transaction, with plain pg and with drizzle, and from SQL through a
 * trigger. Each runs against a database of its own, with the outbox's worker and a real receiver.
 */

interface Shop {
  testDb: TestDatabase;
  pool: pg.Pool;
  outbox: Outbox;
  worker: OutboxWorkerHandle;
  receiver: Receiver;
  tenant: { tenantId: string; signingSecret: string };
}

async function openShop(): Promise<Shop> {
  const testDb = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: testDb.url, max: 4 });
  const outbox = createOutbox({ pool, allowInsecureUrls: true });
  await outbox.migrate();
  const tenant = await outbox.createTenant("acme-shop");
  const receiver = await Receiver.start();
  const worker = outbox.worker({ pollIntervalMs: 600_000 });
  await worker.start();
  return { testDb, pool, outbox, worker, receiver, tenant };
}

async function closeShop(shop: Shop | undefined): Promise<void> {
  if (!shop) return;
  await shop.worker.stop();
  await shop.outbox.close();
  await shop.pool.end();
  await shop.receiver.close();
  await shop.testDb.drop();
}

const deliveryCount = async (shop: Shop) =>
  (await shop.testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries"))[0]?.n;

const orderStatus = async (shop: Shop, orderId: number) =>
  (await shop.pool.query<{ status: string }>("select status from orders where id = $1", [orderId])).rows[0]?.status;

/** The request that carried delivery `id`, verified with the tenant's secret by the standardwebhooks package. */
async function deliveredBody(shop: Shop, id: string): Promise<unknown> {
  const request = await eventually(
    async () => shop.receiver.requests.find((candidate: ReceivedRequest) => candidate.headers["webhook-id"] === id),
    20_000,
    `webhook ${id}`,
  );
  return new Webhook(shop.tenant.signingSecret).verify(request.body, {
    "webhook-id": String(request.headers["webhook-id"]),
    "webhook-timestamp": String(request.headers["webhook-timestamp"]),
    "webhook-signature": String(request.headers["webhook-signature"]),
  });
}

async function recordedOutcomes(shop: Shop, id: string): Promise<string[]> {
  const attempts = await eventually(async () => {
    const rows = await attemptsOf(shop.testDb.database, id);
    return rows.length > 0 ? rows : undefined;
  });
  return attempts.map((attempt) => attempt.outcome);
}

const declined = async () => {
  throw new Error("card declined");
};

describe("examples/orders-pg: plain pg", () => {
  let shop: Shop;
  let merchantId: number;

  beforeAll(async () => {
    shop = await openShop();
    await pgShop.createShopTables(shop.pool);
    merchantId = await pgShop.createMerchant(shop.pool, { name: "Acme", outboxTenantId: shop.tenant.tenantId, webhookUrl: shop.receiver.url });
  });

  afterAll(() => closeShop(shop));

  it("rolls the webhook back with the order when the payment capture fails", async () => {
    const orderId = await pgShop.createOrder(shop.pool, merchantId, 1_000);
    await expect(pgShop.markOrderPaid(shop.pool, shop.outbox, orderId, declined)).rejects.toThrow("card declined");
    expect(await orderStatus(shop, orderId)).toBe("pending");
    expect(await deliveryCount(shop)).toBe(0);
  });

  it("delivers order.paid once the transaction commits, and a retried request sends nothing more", async () => {
    const orderId = await pgShop.createOrder(shop.pool, merchantId, 4_200);
    const { deliveryId } = await pgShop.markOrderPaid(shop.pool, shop.outbox, orderId);
    expect(await orderStatus(shop, orderId)).toBe("paid");
    expect(await deliveredBody(shop, deliveryId)).toMatchObject({ orderId, amountCents: 4_200, currency: "EUR" });
    expect(await recordedOutcomes(shop, deliveryId)).toEqual(["succeeded"]);

    // The same request processed again (the order set back to pending): the same idempotency key.
    await shop.pool.query("update orders set status = 'pending' where id = $1", [orderId]);
    expect(await pgShop.markOrderPaid(shop.pool, shop.outbox, orderId)).toEqual({ deliveryId });
    const rows = await shop.testDb.database.query<{ n: number; attempts: number }>(
      "select count(*)::int as n, max(attempt_count)::int as attempts from webhook_outbox.webhook_deliveries where idempotency_key = $1",
      [`order-${orderId}-paid`],
    );
    expect(rows).toEqual([{ n: 1, attempts: 1 }]);
  });

  it("delivers from SQL alone: a trigger on orders calls webhook_outbox.enqueue", async () => {
    await pgShop.installPaidTrigger(shop.pool);
    const rolledBack = await pgShop.createOrder(shop.pool, merchantId, 100);
    const before = await deliveryCount(shop);
    const client = await shop.pool.connect();
    try {
      await client.query("begin");
      await client.query("update orders set status = 'paid', paid_at = now() where id = $1", [rolledBack]);
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect(await deliveryCount(shop)).toBe(before);

    const orderId = await pgShop.createOrder(shop.pool, merchantId, 990);
    await shop.pool.query("update orders set status = 'paid', paid_at = now() where id = $1", [orderId]);
    const [delivery] = await shop.testDb.database.query<{ id: string; event_type: string }>(
      "select id, event_type from webhook_outbox.webhook_deliveries where idempotency_key = $1",
      [`order-${orderId}-paid`],
    );
    if (!delivery) throw new Error("the trigger enqueued nothing");
    expect(delivery.event_type).toBe("order.paid");
    expect(await deliveredBody(shop, delivery.id)).toMatchObject({ orderId, amountCents: 990, currency: "EUR" });
    expect(await recordedOutcomes(shop, delivery.id)).toEqual(["succeeded"]);

    // The TypeScript path and the trigger enqueue the same key: still one webhook.
    const both = await pgShop.createOrder(shop.pool, merchantId, 5);
    const { deliveryId } = await pgShop.markOrderPaid(shop.pool, shop.outbox, both);
    const keyed = await shop.testDb.database.query<{ id: string }>("select id from webhook_outbox.webhook_deliveries where idempotency_key = $1", [
      `order-${both}-paid`,
    ]);
    expect(keyed).toEqual([{ id: deliveryId }]);
  });
});

describe("examples/orders-drizzle: one drizzle transaction", () => {
  let shop: Shop;
  let db: drizzleShop.ShopDb;
  let merchantId: number;

  beforeAll(async () => {
    shop = await openShop();
    db = drizzle(shop.pool);
    await drizzleShop.createShopTables(db);
    merchantId = await drizzleShop.createMerchant(db, { name: "Acme", outboxTenantId: shop.tenant.tenantId, webhookUrl: shop.receiver.url });
  });

  afterAll(() => closeShop(shop));

  it("rolls the webhook back with the order when the payment capture fails", async () => {
    const orderId = await drizzleShop.createOrder(db, merchantId, 1_000);
    await expect(drizzleShop.markOrderPaid(db, shop.outbox, orderId, declined)).rejects.toThrow("card declined");
    expect(await orderStatus(shop, orderId)).toBe("pending");
    expect(await deliveryCount(shop)).toBe(0);
  });

  it("delivers order.paid once the transaction commits, and a retried request sends nothing more", async () => {
    const orderId = await drizzleShop.createOrder(db, merchantId, 4_200);
    const { deliveryId } = await drizzleShop.markOrderPaid(db, shop.outbox, orderId);
    expect(await orderStatus(shop, orderId)).toBe("paid");
    expect(await deliveredBody(shop, deliveryId)).toMatchObject({ orderId, amountCents: 4_200, currency: "EUR" });
    expect(await recordedOutcomes(shop, deliveryId)).toEqual(["succeeded"]);

    await shop.pool.query("update orders set status = 'pending' where id = $1", [orderId]);
    expect(await drizzleShop.markOrderPaid(db, shop.outbox, orderId)).toEqual({ deliveryId });
    expect(await deliveryCount(shop)).toBe(1);
  });
});
