import type { Query } from "../../db/client.js";

/*
 * New statistics for webhook_deliveries: the planner's picture of the table, and a signal to every
 * session that drops the plans it keeps of it. SKIP_LOCKED: when another ANALYZE or a VACUUM holds
 * the table (autovacuum, another worker), this one is skipped rather than waited for or made to
 * cancel autovacuum. A role that does not own the table gets a warning from Postgres and nothing is
 * analyzed; autovacuum then does it in its own time.
 */
export const ANALYZE_SQL = "analyze (skip_locked) webhook_outbox.webhook_deliveries";

/** Takes new statistics of webhook_deliveries, unless the table is busy with another ANALYZE or VACUUM. */
export async function analyzeDeliveries(query: Query): Promise<void> {
  await query(ANALYZE_SQL);
}
