import { sql } from "drizzle-orm";
import { bigint, integer, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/** The shop's own tables (in public): webhook-outbox keeps to its schema webhook_outbox. */
export const merchants = pgTable("merchants", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  name: text("name").notNull(),
  /** The merchant's webhook subscription: its outbox tenant and where its webhooks go. */
  outboxTenantId: uuid("outbox_tenant_id").notNull(),
  webhookUrl: text("webhook_url").notNull(),
});

export const orders = pgTable("orders", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  merchantId: bigint("merchant_id", { mode: "number" })
    .notNull()
    .references(() => merchants.id),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull().default("EUR"),
  status: text("status").$type<"pending" | "paid" | "cancelled">().notNull().default("pending"),
  paidAt: timestamp("paid_at", { withTimezone: true }),
});

/** What drizzle-kit would generate from the tables above (an application would run its migrations). */
export const CREATE_TABLES = sql`
  create table if not exists merchants (
    id bigint generated always as identity primary key,
    name text not null,
    outbox_tenant_id uuid not null,
    webhook_url text not null
  );
  create table if not exists orders (
    id bigint generated always as identity primary key,
    merchant_id bigint not null references merchants (id),
    amount_cents integer not null,
    currency text not null default 'EUR',
    status text not null default 'pending',
    paid_at timestamptz
  )`;
