/** How one delivery is attempted; frozen onto the delivery row when it is enqueued. */
export interface DeliveryPolicy {
  /**
   * The delay before each attempt (the first is usually 0); its length is the attempt limit.
   * @defaultValue [0, 10000, 60000] (at once, +10 s, +60 s)
   */
  retryDelaysMs: number[];
  /**
   * The longest an attempt may take, connect to response read.
   * @defaultValue 10000
   */
  timeoutMs: number;
  /**
   * The longest the connection of an attempt may take to open.
   * @defaultValue 10000
   */
  connectTimeoutMs: number;
}

/** The default policy: the job API's `/api/v1/generate` webhooks, the library's and the SQL API's. */
export const DELIVERY_POLICY_DEFAULTS: DeliveryPolicy = {
  retryDelaysMs: [0, 10_000, 60_000],
  timeoutMs: 10_000,
  connectTimeoutMs: 10_000,
};

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
