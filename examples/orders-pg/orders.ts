import { readFileSync } from "node:fs";
import type pg from "pg";
import type { Outbox } from "webhook-outbox";

/*
 * A shop on plain `pg`: marking an order paid and enqueueing its `order.paid` webhook happen in one
 * transaction of the shop's own. If anything after the enqueue fails (here, capturing the payment),
 * the transaction rolls back and no webhook is ever sent; once it commits, the outbox's worker
 * delivers it, signed with the merchant's secret, retried on failure, every attempt recorded.
 */

const SCHEMA = readFileSync(new URL("./schema.sql", import.meta.url), "utf8");
const TRIGGER = readFileSync(new URL("./trigger.sql", import.meta.url), "utf8");

export async function createShopTables(pool: pg.Pool): Promise<void> {
  await pool.query(SCHEMA);
}

/** Installs the trigger that enqueues `order.paid` from SQL (see trigger.sql). */
export async function installPaidTrigger(pool: pg.Pool): Promise<void> {
  await pool.query(TRIGGER);
}

export async function createMerchant(pool: pg.Pool, merchant: { name: string; outboxTenantId: string; webhookUrl: string }): Promise<number> {
  const { rows } = await pool.query<{ id: string }>(
    "insert into merchants (name, outbox_tenant_id, webhook_url) values ($1, $2, $3) returning id",
    [merchant.name, merchant.outboxTenantId, merchant.webhookUrl],
  );
  return Number(rows[0]?.id);
}

export async function createOrder(pool: pg.Pool, merchantId: number, amountCents: number): Promise<number> {
  const { rows } = await pool.query<{ id: string }>("insert into orders (merchant_id, amount_cents) values ($1, $2) returning id", [
    merchantId,
    amountCents,
  ]);
  return Number(rows[0]?.id);
}

/**
 * Marks a pending order paid and enqueues `order.paid`, in one transaction. `capture` runs last,
 * inside it: when it throws, nothing of this (the status, the webhook) is kept.
 */
export async function markOrderPaid(
  pool: pg.Pool,
  outbox: Outbox,
  orderId: number,
  capture: () => Promise<void> = async () => undefined,
): Promise<{ deliveryId: string }> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const { rows } = await client.query<{ id: string; amount_cents: number; currency: string; paid_at: Date; outbox_tenant_id: string; webhook_url: string }>(
      `update orders o set status = 'paid', paid_at = now()
       from merchants m
       where o.id = $1 and o.status = 'pending' and m.id = o.merchant_id
       returning o.id, o.amount_cents, o.currency, o.paid_at, m.outbox_tenant_id, m.webhook_url`,
      [orderId],
    );
    const order = rows[0];
    if (!order) throw new Error(`order ${orderId} is not pending`);
    const { deliveryId } = await outbox.enqueue(client, {
      tenantId: order.outbox_tenant_id,
      url: order.webhook_url,
      eventType: "order.paid",
      payload: { orderId, amountCents: order.amount_cents, currency: order.currency, paidAt: order.paid_at.toISOString() },
      // A retried request that marks the same order paid again sends nothing more.
      idempotencyKey: `order-${orderId}-paid`,
    });
    await capture();
    await client.query("commit");
    return { deliveryId };
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}
