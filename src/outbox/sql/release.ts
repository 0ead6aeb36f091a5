import type { Query } from "../../db/client.js";

/** Claims whose attempt never started go back to the queue, due at once, their attempt unspent. */
export const RELEASE_SQL = `
update webhook_outbox.webhook_deliveries
set status = 'pending', attempt_count = attempt_count - 1, locked_by = null, locked_until = null, next_attempt_at = now()
where id = any($2::uuid[]) and locked_by = $1 and status = 'delivering'`;

/** Gives back claimed deliveries whose attempt never started, without spending an attempt. */
export async function releaseClaims(query: Query, workerId: string, deliveryIds: string[]): Promise<void> {
  if (deliveryIds.length > 0) await query(RELEASE_SQL, [workerId, deliveryIds], "outbox_release");
}
