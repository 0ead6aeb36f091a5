/*
 * Run from a checkout (after `npm ci`, which builds the package):
 *   DATABASE_URL=postgres://… WEBHOOK_URL=https://… node --import tsx examples/orders-drizzle/main.ts
 * With a receiver on this machine (http://127.0.0.1:…, e.g. examples/receiver-node.mjs), also set
 * ALLOW_INSECURE_URLS=true. It creates the shop's tables beside webhook_outbox, a merchant and an
 * order, marks the order paid, and runs a worker until the webhook has been delivered.
 */
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { createOutbox } from "webhook-outbox";
import { createMerchant, createOrder, createShopTables, markOrderPaid } from "./orders.js";

const { DATABASE_URL, WEBHOOK_URL } = process.env;
if (!DATABASE_URL || !WEBHOOK_URL) throw new Error("set DATABASE_URL and WEBHOOK_URL");

const pool = new pg.Pool({ connectionString: DATABASE_URL });
const db = drizzle(pool);
// One pool for the shop and its outbox.
const outbox = createOutbox({ pool, allowInsecureUrls: process.env.ALLOW_INSECURE_URLS === "true" });
await outbox.migrate();
await createShopTables(db);
const { tenantId, signingSecret } = await outbox.createTenant("acme-shop");
console.log(`merchant's signing secret (verify webhooks with it): ${signingSecret}`);
const merchantId = await createMerchant(db, { name: "Acme", outboxTenantId: tenantId, webhookUrl: WEBHOOK_URL });
const orderId = await createOrder(db, merchantId, 4_200);

const worker = outbox.worker();
await worker.start();
const { deliveryId } = await markOrderPaid(db, outbox, orderId);
console.log(`order ${orderId} paid; webhook ${deliveryId} enqueued`);
for (;;) {
  const { rows } = await pool.query<{ status: string }>("select status from webhook_outbox.webhook_deliveries where id = $1", [deliveryId]);
  if (rows[0]?.status === "succeeded" || rows[0]?.status === "failed") {
    console.log(`webhook ${deliveryId}: ${rows[0].status}`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}
await worker.stop();
await outbox.close();
await pool.end();
