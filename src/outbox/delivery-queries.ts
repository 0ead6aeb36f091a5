import { and, asc, eq, gte, inArray, lt, or } from "drizzle-orm";
import { newestFirst } from "../db/newest-first.js";
import type { Database } from "../db/client.js";
import { webhookDeliveries, webhookDeliveryAttempts, type DeliveryStatus } from "../db/schema.js";

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
export type AttemptRow = typeof webhookDeliveryAttempts.$inferSelect;

export interface DeliveryWithAttempts extends DeliveryRow {
  attempts: AttemptRow[];
}

export interface DeliveryListQuery {
  tenantId: string;
  status?: DeliveryStatus | undefined;
  since?: Date | undefined;
  limit: number;
  /** Keyset position: the (created_at, id) of the previous page's last row. */
  after?: { createdAt: Date; id: string } | undefined;
}

/** One tenant's deliveries of one job, oldest first, each with every attempt in order. */
export async function deliveriesOfJob(database: Database, tenantId: string, jobId: string): Promise<DeliveryWithAttempts[]> {
  const deliveries = await database.db
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.jobId, jobId), eq(webhookDeliveries.tenantId, tenantId)))
    .orderBy(asc(webhookDeliveries.createdAt), asc(webhookDeliveries.id));
  const attempts = await attemptsOf(
    database,
    deliveries.map((delivery) => delivery.id),
  );
  return deliveries.map((delivery) => ({
    ...delivery,
    attempts: attempts.filter((attempt) => attempt.deliveryId === delivery.id),
  }));
}

/**
 * A page of one tenant's deliveries, newest first (the polling safety net for missed webhooks).
 * Served by webhook_deliveries_tenant_created_idx, or the partial ..._tenant_failed_idx for status=failed.
 */
export async function listDeliveries(
  database: Database,
  query: DeliveryListQuery,
): Promise<{ deliveries: DeliveryRow[]; hasMore: boolean }> {
  const rows = await deliveriesPage(database, query);
  return { deliveries: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
}

/** The page's statement (one row more than the page, to tell whether another follows); its plan is tested. */
export function deliveriesPage(database: Database, query: DeliveryListQuery) {
  const d = webhookDeliveries;
  const conditions = [eq(d.tenantId, query.tenantId)];
  if (query.status) conditions.push(eq(d.status, query.status));
  if (query.since) conditions.push(gte(d.createdAt, query.since));
  if (query.after) {
    const older = or(lt(d.createdAt, query.after.createdAt), and(eq(d.createdAt, query.after.createdAt), lt(d.id, query.after.id)));
    if (older) conditions.push(older);
  }
  return database.db
    .select()
    .from(d)
    .where(and(...conditions))
    .orderBy(newestFirst(d.createdAt), newestFirst(d.id))
    .limit(query.limit + 1);
}

async function attemptsOf(database: Database, deliveryIds: string[]): Promise<AttemptRow[]> {
  if (deliveryIds.length === 0) return [];
  return database.db
    .select()
    .from(webhookDeliveryAttempts)
    .where(inArray(webhookDeliveryAttempts.deliveryId, deliveryIds))
    .orderBy(asc(webhookDeliveryAttempts.deliveryId), asc(webhookDeliveryAttempts.attemptNumber));
}
