import { and, eq, sql } from "drizzle-orm";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import type { Outbox } from "webhook-outbox";
import { CREATE_TABLES, merchants, orders } from "./schema.js";

/*
 * A shop on drizzle: marking an order paid and enqueueing its `order.paid` webhook happen in one
 * drizzle transaction. The outbox's enqueue joins it (on its connection); if anything after it
 * throws (here, capturing the payment), drizzle rolls the whole transaction back and no webhook is
 * ever sent. Once it commits, the outbox's worker delivers it, signed, retried, every attempt recorded.
 */

export type ShopDb = NodePgDatabase<Record<string, never>>;

export async function createShopTables(db: ShopDb): Promise<void> {
  await db.execute(CREATE_TABLES);
}

export async function createMerchant(db: ShopDb, merchant: { name: string; outboxTenantId: string; webhookUrl: string }): Promise<number> {
  const [row] = await db.insert(merchants).values(merchant).returning({ id: merchants.id });
  if (!row) throw new Error("no merchant row");
  return row.id;
}

export async function createOrder(db: ShopDb, merchantId: number, amountCents: number): Promise<number> {
  const [row] = await db.insert(orders).values({ merchantId, amountCents }).returning({ id: orders.id });
  if (!row) throw new Error("no order row");
  return row.id;
}

/**
 * Marks a pending order paid and enqueues `order.paid`, in one transaction. `capture` runs last,
 * inside it: when it throws, nothing of this (the status, the webhook) is kept.
 */
export async function markOrderPaid(
  db: ShopDb,
  outbox: Outbox,
  orderId: number,
  capture: () => Promise<void> = async () => undefined,
): Promise<{ deliveryId: string }> {
  return db.transaction(async (tx) => {
    const [order] = await tx
      .update(orders)
      .set({ status: "paid", paidAt: sql`now()` })
      .where(and(eq(orders.id, orderId), eq(orders.status, "pending")))
      .returning();
    if (!order?.paidAt) throw new Error(`order ${orderId} is not pending`);
    const [merchant] = await tx.select().from(merchants).where(eq(merchants.id, order.merchantId));
    if (!merchant) throw new Error(`order ${orderId} has no merchant`);
    const { deliveryId } = await outbox.enqueue(tx, {
      tenantId: merchant.outboxTenantId,
      url: merchant.webhookUrl,
      eventType: "order.paid",
      payload: { orderId, amountCents: order.amountCents, currency: order.currency, paidAt: order.paidAt.toISOString() },
      // A retried request that marks the same order paid again sends nothing more.
      idempotencyKey: `order-${orderId}-paid`,
    });
    await capture();
    return { deliveryId };
  });
}
