import type { Config } from "../config.js";
import type { ApiFlavor } from "../db/schema.js";
import type { DeliveryPolicy } from "../outbox/policy.js";

/** Each API flavour's policy as configured: what the webhook of a job of that flavour freezes at enqueue. */
export function deliveryPolicies(config: Config): Record<ApiFlavor, DeliveryPolicy> {
  return {
    nouvel: {
      retryDelaysMs: config.WEBHOOK_RETRY_DELAYS,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      connectTimeoutMs: config.WEBHOOK_CONNECT_TIMEOUT_MS,
    },
    veo3: {
      retryDelaysMs: config.VEO_WEBHOOK_RETRY_DELAYS,
      timeoutMs: config.VEO_WEBHOOK_TIMEOUT_MS,
      connectTimeoutMs: config.VEO_WEBHOOK_CONNECT_TIMEOUT_MS,
    },
  };
}
