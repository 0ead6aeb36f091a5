import type { Config } from "../config.js";
import type { ApiFlavor } from "../db/schema.js";

/** How one delivery is attempted; frozen onto the delivery row when it is enqueued. */
export interface DeliveryPolicy {
  /** The delay before each attempt; its length is the attempt limit. */
  retryDelaysMs: number[];
  timeoutMs: number;
  connectTimeoutMs: number;
}

/** Each API flavour's policy as configured: what a delivery enqueued now freezes. */
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

export type RetryDecision = { outcome: "retry"; delayMs: number } | { outcome: "failed" };

/**
 * What follows a failed attempt. Attempt numbers keep counting across redeliveries, so the
 * schedule is indexed from the start of the current budget (`maxAttempts - schedule length`).
 */
export function nextAfterFailure(input: {
  attemptNumber: number;
  maxAttempts: number;
  retryDelaysMs: number[];
  retryable: boolean;
  retryAfterMs?: number | undefined;
  retryAfterCapMs: number;
}): RetryDecision {
  if (!input.retryable || input.attemptNumber >= input.maxAttempts) return { outcome: "failed" };
  const budgetStart = input.maxAttempts - input.retryDelaysMs.length;
  const scheduled = input.retryDelaysMs[input.attemptNumber - budgetStart] ?? 0;
  const asked = input.retryAfterMs === undefined ? 0 : Math.min(input.retryAfterMs, input.retryAfterCapMs);
  return { outcome: "retry", delayMs: Math.max(scheduled, asked) };
}
