import type { Query } from "../db/client.js";
import { nonPublicRanges } from "../delivery/address-policy.js";
import type { DeliveryPolicy } from "./policy.js";

/** What the SQL API (webhook_outbox.enqueue) freezes and checks: the row webhook_outbox.settings. */
export interface SqlApiSettings {
  policy: DeliveryPolicy;
  allowInsecureUrls: boolean;
  allowedCidrs: readonly string[];
  maxPayloadBytes: number;
}

const WRITE_SQL = `
insert into webhook_outbox.settings
  (id, retry_delays_ms, timeout_ms, connect_timeout_ms, allow_insecure_urls, allowed_cidrs, blocked_cidrs, max_payload_bytes, updated_at)
values (true, $1::int[], $2, $3, $4, $5::inet[], $6::cidr[], $7, now())
on conflict (id) do update set
  retry_delays_ms = excluded.retry_delays_ms, timeout_ms = excluded.timeout_ms,
  connect_timeout_ms = excluded.connect_timeout_ms, allow_insecure_urls = excluded.allow_insecure_urls,
  allowed_cidrs = excluded.allowed_cidrs, blocked_cidrs = excluded.blocked_cidrs,
  max_payload_bytes = excluded.max_payload_bytes, updated_at = excluded.updated_at`;

/**
 * Writes the SQL API's settings (after migrations): the policy SQL enqueues freeze, the URL rule,
 * and the non-public ranges as this build's address policy knows them.
 */
export async function writeSqlSettings(query: Query, settings: SqlApiSettings): Promise<void> {
  await query(WRITE_SQL, [
    `{${settings.policy.retryDelaysMs.join(",")}}`,
    settings.policy.timeoutMs,
    settings.policy.connectTimeoutMs,
    settings.allowInsecureUrls,
    `{${settings.allowedCidrs.join(",")}}`,
    `{${nonPublicRanges().join(",")}}`,
    settings.maxPayloadBytes,
  ]);
}
